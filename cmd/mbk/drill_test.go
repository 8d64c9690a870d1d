package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
	"github.com/mbk-backup/mbk/core/testing/storetest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// moodleFilesSchema adds what a drill checks to the test site's database:
// Moodle's version, its plugins, and the file table that names each blob.
const moodleFilesSchema = `
USE moodle;
CREATE TABLE mdl_config (id BIGINT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(255) NOT NULL UNIQUE, value LONGTEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO mdl_config (name, value) VALUES ('version', '2024100700.02'), ('release', '4.5.2 (Build: 20250210)'), ('siteidentifier', 'x1');
CREATE TABLE mdl_config_plugins (id BIGINT PRIMARY KEY AUTO_INCREMENT, plugin VARCHAR(100) NOT NULL, name VARCHAR(100) NOT NULL, value LONGTEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO mdl_config_plugins (plugin, name, value) VALUES
  ('mod_forum', 'version', '2024100700'), ('mod_resource', 'version', '2024100700'),
  ('auth_manual', 'version', '2024100700'), ('mod_forum', 'maxbytes', '0');
CREATE TABLE mdl_files (id BIGINT PRIMARY KEY AUTO_INCREMENT, contenthash VARCHAR(40) NOT NULL, pathnamehash VARCHAR(40) NOT NULL,
  contextid BIGINT NOT NULL, component VARCHAR(100) NOT NULL, filearea VARCHAR(50) NOT NULL, itemid BIGINT NOT NULL,
  filepath VARCHAR(255) NOT NULL, filename VARCHAR(255) NOT NULL, filesize BIGINT NOT NULL, mimetype VARCHAR(100),
  timecreated BIGINT NOT NULL, timemodified BIGINT NOT NULL, KEY mdl_file_con_ix (contenthash)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
`

// blobsScript replaces the site's filedir and trashdir with blobs named by
// the SHA-1 of their content, as Moodle stores them, and prints one line per
// blob: hash, size, component, file area, file name.
const blobsScript = `set -e
cd /data
rm -rf filedir trashdir
put() {
  h=$(sha1sum "$1" | cut -c1-40)
  d=$2/$(echo $h | cut -c1-2)/$(echo $h | cut -c3-4)
  mkdir -p $d
  mv "$1" $d/$h
  echo "$h $(stat -c %s $d/$h) $3"
}
i=0
while [ $i -lt 40 ]; do
  head -c $((i * 997 + 1)) /dev/urandom > /tmp/f
  put /tmp/f filedir "mod_resource content Tema_$i.pdf"
  i=$((i + 1))
done
printf 'Apuntes de álgebra\n' > /tmp/f; put /tmp/f filedir "mod_forum attachment apuntes.txt"
printf 'borrador viejo\n' > /tmp/f; put /tmp/f trashdir "user draft borrador.txt"
chown -R 33:33 filedir trashdir
`

// moodleSite is a test site whose database references every blob of its
// filedir, as a Moodle site's does.
type moodleSite struct {
	*site
	blobs []string // "hash size"
}

func newMoodleSite(t *testing.T) *moodleSite {
	t.Helper()
	s := &moodleSite{site: newSite(t)}
	s.db.SQL(t, moodleFilesSchema)
	out, stderr, code := testenv.Exec(t, s.app, strings.NewReader(blobsScript), "sh", "-s")
	if code != 0 {
		t.Fatalf("make the blobs: %s", stderr)
	}
	var rows []string
	for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 5 {
			t.Fatalf("blob line %q", l)
		}
		s.blobs = append(s.blobs, f[0]+" "+f[1])
		rows = append(rows, fmt.Sprintf("('%s', SHA1('%d'), %d, '%s', '%s', 0, '/', '%s', %s, 'application/octet-stream', 1700000000, 1700000000)",
			f[0], i, 10+i, f[2], f[3], f[4], f[1]))
	}
	// Directory entries: size 0, the empty content's hash, no blob.
	rows = append(rows, "('da39a3ee5e6b4b0d3255bfef95601890afd80709', SHA1('dir'), 10, 'mod_resource', 'content', 0, '/', '.', 0, NULL, 1700000000, 1700000000)")
	s.db.SQL(t, "INSERT INTO moodle.mdl_files (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, filesize, mimetype, timecreated, timemodified) VALUES "+strings.Join(rows, ",\n")+";")
	return s
}

// drillPipeline is the site with an SMTP notify stage that hears of drills
// and failures, an optional drill block and optional extra stages.
func drillPipeline(name, root string, s *moodleSite, mail *smtptest.Server, extra string) string {
	host, port := mail.Addr()
	return fmt.Sprintf(`pipeline %q {
  root    = %q
  timeout = "10m"

  stage "dump" "mysql" {
    container = %q
    database  = "moodle"
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
  }
  stage "archive" "volume" {
    volume  = %q
    exclude = ["cache", "localcache", "temp", "sessions", "climaintenance.html"]
  }
  stage "checksum" "sha256" {}
  stage "notify" "smtp" {
    on   = ["failure", "drill"]
    host = %q
    port = %d
    tls  = "none"
    auth = "none"
    from = "backups@example.com"
    to   = ["admin@example.com"]
  }
  %s
}
`, name, root, s.db.Container, s.volume, host, port, extra)
}

// drillLeftovers lists the containers and volumes a drill made that are
// still there.
func drillLeftovers(t *testing.T) []string {
	t.Helper()
	cli := testenv.Docker(t)
	f := filters.NewArgs(filters.Arg("label", sdk.DrillLabel))
	var out []string
	cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	vs, err := cli.VolumeList(context.Background(), volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Volumes {
		out = append(out, "volume "+v.Name)
	}
	return out
}

func drillRecord(t *testing.T, root, set string) *sdk.DrillReport {
	t.Helper()
	r, err := repo.ReadDrillRecord(root, set)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mailWith(msgs []smtptest.Message, subject string) (string, bool) {
	for _, m := range msgs {
		if strings.Contains(string(m.Data), subject) {
			return string(m.Data), true
		}
	}
	return "", false
}

// TestDrill: a drill of a good set passes, keeps its record (mbk list and
// mbk info show it) and mails the result, without touching the site or
// leaving anything behind; a set whose database references a blob its archive
// lacks fails naming the file; a blob whose content does not match its name
// is caught by the sample; and a drill killed midway is cleaned up by the
// next backup run.
func TestDrill(t *testing.T) {
	s := newMoodleSite(t)
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "drill.hcl", drillPipeline("school", root, s, mail, ""))
	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	good := sets(t, root)[0]
	before := siteState(t, s.site)

	r := mbk(t, runOpts{env: s.env()}, "drill", file)
	if r.code != 0 {
		t.Fatalf("a drill of a good set must pass: %s", r)
	}
	for _, want := range []string{"Drill of set " + good + " (local) of pipeline \"school\": PASSED", "Restore time:",
		"rows", "objects", "moodle-version", "moodle-plugins", "references", "blob-hashes", "files"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the drill's report lacks %q:\n%s", want, r.stdout)
		}
	}
	rec := drillRecord(t, root, good)
	if rec == nil || !rec.OK || rec.Restore <= 0 || rec.Restore > rec.Duration || len(rec.Checks) < 6 {
		t.Fatalf("the drill's record: %+v", rec)
	}
	for _, c := range rec.Checks {
		if c.Name == "references" && !strings.Contains(c.Summary, "42") {
			t.Errorf("the references check did not resolve the 42 blobs the database names: %q", c.Summary)
		}
	}
	if got := siteState(t, s.site); got != before {
		t.Fatal("a drill changed the live site")
	}
	if left := drillLeftovers(t); len(left) > 0 {
		t.Fatalf("the drill left %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, repo.DrillMarkerFile)); !os.IsNotExist(err) {
		t.Fatalf("the drill left its marker: %v", err)
	}
	if l := mbk(t, runOpts{}, "list", file); l.code != 0 || !strings.Contains(l.stdout, "DRILL") || !strings.Contains(l.stdout, "passed "+time.Now().Format("2006-01-02")) {
		t.Fatalf("mbk list does not show the drill: %s", l)
	}
	var info struct {
		Set   string           `json:"set"`
		Drill *sdk.DrillReport `json:"drill"`
	}
	if i := mbk(t, runOpts{}, "info", file, "--json"); i.code != 0 || json.Unmarshal([]byte(i.stdout), &info) != nil || info.Drill == nil || !info.Drill.OK || info.Set != good {
		t.Fatalf("mbk info --json does not hold the drill: %s", i)
	}
	if _, ok := mailWith(mail.WaitMessages(t, 1, 30*time.Second), "DRILL OK "+good); !ok {
		t.Fatal("no DRILL OK e-mail")
	}

	// The database references a file whose blob is in no archive.
	s.db.SQL(t, "INSERT INTO moodle.mdl_files (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, filesize, timecreated, timemodified) "+
		"VALUES ('0123456789abcdef0123456789abcdef01234567', SHA1('lost'), 99, 'assignsubmission_file', 'submission_files', 7, '/', 'Deberes de Ana.pdf', 1234, 1, 1);")
	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	lacking := sets(t, root)[1]
	r = mbk(t, runOpts{env: s.env()}, "drill", file)
	if r.code != 1 || !strings.Contains(r.stdout, "FAILED") ||
		!strings.Contains(r.stdout, "missing blob 0123456789abcdef0123456789abcdef01234567: assignsubmission_file/submission_files/Deberes de Ana.pdf") {
		t.Fatalf("a set lacking a referenced blob must fail naming it: %s", r)
	}
	if rec := drillRecord(t, root, lacking); rec == nil || rec.OK {
		t.Fatalf("the failed drill's record: %+v", rec)
	}
	msgs := mail.WaitMessages(t, 2, 30*time.Second)
	if body, ok := mailWith(msgs, "DRILL FAILED "+lacking); !ok || !strings.Contains(body, "Deberes de Ana.pdf") {
		t.Fatalf("the failed drill's e-mail: %v", ok)
	}
	s.db.SQL(t, "DELETE FROM moodle.mdl_files WHERE filename = 'Deberes de Ana.pdf';")

	// A blob changed on disk: its content no longer hashes to its name.
	hash := strings.Fields(s.blobs[3])[0]
	blob := fmt.Sprintf("/data/filedir/%s/%s/%s", hash[:2], hash[2:4], hash)
	if _, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", "printf X | dd of="+blob+" bs=1 seek=0 conv=notrunc 2>/dev/null"); code != 0 {
		t.Fatal(stderr)
	}
	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	r = mbk(t, runOpts{env: s.env()}, "drill", file, "--sample", "100")
	if r.code != 1 || !strings.Contains(r.stdout, "blob-hashes") || !strings.Contains(r.stdout, hash) {
		t.Fatalf("a blob that does not match its name must fail the sample: %s", r)
	}

	// verify --deep: the checksums, then a drill of what verified.
	if v := mbk(t, runOpts{env: s.env()}, "verify", file, good, "--deep"); v.code != 0 || !strings.Contains(v.stdout, good+": OK") ||
		!strings.Contains(v.stdout, "Drill of set "+good+" (local) of pipeline \"school\": PASSED") {
		t.Fatalf("verify --deep of the good set: %s", v)
	}

	// Killed once the sandboxes exist: they stay until the next run.
	b := startMbk(t, s.env(), "drill", file, good)
	b.waitFor("the drill's sandboxes", func() bool { return len(drillLeftovers(t)) >= 2 })
	b.kill()
	if _, err := os.Stat(filepath.Join(root, repo.DrillMarkerFile)); err != nil {
		t.Fatalf("the killed drill left no marker: %v", err)
	}
	if len(drillLeftovers(t)) == 0 {
		t.Fatal("the killed drill left nothing: the test proves nothing")
	}
	r = mbk(t, runOpts{env: s.env()}, "run", file)
	if r.code != 0 || !strings.Contains(r.stderr, "removing what an interrupted drill left") {
		t.Fatalf("the next run: %s", r)
	}
	if left := drillLeftovers(t); len(left) > 0 {
		t.Fatalf("the next run left the killed drill's %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, repo.DrillMarkerFile)); !os.IsNotExist(err) {
		t.Fatalf("the next run left the drill marker: %v", err)
	}
}

// TestDrillFromStoreOnAFreshMachine: with only the pipeline file (a root that
// does not exist yet) and the signing public key, not the private one, a
// drill from the S3 store checks the set's signature and proves the
// off-site copy.
func TestDrillFromStoreOnAFreshMachine(t *testing.T) {
	s := newMoodleSite(t)
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	s3 := storetest.StartS3(t)
	store := "stage \"store\" \"s3\" {\n    " + s3.Stage(s3.Bucket, "moodle/school") + "\n  }"
	env := s.env(s3.Env()...)
	dir := t.TempDir()
	if g := mbk(t, runOpts{}, "key", "generate", filepath.Join(dir, "mbk.key")); g.code != 0 {
		t.Fatalf("key generate: %s", g)
	}
	signed := store + "\n  " + signingBlock(filepath.Join(dir, "mbk.key"), filepath.Join(dir, "mbk.pub"))
	file := writeFile(t, dir, "school.hcl", drillPipeline("school", filepath.Join(dir, "backups"), s, mail, signed))
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	set := sets(t, filepath.Join(dir, "backups"))[0]

	// The fresh machine has the public key, not the private one.
	other := t.TempDir()
	fresh := filepath.Join(other, "nothing-here-yet")
	pub := writeFile(t, other, "mbk.pub", readFile(t, filepath.Join(dir, "mbk.pub")))
	signed = store + "\n  " + signingBlock(filepath.Join(other, "absent.key"), pub)
	file2 := writeFile(t, other, "school.hcl", drillPipeline("school", fresh, s, mail, signed))
	r := mbk(t, runOpts{env: env}, "drill", file2, "--from", "s3")
	if r.code != 0 || !strings.Contains(r.stdout, "Drill of set "+set+" (s3)") || !strings.Contains(r.stdout, "PASSED") {
		t.Fatalf("a drill from the store on a fresh root: %s", r)
	}
	rec := drillRecord(t, fresh, set)
	if rec == nil || !rec.OK || rec.From != "s3" {
		t.Fatalf("the record in the fresh root: %+v", rec)
	}
	entries, _ := os.ReadDir(filepath.Join(fresh, repo.DrillDir))
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("the drill left its download %s", e.Name())
		}
	}
	if left := drillLeftovers(t); len(left) > 0 {
		t.Fatalf("the drill left %v", left)
	}

	// The stored copy loses its manifest's signature: the drill refuses it.
	if err := os.Remove(filepath.Join(s3.Dir, s3.Bucket, "moodle", "school", set, repo.ManifestFile+repo.SignatureExt)); err != nil {
		t.Fatal(err)
	}
	r = mbk(t, runOpts{env: env}, "drill", file2, "--from", "s3", "--no-record")
	if r.code != 1 || !strings.Contains(r.stdout, "manifest.json.minisig: missing: the set is not signed") {
		t.Fatalf("a drill of an unsigned copy: %s", r)
	}
}

// TestDrillScheduledByTheDaemon: a drill block's schedule runs drills from
// mbk daemon, and the result reaches the SMTP server.
func TestDrillScheduledByTheDaemon(t *testing.T) {
	s := newMoodleSite(t)
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "school.hcl", drillPipeline("school", root, s, mail, `drill {
    schedule = "*/2 * * * *"
  }`))
	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	set := sets(t, root)[0]
	d := startDaemonEnv(t, s.env(), file)
	d.waitLog("a scheduled drill", func(log string) bool { return strings.Contains(log, "drill finished") })
	d.signal(syscall.SIGTERM)
	if code := d.exit(); code != 0 {
		t.Fatalf("daemon exit %d\n%s", code, d)
	}
	if _, ok := mailWith(mail.WaitMessages(t, 1, 30*time.Second), "DRILL OK "+set); !ok {
		t.Fatalf("the scheduled drill mailed nothing\n%s", d)
	}
	if rec := drillRecord(t, root, set); rec == nil || !rec.OK {
		t.Fatalf("the scheduled drill's record: %+v", rec)
	}
}

// TestDrillWithoutASandbox: a stage whose plugin makes no drill sandbox (the
// faulty test plugin) could only be restored over the site, so the drill
// refuses before restoring anything: exit 1 naming the stage and the plugin,
// a failed record for the set, no marker left. No drill at all on a root
// without a set: exit 1, no record.
func TestDrillWithoutASandbox(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, pipelineBlock("school", root, "", okDump))

	r := mbk(t, runOpts{}, "drill", file)
	if r.code != 1 || !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stdout, "no complete set to drill") {
		t.Fatalf("a drill with no set: %s", r)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, repo.DrillDir)); len(entries) != 0 {
		t.Fatalf("a drill that found no set kept %d files in %s", len(entries), repo.DrillDir)
	}

	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	set := sets(t, root)[0]
	r = mbk(t, runOpts{}, "drill", file)
	if r.code != 1 || !strings.Contains(r.stdout, `stage dump "faulty": plugin "faulty" cannot make a drill sandbox`) {
		t.Fatalf("a plugin without sandboxes: %s", r)
	}
	if rec := drillRecord(t, root, set); rec == nil || rec.OK || !strings.Contains(rec.Error, "cannot make a drill sandbox") || rec.Restore != 0 {
		t.Fatalf("the refused drill's record: %+v", rec)
	}
	if _, err := os.Stat(filepath.Join(root, repo.DrillMarkerFile)); !os.IsNotExist(err) {
		t.Fatalf("the refused drill left its marker: %v", err)
	}
}

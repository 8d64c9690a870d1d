package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// safetyPipeline is a site with maintenance mode and a failure notifier.
const safetyPipeline = `pipeline "safe" {
  root    = %q
  timeout = "10m"

  %s
  stage "dump" "mysql" {
    container = %q
    database  = "moodle"
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
  }
  stage "archive" "volume" {
    volume  = %q
    exclude = ["cache", "climaintenance.html"]
  }
  stage "checksum" "sha256" {}
  stage "notify" "webhook" {
    url = %q
    on  = ["failure"]
  }
}
`

// siteState is what a restore must give back: every table's checksum and
// every file's hash (maintenance's own flag aside).
func siteState(t *testing.T, s *site) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"mdl_user", "mdl_course", "mdl_logstore_standard_log"} {
		b.WriteString(s.db.SQL(t, "CHECKSUM TABLE moodle."+table+";"))
	}
	out, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", "cd /data && find . -type f ! -name climaintenance.html ! -path './cache/*' | sort | xargs sha256sum")
	if code != 0 {
		t.Fatalf("fingerprint the files: %s", stderr)
	}
	return b.String() + out
}

func inMaintenance(t *testing.T, s *site) bool { return testenv.InMaintenance(t, s.app) }

// TestRestoreSafety: an in-place restore takes a safety copy first; one that
// fails midway leaves the site in maintenance mode and backups refused
// (with a failure notification) until the safety copy puts the site back
// exactly; and a root without room for the copy refuses before anything
// is touched.
func TestRestoreSafety(t *testing.T) {
	s := newSite(t)
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "safe.hcl", fmt.Sprintf(safetyPipeline, root, testenv.MaintenanceBlock(s.app), s.db.Container, s.volume, srv.URL))
	env := append(s.env(), "MBK_PLUGIN_DIR="+filepath.Join(binDir, "extra"))

	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("first backup: %s", r)
	}
	backup := sets(t, root)[0]

	// The site moves on after the backup: this is what a bad restore
	// must not lose.
	s.db.SQL(t, "INSERT INTO moodle.mdl_user (username, firstname) VALUES ('late', 'Enrolled after the backup');")
	if _, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", "mkdir -p /data/filedir/zz && echo homework > /data/filedir/zz/late"); code != 0 {
		t.Fatal(stderr)
	}
	before := siteState(t, s)

	// The safety copy itself fails (the user may not read its database):
	// the restore does not start, and the site is left as it was, out of
	// maintenance mode, with no marker.
	s.db.SQL(t, "REVOKE SELECT ON moodle.* FROM 'moodle'@'%'; REVOKE SELECT ON moodle.* FROM 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	r := mbk(t, runOpts{env: env}, "restore", file, backup, "--yes", "--clean")
	if r.code != 1 || !strings.Contains(flat(r.stderr), "the safety copy of the site failed, so the restore did not start") ||
		!strings.Contains(r.stderr, "Nothing was restored") {
		t.Fatalf("a failed safety copy: %s", r)
	}
	s.db.SQL(t, "GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'%'; GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	if got := siteState(t, s); got != before {
		t.Errorf("a restore whose safety copy failed changed the site")
	}
	if inMaintenance(t, s) {
		t.Error("a restore whose safety copy failed left the site in maintenance mode")
	}
	if _, err := os.Stat(filepath.Join(root, repo.RestoreMarkerFile)); !os.IsNotExist(err) {
		t.Errorf("a restore whose safety copy failed left a marker: %v", err)
	}
	if got := sets(t, root); len(got) != 1 {
		t.Fatalf("a failed safety copy left a set: %v", got)
	}

	// The database user may no longer drop its database: the load fails
	// after the files were restored, with the site half old, half new.
	s.db.SQL(t, "REVOKE DROP ON moodle.* FROM 'moodle'@'%'; REVOKE DROP ON moodle.* FROM 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	r = mbk(t, runOpts{env: env}, "restore", file, backup, "--yes", "--clean")
	if r.code != 1 {
		t.Fatalf("the restore should fail: %s", r)
	}
	all := sets(t, root)
	if len(all) != 2 {
		t.Fatalf("want the backup and a safety copy, got %v", all)
	}
	safety := all[1]
	m, err := repo.ReadManifest(filepath.Join(root, safety))
	if err != nil || m.Kind != repo.KindPreRestore || m.Restoring != backup {
		t.Fatalf("the safety copy's manifest: %+v, %v", m, err)
	}
	out := flat(r.stderr)
	for _, want := range []string{
		"The restore did not finish",
		"stays in maintenance mode",
		"To put the site back as it was before: mbk restore " + file + " " + safety + " --yes --clean",
		"To try the restore again: mbk restore " + file + " " + backup + " --clean",
		"mbk restore " + file + " --abandon",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	if !inMaintenance(t, s) {
		t.Error("a failed restore took the site out of maintenance mode")
	}
	if _, err := os.Stat(filepath.Join(root, repo.RestoreMarkerFile)); err != nil {
		t.Errorf("no restore marker after a failed restore: %v", err)
	}
	if l := mbk(t, runOpts{env: env}, "list", file); !strings.Contains(l.stdout, safety) || !strings.Contains(l.stdout, "pre-restore") {
		t.Errorf("mbk list does not show the safety copy as such:\n%s", l)
	}

	// Backups are refused while the site holds part of a set, and say why.
	notes := len(sink.got())
	r = mbk(t, runOpts{env: env}, "run", file)
	if r.code != 1 || !strings.Contains(flat(r.stderr+r.stdout), "a restore of set "+backup+" is unfinished") {
		t.Fatalf("a run over an unfinished restore: %s", r)
	}
	if len(sets(t, root)) != 2 {
		t.Errorf("a refused run made a set: %v", sets(t, root))
	}
	if got := sink.got(); len(got) != notes+1 || !strings.Contains(got[len(got)-1], "is unfinished") {
		t.Errorf("no failure notification for the refused run: %q", got[notes:])
	}

	// The safety copy puts the site back exactly as it was, and takes no
	// copy of the half-restored site.
	s.db.SQL(t, "GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'%'; GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	if r := mbk(t, runOpts{env: env}, "restore", file, safety, "--yes", "--clean"); r.code != 0 {
		t.Fatalf("restore of the safety copy: %s", r)
	}
	if got := siteState(t, s); got != before {
		t.Errorf("the safety copy did not put the site back:\n--- before\n%s--- after\n%s", before, got)
	}
	if len(sets(t, root)) != 2 {
		t.Errorf("finishing a restore took another safety copy: %v", sets(t, root))
	}
	if inMaintenance(t, s) {
		t.Error("the site is still in maintenance mode after a restore that completed")
	}
	if _, err := os.Stat(filepath.Join(root, repo.RestoreMarkerFile)); !os.IsNotExist(err) {
		t.Errorf("the restore marker is still there: %v", err)
	}
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("backups resume after the restore: %s", r)
	}
	if r := mbk(t, runOpts{env: env}, "restore", file, "--abandon"); r.code != 0 || !strings.Contains(r.stdout, "nothing to abandon") {
		t.Errorf("--abandon with nothing unfinished: %s", r)
	}

	// Another restore fails; this time the administrator accepts the site
	// as it is: --abandon removes the marker, ends the maintenance mode
	// mbk switched on, and backups resume.
	s.db.SQL(t, "REVOKE DROP ON moodle.* FROM 'moodle'@'%'; REVOKE DROP ON moodle.* FROM 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	if r := mbk(t, runOpts{env: env}, "restore", file, backup, "--yes", "--clean"); r.code != 1 || !inMaintenance(t, s) {
		t.Fatalf("the second restore should fail, leaving maintenance on: %s", r)
	}
	s.db.SQL(t, "GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'%'; GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	if r := mbk(t, runOpts{env: env}, "restore", file, "--abandon"); r.code != 0 || !strings.Contains(r.stdout, "The unfinished restore of set "+backup+" is abandoned") {
		t.Fatalf("--abandon: %s", r)
	}
	if inMaintenance(t, s) {
		t.Error("--abandon left the site in maintenance mode")
	}
	if _, err := os.Stat(filepath.Join(root, repo.RestoreMarkerFile)); !os.IsNotExist(err) {
		t.Errorf("--abandon left the marker: %v", err)
	}
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("backups resume after --abandon: %s", r)
	}
	// The default set to restore is the newest backup, never a copy. Into
	// another database (which this user may not create), it fails without
	// touching the site: no maintenance mode, no marker, backups go on.
	all = sets(t, root)
	r = mbk(t, runOpts{env: env}, "restore", file, "--yes", "--only", "db", "--target-database", "moodle_check")
	if !strings.Contains(r.stdout, "Restoring set "+all[len(all)-1]) || r.code != 1 || !strings.Contains(r.stderr, "The site itself was not touched") {
		t.Errorf("the default set, to another database: %s", r)
	}
	if inMaintenance(t, s) {
		t.Error("a restore to another database put the site in maintenance mode")
	}
	if _, err := os.Stat(filepath.Join(root, repo.RestoreMarkerFile)); !os.IsNotExist(err) {
		t.Errorf("a restore to another database left a marker: %v", err)
	}
}

// TestRestoreSafetyNoRoom: a root whose disk cannot hold the safety copy
// refuses an in-place restore before touching anything, saying how much
// space is missing; --no-safety-copy is the way past.
func TestRestoreSafetyNoRoom(t *testing.T) {
	s := newSite(t)
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs (the tests run as root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	root := filepath.Join(mnt, "backups")
	dir := t.TempDir()
	file := writeFile(t, dir, "safe.hcl", fmt.Sprintf(safetyPipeline, root, testenv.MaintenanceBlock(s.app), s.db.Container, s.volume, "http://127.0.0.1:9/"))
	env := append(s.env(), "MBK_PLUGIN_DIR="+filepath.Join(binDir, "extra"))
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	// Fill the disk but for a few KiB.
	if out, err := exec.Command("sh", "-c", "dd if=/dev/zero of="+filepath.Join(mnt, "filler")+" bs=64k 2>/dev/null; true").CombinedOutput(); err != nil {
		t.Fatalf("fill: %v %s", err, out)
	}
	s.db.SQL(t, "INSERT INTO moodle.mdl_user (username, firstname) VALUES ('late', 'after the backup');")
	before := siteState(t, s)
	r := mbk(t, runOpts{env: env}, "restore", file, "--yes", "--clean")
	if r.code != 1 || !strings.Contains(flat(r.stderr), "missing") || !strings.Contains(flat(r.stderr), "--no-safety-copy") ||
		!strings.Contains(flat(r.stderr), "Nothing was restored") {
		t.Fatalf("want a refusal that says how much space is missing: %s", r)
	}
	if got := siteState(t, s); got != before {
		t.Errorf("a refused restore changed the site")
	}
	if inMaintenance(t, s) {
		t.Error("a refused restore left the site in maintenance mode")
	}
	if _, err := os.Stat(filepath.Join(root, repo.RestoreMarkerFile)); !os.IsNotExist(err) {
		t.Errorf("a refused restore left a marker: %v", err)
	}
	if got := sets(t, root); len(got) != 1 {
		t.Errorf("sets after the refusal: %v", got)
	}
	// Room for the markers, not for a copy: --no-safety-copy restores
	// without one.
	if err := os.Truncate(filepath.Join(mnt, "filler"), 3<<20); err != nil {
		t.Fatal(err)
	}
	if r := mbk(t, runOpts{env: env}, "restore", file, "--yes", "--clean", "--no-safety-copy"); r.code != 0 || !strings.Contains(r.stderr, "WITHOUT a safety copy") {
		t.Fatalf("--no-safety-copy: %s", r)
	}
	if got := sets(t, root); len(got) != 1 {
		t.Errorf("--no-safety-copy made a set: %v", got)
	}
}

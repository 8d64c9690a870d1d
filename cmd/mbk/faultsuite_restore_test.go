package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// The fault suite on the restore path: an in-place `mbk restore SET --yes
// --clean` of a site that moved on since SET is hit while it loads the
// database or unpacks the files. After each fault the restore marker stops
// backups, the site stays in maintenance mode, the safety copy the restore
// took puts the exact site back, and the same restore then completes.

// restoreFaultPipeline is a site with maintenance mode, the database, the
// files (source: a volume or a host path) and checksums.
const restoreFaultPipeline = `pipeline "rf" {
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
    %s
    exclude     = ["cache", "climaintenance.html"]
    compression = "zstd"
  }
  stage "checksum" "sha256" {}
}
`

// restoreBed is a site, its pipeline and the set the faults restore.
type restoreBed struct {
	s          *site
	file, root string
	env        []string
	set        string // the backup every fault restores
	setState   string // the site as set holds it
	bigRows    int    // rows of mdl_big in set
}

// state is siteState with mdl_big, the table a killed load leaves half full.
func (b *restoreBed) state(t *testing.T) string {
	t.Helper()
	return siteState(t, b.s) + b.s.db.SQL(t, "CHECKSUM TABLE moodle.mdl_big;")
}

// newRestoreBed installs the maintenance script, adds mdl_big to the site
// and takes the backup the faults restore.
func newRestoreBed(t *testing.T, s *site, source string, bigRows int) *restoreBed {
	t.Helper()
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	s.db.SQL(t, fmt.Sprintf(`USE moodle; CREATE TABLE mdl_big (id BIGINT PRIMARY KEY, a CHAR(32), b CHAR(32), c CHAR(32)) ENGINE=InnoDB;
INSERT INTO mdl_big SELECT seq, MD5(seq), MD5(seq+1), MD5(seq+2) FROM seq_1_to_%d;`, bigRows))
	dir := t.TempDir()
	b := &restoreBed{s: s, root: filepath.Join(dir, "backups"), bigRows: bigRows}
	b.file = writeFile(t, dir, "rf.hcl", fmt.Sprintf(restoreFaultPipeline, b.root, testenv.MaintenanceBlock(s.app), s.db.Container, source))
	b.env = s.env()
	if r := mbk(t, runOpts{env: b.env}, "run", b.file); r.code != 0 {
		t.Fatalf("the backup the faults restore: %s", r)
	}
	b.set = sets(t, b.root)[0]
	b.setState = b.state(t)
	return b
}

// restoreFault is one fault that hits `mbk restore SET --yes --clean`.
type restoreFault struct {
	name string
	// moveOn changes the site after the backup (beyond a new user and a
	// new file, which every case adds).
	moveOn func(t *testing.T, b *restoreBed)
	// hit waits for the moment and strikes; killed says it killed mbk.
	hit    func(t *testing.T, b *restoreBed, r *bgRun)
	killed bool
	want   []string // what the failed restore says (not for a kill)
	// repair is what the administrator does before restoring the safety
	// copy: start the database again, free space.
	repair func(t *testing.T, b *restoreBed)
}

// runRestoreFault runs one fault and everything that must hold after it.
func runRestoreFault(t *testing.T, b *restoreBed, f restoreFault) {
	t.Helper()
	s := b.s
	tag := strings.NewReplacer(" ", "_", "/", "_").Replace(f.name)
	s.db.SQL(t, fmt.Sprintf("INSERT INTO moodle.mdl_user (username, firstname) VALUES ('late-%s', 'After the backup');", tag))
	if _, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", "mkdir -p /data/filedir/zz && echo homework > /data/filedir/zz/"+tag); code != 0 {
		t.Fatal(stderr)
	}
	if f.moveOn != nil {
		f.moveOn(t, b)
	}
	before := b.state(t)
	if before == b.setState {
		t.Fatal("the site did not move on from the backup: the test would prove nothing")
	}
	nsets := len(sets(t, b.root))

	r := startMbk(t, b.env, "restore", b.file, b.set, "--yes", "--clean")
	f.hit(t, b, r)
	res := r.wait()
	out := flat(res.stdout + res.stderr)
	if f.killed {
		if res.code != -9 {
			t.Fatalf("mbk was not killed by the test (exit %d)\n%s", res.code, r)
		}
	} else {
		if res.code != 1 {
			t.Fatalf("want exit 1 from the failed restore\n%s", r)
		}
		for _, w := range append([]string{"The restore did not finish", "stays in maintenance mode"}, f.want...) {
			if !strings.Contains(out, w) {
				t.Errorf("the failed restore does not say %q\n%s", w, r)
			}
		}
	}
	if !f.killed {
		t.Logf("the failed restore said: %s", lastLines(res.stderr, 12))
	}
	waitGone(t, "plugin processes", ourPlugins())

	// The marker names the set and the safety copy; the copy is one.
	m, err := repo.ReadRestoreMarker(b.root)
	if err != nil || m == nil {
		t.Fatalf("no restore marker after the fault: %v\n%s", err, r)
	}
	if m.Set != b.set || m.Safety == "" || (m.Error == "") != f.killed {
		t.Errorf("the marker: %+v (killed: %v)", m, f.killed)
	}
	safety := m.Safety
	if sm, err := repo.ReadManifest(filepath.Join(b.root, safety)); err != nil || sm.Kind != repo.KindPreRestore || sm.Restoring != b.set {
		t.Fatalf("the safety copy %s: %+v %v", safety, sm, err)
	}
	if !inMaintenance(t, s) {
		t.Error("the site is out of maintenance mode after the fault: its users see a half-restored site " +
			"(Bug 8 in TESTING.md: plugins/volume empties the dataroot, climaintenance.html with it, before it extracts)")
	}

	// Backups are refused, saying why.
	why := "it was interrupted"
	if !f.killed {
		why = "it failed: "
	}
	rr := mbk(t, runOpts{env: b.env}, "run", b.file)
	if rr.code != 1 || !strings.Contains(flat(rr.stderr+rr.stdout), "a restore of set "+b.set+" is unfinished") ||
		!strings.Contains(flat(rr.stderr+rr.stdout), why) {
		t.Fatalf("mbk run over the unfinished restore: want exit 1 with the marker's reason (%q): %s", why, rr)
	}
	if got := sets(t, b.root); len(got) != nsets+1 {
		t.Errorf("want the sets before and the safety copy, got %v", got)
	}

	if f.repair != nil {
		f.repair(t, b)
	}
	// The safety copy puts back the exact site.
	if rs := mbk(t, runOpts{env: b.env}, "restore", b.file, safety, "--yes", "--clean"); rs.code != 0 {
		t.Fatalf("restore of the safety copy %s: %s", safety, rs)
	}
	if got := b.state(t); got != before {
		t.Errorf("the safety copy did not put the site back:\n--- before\n%s--- after\n%s", before, got)
	}
	if inMaintenance(t, s) {
		t.Error("still in maintenance mode after the safety copy was restored")
	}
	if m, err := repo.ReadRestoreMarker(b.root); m != nil || err != nil {
		t.Errorf("the marker outlived the restore that completed: %+v %v", m, err)
	}

	// The restore of the set now completes, and backups resume.
	if rs := mbk(t, runOpts{env: b.env}, "restore", b.file, b.set, "--yes", "--clean"); rs.code != 0 {
		t.Fatalf("the restore of %s again: %s", b.set, rs)
	}
	if got := b.state(t); got != b.setState {
		t.Errorf("the restore of %s again does not give back the set:\n--- set\n%s--- after\n%s", b.set, b.setState, got)
	}
	if inMaintenance(t, s) {
		t.Error("still in maintenance mode after the restore completed")
	}
	if rr := mbk(t, runOpts{env: b.env}, "run", b.file); rr.code != 0 {
		t.Fatalf("backups do not resume: %s", rr)
	}
	noLeftovers(t, b.root)
}

// bigCount is how many rows of mdl_big the server has now; -1 when the
// table is not there (dropped, not yet created).
func bigCount(t *testing.T, b *restoreBed) int {
	out, _, code := testenv.Exec(t, b.s.db.Container, strings.NewReader("SELECT COUNT(*) FROM moodle.mdl_big;"),
		"mariadb", "-uroot", "--batch", "--skip-column-names")
	if code != 0 {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return -1
	}
	return n
}

// waitLoading waits until the restore's load has put part of mdl_big back:
// the safety copy is committed, the old database dropped, some rows in.
func waitLoading(t *testing.T, b *restoreBed, r *bgRun) int {
	t.Helper()
	r.waitStderr("safety copy committed")
	n := 0
	r.waitFor("mdl_big partly loaded", func() bool {
		n = bigCount(t, b)
		return n > 0 && n < b.bigRows
	})
	return n
}

// TestFaultSuiteRestore: on a site of a volume and a MariaDB container,
// mbk restore is killed in the database load and in the file extract, and
// the database container is stopped in the load.
func TestFaultSuiteRestore(t *testing.T) {
	const rows = 400000
	const blob = 128 << 20
	s := newSite(t)
	if _, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", fmt.Sprintf("mkdir -p /data/bulk && head -c %d /dev/urandom > /data/bulk/blob && chown -R 33:33 /data/bulk", blob)); code != 0 {
		t.Fatalf("fill /data/bulk: %s", stderr)
	}
	b := newRestoreBed(t, s, fmt.Sprintf("volume = %q", s.volume), rows)
	ctx, cancel := dockerCtx()
	vol, err := testenv.Docker(t).VolumeInspect(ctx, s.volume)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	mnt := vol.Mountpoint

	for _, f := range []restoreFault{
		{
			name: "SIGKILL of mbk restore during the database load",
			hit: func(t *testing.T, b *restoreBed, r *bgRun) {
				// The files go first (side by side with the load, and far
				// quicker): the kill lands in the load alone. The restored
				// files do not hold the maintenance flag; the site must be
				// closed again while the database still loads.
				r.waitStderr("restore finished: file=moodledata")
				r.waitFor("the site back in maintenance mode, or the load finished", func() bool {
					_, e := r.output()
					return inMaintenance(t, s) || strings.Contains(e, "restore finished: file=moodle_")
				})
				if !inMaintenance(t, s) {
					t.Fatal("the site left maintenance mode once the files were restored, and stayed out while the database loaded")
				}
				n := waitLoading(t, b, r)
				r.kill()
				t.Logf("killed mbk restore with %d of %d rows of mdl_big loaded", n, rows)
				waitNoneIn(t, s.db.Container, "--database=moodle")
				if got := bigCount(t, b); got >= rows {
					t.Errorf("the load was complete (%d rows): the kill did not land in it", got)
				}
			},
			killed: true,
		},
		{
			name: "SIGKILL of mbk restore during the file extract",
			hit: func(t *testing.T, b *restoreBed, r *bgRun) {
				r.waitStderr("safety copy committed")
				// The blob is written in place, or in a staging directory
				// in the volume that is swapped in at the end.
				var at string
				r.waitFor("the blob partly extracted", func() bool {
					for _, pattern := range []string{filepath.Join(mnt, "bulk", "blob"), filepath.Join(mnt, "*", "*", "bulk", "blob")} {
						found, _ := filepath.Glob(pattern)
						for _, f := range found {
							if st, err := os.Stat(f); err == nil && st.Size() > 0 && st.Size() < blob {
								at = f
								return true
							}
						}
					}
					return false
				})
				partial, _ := os.Stat(at)
				r.kill()
				// A staging directory may be gone already: the plugin,
				// told to stop, removes it and leaves the old files.
				if st, err := os.Stat(at); err == nil && st.Size() >= blob {
					t.Fatalf("the extract was complete: the kill did not land in it (%d bytes)", st.Size())
				}
				t.Logf("killed mbk restore with %d of %d bytes of the blob extracted (in %s)", partial.Size(), blob, at)
			},
			killed: true,
		},
		{
			name: "the database container stopped during the load",
			hit: func(t *testing.T, b *restoreBed, r *bgRun) {
				waitLoading(t, b, r)
				ctx, cancel := dockerCtx()
				defer cancel()
				if err := testenv.Docker(t).ContainerStop(ctx, s.db.Container, container.StopOptions{}); err != nil {
					t.Fatalf("stop the database container: %v", err)
				}
			},
			want: []string{`dump "mysql"`, s.db.Container},
			repair: func(t *testing.T, b *restoreBed) {
				startDB(t, b.s.db.Container)
			},
		},
	} {
		t.Run(f.name, func(t *testing.T) { runRestoreFault(t, b, f) })
	}
}

// startDB starts a stopped database container and waits until it answers.
func startDB(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := dockerCtx()
	defer cancel()
	if err := testenv.Docker(t).ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		t.Fatalf("start %s again: %v", name, err)
	}
	deadline := time.Now().Add(startDeadline)
	for {
		if _, _, code := testenv.Exec(t, name, nil, "mariadb", "-uroot", "-e", "select 1"); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer after a restart", name)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// mountTmpfs mounts a tmpfs of size at a new directory, unmounted at the
// end of the test (after what was registered later, containers included).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs (the tests run as root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// mariadbOnTmpfs is testenv's MariaDB with its datadir on a tmpfs of size
// inside the container (and a small redo log, so that the data has room).
func mariadbOnTmpfs(t *testing.T, size string) *testenv.MariaDB {
	t.Helper()
	cli := testenv.Docker(t)
	name := testenv.UniqueName(t, "mbktest-db")
	t.Cleanup(func() {
		ctx, cancel := dockerCtx()
		defer cancel()
		cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	script := `set -e
mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db >/tmp/init.log 2>&1 || { cat /tmp/init.log >&2; exit 1; }
exec mariadbd --user=root --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
  --pid-file=/run/mysqld/mysqld.pid --bind-address=0.0.0.0 --innodb-log-file-size=8M`
	ctx, cancel := dockerCtx()
	defer cancel()
	if _, err := cli.ContainerCreate(ctx,
		&container.Config{Image: testenv.Image, Hostname: name, Cmd: []string{"sh", "-c", script},
			Env: []string{"LANG=C.UTF-8"}, Labels: map[string]string{testenv.Label: "1"}},
		&container.HostConfig{Binds: []string{"/usr:/usr:ro", "/etc:/etc:ro"}, Tmpfs: map[string]string{"/var/lib/mysql": "size=" + size}},
		nil, nil, name); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	deadline := time.Now().Add(startDeadline)
	for {
		if _, _, code := testenv.Exec(t, name, nil, "mariadb", "-uroot", "-e", "select 1"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MariaDB on a tmpfs in %s is not ready", name)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return &testenv.MariaDB{Container: name}
}

// fillBut fills the filesystem of path (in container ctr, or on the host
// when ctr is "") with a file, then gives back keep bytes.
func fillBut(t *testing.T, ctr, path string, keep int) {
	t.Helper()
	sh := fmt.Sprintf("dd if=/dev/zero of=%s bs=1M 2>/dev/null; truncate -s -%d %s && sync", path, keep, path)
	if ctr == "" {
		if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
			t.Fatalf("fill %s: %v %s", path, err, out)
		}
		return
	}
	if _, stderr, code := testenv.Exec(t, ctr, nil, "sh", "-c", sh); code != 0 {
		t.Fatalf("fill %s in %s: %s", path, ctr, stderr)
	}
}

// TestFaultSuiteRestoreDiskFull: a site whose database lives on a small
// tmpfs (the server's datadir) and whose files live in a host directory on
// a small tmpfs (the archive stage's path source; the app container mounts
// it at /data). After the backup the site shrank: an administrator purged
// mdl_big, and deleted a big file; and something else filled each disk but
// for a little. The restore of the backup, bigger than what is now free,
// fills the disk in the load, then in the extract.
func TestFaultSuiteRestoreDiskFull(t *testing.T) {
	const rows = 150000
	files := mountTmpfs(t, "48m")
	data := filepath.Join(files, "moodledata")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &site{password: "Pa$$ " + testenv.UniqueName(t, "x")}
	s.db = mariadbOnTmpfs(t, "160m")
	s.db.CreateUser(t, "moodle", "moodle", s.password)
	s.db.SQL(t, moodleSchema)
	s.app = testenv.StartApp(t, data, "/data")
	if _, stderr, code := testenv.Exec(t, s.app, strings.NewReader(moodledataScript+"\nhead -c 16777216 /dev/urandom > /data/filedir/ab/big && chown 33:33 /data/filedir/ab/big\n"), "sh", "-s"); code != 0 {
		t.Fatalf("fill moodledata: %s", stderr)
	}
	b := newRestoreBed(t, s, fmt.Sprintf("path = %q", data), rows)
	dbFiller, fileFiller := "/var/lib/mysql/filler", filepath.Join(files, "filler")

	for _, f := range []restoreFault{
		{
			name: "disk full during the database load",
			moveOn: func(t *testing.T, b *restoreBed) {
				b.s.db.SQL(t, "TRUNCATE TABLE moodle.mdl_big;")
				fillBut(t, b.s.db.Container, dbFiller, 4<<20)
			},
			hit:    func(t *testing.T, b *restoreBed, r *bgRun) {},
			want:   []string{`dump "mysql"`, "mdl_big", "is full"},
			repair: func(t *testing.T, b *restoreBed) { testenv.Exec(t, b.s.db.Container, nil, "rm", dbFiller) },
		},
		{
			name: "disk full during the file extract",
			moveOn: func(t *testing.T, b *restoreBed) {
				if err := os.Remove(filepath.Join(data, "filedir", "ab", "big")); err != nil {
					t.Fatal(err)
				}
				fillBut(t, "", fileFiller, 1<<20)
			},
			hit:    func(t *testing.T, b *restoreBed, r *bgRun) {},
			want:   []string{`archive "volume"`, "no space left on device"},
			repair: func(t *testing.T, b *restoreBed) { os.Remove(fileFiller) },
		},
	} {
		t.Run(f.name, func(t *testing.T) { runRestoreFault(t, b, f) })
	}
}

// lastLines is the end of a command's output, for the test's log.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

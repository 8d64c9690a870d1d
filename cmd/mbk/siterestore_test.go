package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// sitePipelineNamed is safetyPipeline under another name, without a notifier.
const sitePipelineNamed = `pipeline %q {
  root    = %q
  timeout = "10m"

  %s
  stage "dump" "mysql" {
    container = %q
    database  = %q
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
  }
  stage "archive" "volume" {
    volume  = %q
    exclude = ["cache", "climaintenance.html"]
  }
  stage "checksum" "sha256" {}
}
`

// callsOf keeps the calls of one script, without the log's other lines.
func callsOf(calls []string, script string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, script) {
			out = append(out, c)
		}
	}
	return out
}

// TestRestoreBringsTheSiteBack: an in-place restore purges Moodle's caches
// and ends its sessions in the app container while the site is still in
// maintenance mode; a step that fails leaves the data restored, the site out
// of maintenance, and the restore exits 3 naming the step.
func TestRestoreBringsTheSiteBack(t *testing.T) {
	s := newSite(t)
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	testenv.SetMoodleConfig(t, s.app, "wwwroot", "https://school.example")
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "site.hcl", fmt.Sprintf(sitePipelineNamed, "site", root, testenv.MaintenanceBlock(s.app), s.db.Container, "moodle", s.volume))

	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	backup := sets(t, root)[0]
	m, err := repo.ReadManifest(filepath.Join(root, backup))
	if err != nil || m.WWWRoot != "https://school.example" {
		t.Fatalf("the backup did not record the site's URL from cfg.php: %+v, %v", m, err)
	}
	before := siteState(t, s)
	s.db.SQL(t, "DELETE FROM moodle.mdl_course;")

	r := mbk(t, runOpts{env: s.env()}, "restore", file, backup, "--yes", "--clean")
	if r.code != 0 {
		t.Fatalf("restore: %s", r)
	}
	calls := testenv.MoodleCalls(t, s.app)
	want := []string{"admin/cli/purge_caches.php [maintenance on]", "admin/cli/kill_all_sessions.php [maintenance on]"}
	got := slices.DeleteFunc(slices.Clone(calls), func(c string) bool { return strings.HasPrefix(c, "admin/cli/cfg.php") })
	if !slices.Equal(got, want) {
		t.Fatalf("the scripts run after the restore: %q, want %q", got, want)
	}
	for _, w := range []string{"done   purge_caches: Caches purged.", "done   kill_all_sessions: Sessions killed."} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("the restore does not report %q:\n%s", w, r)
		}
	}
	if siteState(t, s) != before || inMaintenance(t, s) {
		t.Fatalf("the site is not back as it was, out of maintenance")
	}

	// Purging fails: the data is restored all the same, the site leaves
	// maintenance mode, and the exit code and output say what to do.
	testenv.FailMoodleScript(t, s.app, "admin/cli/purge_caches.php")
	s.db.SQL(t, "DELETE FROM moodle.mdl_course;")
	r = mbk(t, runOpts{env: s.env()}, "restore", file, backup, "--yes", "--clean")
	if r.code != 3 || !strings.Contains(r.stdout, "FAILED purge_caches") || !strings.Contains(r.stdout, "failed on purpose") ||
		!strings.Contains(r.stderr, "the data is restored, but 1 step(s) in the app container failed") {
		t.Fatalf("a purge that fails: want exit 3 naming it: %s", r)
	}
	if siteState(t, s) != before || inMaintenance(t, s) {
		t.Fatal("after a failed purge the data is not restored, or the site stayed in maintenance")
	}
}

// TestCloneProductionIntoTesting: the seed keeps a production and a testing
// site; refreshing testing from production restores production's set into
// testing's containers with testing's confirmation and safety copy, replaces
// the URL in the database, switches e-mail off, and says what to set in
// config.php. Production is not touched.
func TestCloneProductionIntoTesting(t *testing.T) {
	prod, test := newSite(t), newSite(t)
	for _, s := range []*site{prod, test} {
		testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	}
	testenv.SetMoodleConfig(t, prod.app, "wwwroot", "https://moodle.school.example")
	prod.db.SQL(t, "INSERT INTO moodle.mdl_course (fullname) VALUES ('PROD1');")
	// Testing's database has its own name, as in the seed (moodle_test).
	test.db.SQL(t, `CREATE DATABASE moodle_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE TABLE moodle_test.mdl_course (id BIGINT PRIMARY KEY AUTO_INCREMENT, fullname VARCHAR(254)) ENGINE=InnoDB;
INSERT INTO moodle_test.mdl_course (fullname) VALUES ('TEST1');
GRANT ALL PRIVILEGES ON moodle_test.* TO 'moodle'@'%';
GRANT ALL PRIVILEGES ON moodle_test.* TO 'moodle'@'localhost';
FLUSH PRIVILEGES;`)
	if _, stderr, code := testenv.Exec(t, test.app, nil, "sh", "-c", "echo scratch > /data/testing-only.txt"); code != 0 {
		t.Fatal(stderr)
	}
	dir := t.TempDir()
	prodFile := writeFile(t, dir, "production.hcl", fmt.Sprintf(sitePipelineNamed, "production", filepath.Join(dir, "production"), testenv.MaintenanceBlock(prod.app), prod.db.Container, "moodle", prod.volume))
	testFile := writeFile(t, dir, "testing.hcl", fmt.Sprintf(sitePipelineNamed, "testing", filepath.Join(dir, "testing"), testenv.MaintenanceBlock(test.app), test.db.Container, "moodle_test", test.volume))
	// Each site has its own password: a clone reads production's file only
	// for where its sets are, and runs testing's stages with testing's.

	if r := mbk(t, runOpts{env: prod.env()}, "run", prodFile); r.code != 0 {
		t.Fatalf("production backup: %s", r)
	}
	backup := sets(t, filepath.Join(dir, "production"))[0]
	prodBefore := siteState(t, prod)

	// config.php still names testing's old URL: the data is cloned, and
	// the restore says what to set there (exit 3).
	r := mbk(t, runOpts{env: test.env()}, "restore", testFile, "--from-pipeline", "production", "--to-url", "https://testing.school.example", "--yes", "--clean")
	if r.code != 3 || !strings.Contains(flat(r.stdout), "set it to 'https://testing.school.example' in the config.php of container") {
		t.Fatalf("clone with config.php not yet changed: want exit 3 and the line to set: %s", r)
	}
	if got := test.db.SQL(t, "SELECT GROUP_CONCAT(fullname ORDER BY fullname) FROM moodle_test.mdl_course WHERE fullname IN ('PROD1','TEST1');"); !strings.Contains(got, "PROD1") || strings.Contains(got, "TEST1") {
		t.Fatalf("testing's database (moodle_test) is not production's: %q", got)
	}
	if got := test.db.SQL(t, "SELECT CONCAT('count=', COUNT(*), ';') FROM moodle.mdl_course WHERE fullname = 'PROD1';"); !strings.Contains(got, "count=0;") {
		t.Fatalf("the clone went to the database production's dump names, not testing's: %q", got)
	}
	if _, _, code := testenv.Exec(t, test.app, nil, "test", "-e", "/data/testing-only.txt"); code == 0 {
		t.Error("testing's files are not production's: its own file is still there")
	}
	calls := testenv.MoodleCalls(t, test.app)
	for _, w := range []string{
		"admin/tool/replace/cli/replace.php --search=https://moodle.school.example --replace=https://testing.school.example --non-interactive [maintenance on]",
		"admin/cli/cfg.php --name=noemailever --set=1 [maintenance on]",
		"admin/cli/purge_caches.php [maintenance on]",
	} {
		if !slices.Contains(calls, w) {
			t.Errorf("testing's app container did not run %q: %q", w, calls)
		}
	}
	replace := slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, "admin/tool/replace/cli/replace.php") })
	if i, j := slices.Index(calls, "admin/cli/cfg.php --name=noemailever --set=1 [maintenance on]"), slices.Index(calls, "admin/cli/purge_caches.php [maintenance on]"); i < 0 || j < i || replace < 0 || replace > i {
		t.Errorf("the URL must be replaced, then e-mail switched off, before the caches are purged on the clone: %q", calls)
	}
	if out, _, _ := testenv.Exec(t, test.app, nil, "cat", "/tmp/moodle-cfg/noemailever"); out != "1" {
		t.Errorf("noemailever is %q in testing, want 1", out)
	}
	if inMaintenance(t, test) {
		t.Error("the clone left testing in maintenance mode")
	}
	// Testing's own safety copy, in testing's root; production untouched.
	tsets := sets(t, filepath.Join(dir, "testing"))
	if len(tsets) != 1 {
		t.Fatalf("testing's root should hold its safety copy: %v", tsets)
	}
	if m, err := repo.ReadManifest(filepath.Join(dir, "testing", tsets[0])); err != nil || m.Kind != repo.KindPreRestore || m.Pipeline != "testing" {
		t.Fatalf("testing's safety copy: %+v %v", m, err)
	}
	if siteState(t, prod) != prodBefore || len(sets(t, filepath.Join(dir, "production"))) != 1 {
		t.Fatal("cloning into testing changed production")
	}
	if len(callsOf(testenv.MoodleCalls(t, prod.app), "admin/tool/replace")) != 0 {
		t.Fatal("replace.php ran in production's container")
	}

	// Once config.php names testing's URL, the clone is clean (exit 0).
	testenv.SetMoodleConfig(t, test.app, "wwwroot", "https://testing.school.example")
	r = mbk(t, runOpts{env: test.env()}, "restore", testFile, backup, "--from-pipeline", prodFile+":production", "--to-url", "https://testing.school.example", "--yes", "--clean")
	if r.code != 0 || !strings.Contains(r.stdout, "config.php already names https://testing.school.example") {
		t.Fatalf("clone with config.php set: %s", r)
	}
	// Without --to-url there is no URL to put in: refused before anything.
	r = mbk(t, runOpts{env: test.env()}, "restore", testFile, "--from-pipeline", "production", "--from-url", "https://x.example", "--yes")
	if r.code != 2 || !strings.Contains(r.stderr, "--from-url goes with --to-url") {
		t.Fatalf("--from-url alone: %s", r)
	}
}

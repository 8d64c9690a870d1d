package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/mbktest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// site is a small Moodle-shaped stack: a MariaDB container with a database
// and a user, and a moodledata volume mounted in an app container.
type site struct {
	db       *testenv.MariaDB
	volume   string
	password string
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{password: `pkg $ecret;#ñ` + testenv.UniqueName(t, "x")}
	s.db = testenv.StartMariaDB(t)
	s.db.CreateUser(t, "moodle", "moodle", s.password)
	s.db.SQL(t, "CREATE TABLE moodle.mdl_config (id INT PRIMARY KEY, name VARCHAR(100), value TEXT);"+
		"INSERT INTO moodle.mdl_config VALUES (1, 'version', '2024100700'), (2, 'release', '4.5');")
	s.volume = testenv.UniqueName(t, "mbktest-moodledata")
	testenv.CreateVolume(t, s.volume)
	app := testenv.StartApp(t, s.volume, "/data")
	if _, stderr, code := testenv.Exec(t, app, strings.NewReader("mkdir -p /data/filedir/ab && echo hello > /data/filedir/ab/abcd && mkdir -p /data/cache && echo x > /data/cache/c"), "sh", "-s"); code != 0 {
		t.Fatalf("fill moodledata: %s", stderr)
	}
	return s
}

// pipeline writes a pipeline file backing the site up into root.
func (s *site) pipeline(t *testing.T, dir, root string) string {
	return mbktest.WriteFile(t, dir, "site.hcl", fmt.Sprintf(`
pipeline "site" {
  root     = %q
  schedule = "* * * * *"
  timezone = "UTC"
  timeout  = "10m"

  stage "dump" "mysql" {
    container = %q
    database  = "moodle"
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
  }
  stage "archive" "volume" {
    volume  = %q
    exclude = ["cache"]
  }
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_last = 3
  }
}
`, root, s.db.Container, s.volume))
}

// checkSet fails unless root holds exactly one complete set: the dump, the
// archive, SHA256SUMS that sha256sum -c accepts, and the manifest.
func checkSet(t *testing.T, root string) {
	t.Helper()
	sets := mbktest.Sets(t, root)
	if len(sets) != 1 {
		t.Fatalf("want one set in %s, got %v", root, sets)
	}
	dir := filepath.Join(root, sets[0])
	for _, glob := range []string{"moodle_*.sql.gz", "moodledata_*.tar.gz", "SHA256SUMS", "manifest.json", "DB_INFO.txt", "backup.log"} {
		if m, _ := filepath.Glob(filepath.Join(dir, glob)); len(m) != 1 {
			t.Errorf("set %s lacks %s", sets[0], glob)
		}
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c in %s: %v\n%s", dir, err, out)
	}
	if dump, _ := filepath.Glob(filepath.Join(dir, "moodle_*.sql.gz")); len(dump) == 1 {
		if sql := gunzip(t, dump[0]); !strings.Contains(sql, "2024100700") {
			t.Errorf("the dump lacks the site's rows")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		t.Error(err)
	}
}

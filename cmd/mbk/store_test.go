package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/storetest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// storePipeline backs the site up and copies each set to a real S3 gateway
// and a real OpenSSH server; retention keeps one set, everywhere.
func storePipeline(t *testing.T, s *site, root string, s3 *storetest.S3, ftp *storetest.SFTP) string {
	return fmt.Sprintf(`pipeline "offsite" {
  root    = %q
  timeout = "10m"

  stage "dump" "mysql" {
    container = %q
    database  = "moodle"
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
  }
  stage "archive" "volume" {
    volume = %q
  }
  stage "retain" "policy" {
    keep_last = 1
  }
  stage "store" "s3" {
    %s
  }
  stage "store" "sftp" {
    %s
  }
}
`, root, s.db.Container, s.volume, s3.Stage(s3.Bucket, "moodle/offsite"), ftp.Stage(ftp.Dir))
}

func TestOffsiteStores(t *testing.T) {
	s := newSite(t)
	s3 := storetest.StartS3(t)
	ftp := storetest.StartSFTP(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "offsite.hcl", storePipeline(t, s, root, s3, ftp))
	env := s.env(s3.Env()...)

	r := mbk(t, runOpts{env: env}, "run", file)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	set := sets(t, root)[0]
	for _, store := range []string{"s3", "sftp"} {
		l := mbk(t, runOpts{env: env}, "list", file, "--store", store)
		if l.code != 0 || !strings.Contains(flat(l.stdout), set+" backup complete") {
			t.Fatalf("list --store %s: %s", store, l)
		}
		v := mbk(t, runOpts{env: env}, "verify", file, "--store", store)
		if v.code != 0 || !strings.Contains(v.stdout, store+":"+set+": OK") {
			t.Fatalf("verify --store %s: %s", store, v)
		}
	}

	t.Run("a failing store leaves the set committed, exit 3; sync repairs it", func(t *testing.T) {
		bad := s.env("S3_KEY="+s3.AccessKey, "S3_SECRET=wrong-secret-key")
		r := mbk(t, runOpts{env: bad}, "run", file)
		if r.code != 3 || !strings.Contains(r.stdout, `is missing from store "s3"`) {
			t.Fatalf("want exit 3 naming the store: %s", r)
		}
		local := sets(t, root)
		newest := local[len(local)-1]
		l := mbk(t, runOpts{env: env}, "list", file, "--store", "s3")
		if strings.Contains(flat(l.stdout), newest+" backup complete") {
			t.Fatalf("the failed copy looks complete in the store: %s", l)
		}
		// mbk status sees the warning and which store is behind.
		st, js := status(t, file, "--json")
		if st.code != 1 || js.Pipelines[0].LastRun.ExitCode != 3 || storeNewest(t, st.stdout, "s3") != set || storeNewest(t, st.stdout, "sftp") != newest {
			t.Fatalf("status after the failed copy: %s", st)
		}
		y := mbk(t, runOpts{env: env}, "sync", file)
		if y.code != 0 || !strings.Contains(y.stdout, "s3: "+newest+": copied") {
			t.Fatalf("sync: %s", y)
		}
		if st, _ := status(t, file, "--json"); storeNewest(t, st.stdout, "s3") != newest {
			t.Fatalf("status does not see the copy sync made: %s", st)
		}
		l = mbk(t, runOpts{env: env}, "list", file, "--store", "s3")
		if !strings.Contains(flat(l.stdout), newest+" backup complete") {
			t.Fatalf("after sync: %s", l)
		}
	})

	t.Run("retention applies to each store", func(t *testing.T) {
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		for _, store := range []string{"s3", "sftp"} {
			l := mbk(t, runOpts{env: env}, "list", file, "--store", store, "--json")
			if n := strings.Count(l.stdout, `"set":`); n != 1 {
				t.Errorf("store %s holds %d sets, want 1 (keep_last = 1)\n%s", store, n, l)
			}
		}
	})

	t.Run("restore from a store after the local sets are gone", func(t *testing.T) {
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
		target := testenv.UniqueName(t, "mbktest-fromstore")
		s.db.SQL(t, "GRANT ALL ON fromstore.* TO 'moodle'@'%'; GRANT ALL ON fromstore.* TO 'moodle'@'localhost';")
		r := mbk(t, runOpts{env: env}, "restore", file, "--from", "sftp", "--yes", "--target-database", "fromstore", "--target-volume", target)
		if r.code != 0 {
			t.Fatalf("restore --from sftp: %s", r)
		}
		t.Cleanup(func() { removeVolume(t, target) })
		for _, table := range []string{"mdl_user", "mdl_logstore_standard_log"} {
			want := strings.Fields(s.db.SQL(t, "CHECKSUM TABLE moodle."+table+";"))[1]
			got := strings.Fields(s.db.SQL(t, "CHECKSUM TABLE fromstore."+table+";"))[1]
			if got != want {
				t.Errorf("%s: %s after restore, want %s", table, got, want)
			}
		}
		checker := testenv.StartApp(t, target, "/data")
		sums := "cd /data && find filedir trashdir muc lang -type f -exec sha256sum {} + | sort"
		want, _, _ := testenv.Exec(t, s.app, nil, "sh", "-c", sums)
		got, _, _ := testenv.Exec(t, checker, nil, "sh", "-c", sums)
		if got != want || want == "" {
			t.Error("restored files differ from the source")
		}
		if left, _ := filepath.Glob(filepath.Join(root, ".mbk-download-*")); len(left) != 0 {
			t.Errorf("the download was not cleaned up: %v", left)
		}
	})
}

// storeNewest is the newest copy mbk status --json says a store holds.
func storeNewest(t *testing.T, statusJSON, store string) string {
	t.Helper()
	var s struct {
		Pipelines []struct {
			Stores []struct{ Store, Newest string }
		}
	}
	if err := json.Unmarshal([]byte(statusJSON), &s); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Pipelines[0].Stores {
		if st.Store == store {
			return st.Newest
		}
	}
	return ""
}

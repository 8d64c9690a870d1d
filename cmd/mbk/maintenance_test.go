package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// maintenancePipeline archives everything but cache, so climaintenance.html
// lands in the archive exactly when the site was in maintenance meanwhile.
const maintenancePipeline = `pipeline "maint" {
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
    exclude = ["cache"]
  }
}
`

func TestMaintenanceMode(t *testing.T) {
	s := newSite(t)
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "maint.hcl", fmt.Sprintf(maintenancePipeline, root, testenv.MaintenanceBlock(s.app), s.db.Container, s.volume))
	flagOn := func() bool { return testenv.InMaintenance(t, s.app) }
	archived := func(t *testing.T) bool {
		set := sets(t, root)
		f, err := os.Open(filepath.Join(root, set[len(set)-1], "moodledata_"+set[len(set)-1]+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimPrefix(h.Name, "./") == "climaintenance.html" {
				return true
			}
		}
	}

	t.Run("on during the copy, off after", func(t *testing.T) {
		r := mbk(t, runOpts{env: s.env()}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		if !archived(t) {
			t.Fatal("climaintenance.html is not in the archive: the site was not in maintenance mode during the copy")
		}
		if flagOn() {
			t.Fatal("maintenance mode is still on after the run")
		}
		if !strings.Contains(r.stderr, "the site was in maintenance mode for") {
			t.Errorf("the run does not say how long the site was in maintenance\n%s", r)
		}
		set := sets(t, root)
		m, err := repo.ReadManifest(filepath.Join(root, set[len(set)-1]))
		if err != nil || m.MaintenanceMS <= 0 {
			t.Errorf("manifest maintenance_ms: %+v %v", m, err)
		}
	})

	t.Run("left on when an administrator had it on", func(t *testing.T) {
		testenv.Exec(t, s.app, nil, "sh", testenv.MaintenancePath, "--enable")
		r := mbk(t, runOpts{env: s.env()}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		if !flagOn() {
			t.Fatal("mbk switched off maintenance mode that an administrator had switched on")
		}
		testenv.Exec(t, s.app, nil, "sh", testenv.MaintenancePath, "--disable")
	})

	t.Run("off again after a failed run", func(t *testing.T) {
		r := mbk(t, runOpts{env: []string{"MYSQL_PASSWORD=wrong-password"}}, "run", file)
		if r.code != 1 || !strings.Contains(r.stderr, "Access denied") {
			t.Fatalf("want the dump to fail: %s", r)
		}
		if flagOn() {
			t.Fatal("maintenance mode is still on after a failed run")
		}
	})

	t.Run("a run killed inside the window is cleaned up by the next", func(t *testing.T) {
		// What SIGKILL inside the window leaves: the site in maintenance
		// and mbk's marker beside the sets.
		testenv.Exec(t, s.app, nil, "sh", testenv.MaintenancePath, "--enable")
		marker := `{"container":"` + s.app + `","since":"2026-01-01T03:00:00Z","pid":4242}`
		if err := os.WriteFile(filepath.Join(root, ".mbk-maintenance.json"), []byte(marker), 0o600); err != nil {
			t.Fatal(err)
		}
		r := mbk(t, runOpts{env: s.env()}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		if !strings.Contains(r.stderr, "switched off maintenance mode left on by an interrupted run (pid 4242") {
			t.Errorf("the recovery is not reported\n%s", r)
		}
		if flagOn() {
			t.Fatal("maintenance mode is still on")
		}
		if _, err := os.Stat(filepath.Join(root, ".mbk-maintenance.json")); !os.IsNotExist(err) {
			t.Fatal("the marker is still there")
		}
	})
}

// TestMaintenanceStuckOn: when maintenance mode cannot be switched off after
// a good copy, the set is kept, the run exits 3 and says the site is still in
// maintenance, and the marker stays so that the next run retries.
func TestMaintenanceStuckOn(t *testing.T) {
	s := newSite(t)
	stuck := strings.Replace(testenv.MaintenanceScript, `--disable) rm -f "$flag"; echo "Status: disabled" ;;`,
		`--disable) echo "cannot write to dataroot" >&2; exit 1 ;;`, 1)
	if stuck == testenv.MaintenanceScript {
		t.Fatal("the stuck script is the same as the working one")
	}
	testenv.InstallMaintenance(t, s.app, stuck)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "maint.hcl", fmt.Sprintf(maintenancePipeline, root, testenv.MaintenanceBlock(s.app), s.db.Container, s.volume))
	r := mbk(t, runOpts{env: s.env()}, "run", file)
	if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "STILL in maintenance mode") || !strings.Contains(r.stdout+r.stderr, "cannot write to dataroot") {
		t.Fatalf("want exit 3 saying the site is still in maintenance: %s", r)
	}
	if got := sets(t, root); len(got) != 1 {
		t.Fatalf("the good copy must be kept, got %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, ".mbk-maintenance.json")); err != nil {
		t.Fatalf("the marker must stay for the next run to retry: %v", err)
	}
}

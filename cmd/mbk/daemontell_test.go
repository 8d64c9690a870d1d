package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
)

// tellBlock is a scheduled pipeline around the faulty dump with a webhook
// that hears warnings only.
func tellBlock(root, schedule, extra, hook string) string {
	return fmt.Sprintf(`
pipeline "tick" {
  root     = %q
  schedule = %q
  timeout  = "5m"
  %s

  stage "dump" "faulty" {
    mode = "ok"
    size = 65536
  }
  stage "checksum" "sha256" {}
  stage "notify" "webhook" {
    on  = ["warning"]
    url = %q
  }
}
`, root, schedule, extra, hook)
}

// The second tick in a row that another run's lock skips is notified; the
// count starts again once a run goes ahead.
func TestDaemonTellsOfSkippedTicks(t *testing.T) {
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, tellBlock(root, "* * * * *", "", srv.URL+"/hook"))
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := repo.Acquire(root)
	if err != nil {
		t.Fatal(err)
	}
	skip := fmt.Sprintf("skipped: another run holds the lock (pid %d)", os.Getpid())
	d := startDaemon(t, file)
	d.waitCount(skip, 3)
	warnings := func() []string {
		var out []string
		for _, b := range sink.got() {
			var rep struct{ Event, Error string }
			if err := json.Unmarshal([]byte(b), &rep); err != nil {
				t.Fatalf("not JSON: %s", b)
			}
			if rep.Event != "warning" {
				t.Fatalf("a %s event: %s", rep.Event, b)
			}
			out = append(out, rep.Error)
		}
		return out
	}
	got := warnings()
	if len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("skipped 2 scheduled runs of pipeline \"tick\" in a row: another run (pid %d) holds the lock of %s", os.Getpid(), root)) {
		t.Fatalf("want one warning, at the second skip: %q\n%s", got, d)
	}

	// A run goes ahead; the next two skips in a row are told again.
	lock.Release()
	d.waitCount(finished("tick", 0), 1)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if lock, err = repo.Acquire(root); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock never came free: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer lock.Release()
	d.waitCount(skip, strings.Count(d.stderr.String(), skip)+2)
	d.waitCount("telling the notify stages: runs skipped in a row", 2)
	lock.Release()
	d.signal(syscall.SIGTERM)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d\n%s", code, d)
	}
	if got := warnings(); len(got) != 2 {
		t.Fatalf("want two warnings, got %q\n%s", got, d)
	}
}

// catch_up runs a schedule missed while the daemon was not running once at
// start, and says so; nothing missed, nothing run. The schedule ("0 3 1 1
// *", New Year at 03:00) never fires while the test runs.
func TestDaemonCatchUp(t *testing.T) {
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, tellBlock(root, "0 3 1 1 *", "catch_up = true", srv.URL))

	daemonRun := func(want string) *daemonProc {
		t.Helper()
		d := startDaemon(t, file)
		d.waitCount(want, 1)
		if !strings.Contains(want, "no scheduled run was missed") {
			d.waitCount(finished("tick", 0), 1)
		}
		d.signal(syscall.SIGTERM)
		if code := d.exit(); code != 0 {
			t.Fatalf("exit %d\n%s", code, d)
		}
		return d
	}

	t.Run("no run recorded", func(t *testing.T) {
		daemonRun("catch-up: no run recorded in " + root + ": running one now")
		if got := completeSets(t, root); len(got) != 1 {
			t.Fatalf("sets %v", got)
		}
	})

	t.Run("a run missed while the machine was off", func(t *testing.T) {
		// The last run began two years ago, and made no set (it failed):
		// New Year's run has been missed since.
		runs, err := repo.ReadRuns(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sets(t, root) {
			if err := repo.Delete(root, s); err != nil {
				t.Fatal(err)
			}
		}
		long := time.Now().AddDate(-2, 0, 0).UTC()
		runs.Last.Status, runs.Last.Started, runs.Last.Finished = repo.RunFailure, long, long
		if err := repo.WriteRuns(root, runs); err != nil {
			t.Fatal(err)
		}
		d := daemonRun("was missed while the daemon was not running")
		if !strings.Contains(d.stderr.String(), fmt.Sprintf("(the last began %s", long.Local().Format("Mon 2006-01-02"))) {
			t.Errorf("the log does not say when the last run was\n%s", d)
		}
		if got := completeSets(t, root); len(got) != 1 {
			t.Fatalf("sets %v", got)
		}
	})

	t.Run("nothing missed", func(t *testing.T) {
		d := daemonRun("catch-up: no scheduled run was missed")
		if strings.Contains(d.stderr.String(), "run started") {
			t.Fatalf("a run started though none was missed\n%s", d)
		}
		if got := completeSets(t, root); len(got) != 1 {
			t.Fatalf("sets %v", got)
		}
	})
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
)

// TestFaultSuiteFutureDatedSet: a set dated 400 days ahead lies in the root,
// as a clock that once jumped forward leaves it, beside real sets 2 and 10
// days old. `mbk run` (the real binary and clock, keep_days = 3) keeps the
// set it made and ages the real sets from it, not from the future one: the
// 2-day-old set stays, the 10-day-old one goes, the future one stays. The
// run warns of it in its log, its backup.log and the report the notifier
// receives; `mbk list` marks it FUTURE (and "future": true in --json);
// `mbk restore` takes the new set by default, not the future one.
func TestFaultSuiteFutureDatedSet(t *testing.T) {
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "clock.hcl", fmt.Sprintf(`plugin_dir = %q

pipeline "clock" {
  root     = %q
  timezone = "UTC"

  stage "dump" "faulty" {
    mode = "ok"
    size = 65536
  }
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_days = 3
  }
  stage "notify" "webhook" {
    url = %q
  }
}
`, filepath.Join(binDir, "extra"), root, srv.URL))

	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	first := sets(t, root)[0]
	now := time.Now().UTC()
	name := func(d time.Duration) string { return now.Add(d).Format(repo.SetNameLayout) }
	old2, old10, future := name(-48*time.Hour), name(-240*time.Hour), name(400*24*time.Hour)
	for _, n := range []string{old2, old10, future} {
		ageSet(t, root, first, n)
	}
	if err := repo.Delete(root, first); err != nil {
		t.Fatal(err)
	}
	before := len(sink.got())

	r := mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	got := sets(t, root)
	if len(got) != 3 || got[0] != old2 || got[2] != future {
		t.Fatalf("want %s, the new set and %s kept (%s aged from the new set and deleted), got %v\n%s", old2, future, old10, got, r)
	}
	made := got[1]
	warning := "set " + future + " is dated 400 days ahead of this machine's clock"
	if !strings.Contains(r.stderr, warning) {
		t.Errorf("the run's log lacks %q\n%s", warning, r)
	}
	if log := readFile(t, filepath.Join(root, made, repo.LogFile)); !strings.Contains(log, warning) {
		t.Errorf("backup.log lacks the warning:\n%s", log)
	}
	bodies := sink.got()[before:]
	if len(bodies) != 1 {
		t.Fatalf("want one report, got %d", len(bodies))
	}
	var rep struct {
		Event    string   `json:"event"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(bodies[0]), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, bodies[0])
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], warning) {
		t.Errorf("the notifier's report does not carry the warning: %+v", rep)
	}

	l := mbk(t, runOpts{}, "list", file, "--json")
	var listed []struct {
		Set    string `json:"set"`
		Future bool   `json:"future"`
		Ahead  string `json:"ahead"`
	}
	if err := json.Unmarshal([]byte(l.stdout), &listed); err != nil || len(listed) != 3 {
		t.Fatalf("list --json: %v\n%s", err, l)
	}
	for _, s := range listed {
		if s.Future != (s.Set == future) || s.Future && s.Ahead != "400 days" {
			t.Errorf("list --json: %+v", s)
		}
	}
	l = mbk(t, runOpts{}, "list", file)
	for _, line := range strings.Split(l.stdout, "\n") {
		if strings.HasPrefix(line, "20") && strings.Contains(line, "FUTURE") != strings.HasPrefix(line, future) {
			t.Errorf("list marks the wrong set FUTURE: %q\n%s", line, l)
		}
	}
	if !strings.Contains(l.stdout, "FUTURE: dated 400 days ahead of the clock") || !strings.Contains(l.stdout, "timedatectl") {
		t.Errorf("list does not mark the future set:\n%s", l)
	}

	p := mbk(t, runOpts{}, "prune", file, "--dry-run")
	if p.code != 0 || !strings.Contains(p.stdout, "keep    "+future+"  dated 400 days ahead of this machine's clock") {
		t.Errorf("prune does not say why the future set is kept: %s", p)
	}

	rs := mbk(t, runOpts{}, "restore", file, "--yes", "--no-safety-copy")
	if rs.code != 0 || !strings.Contains(rs.stdout, "Verifying set "+made) || !strings.Contains(rs.stdout, "Set "+made+" restored.") {
		t.Errorf("restore's default should be the set just made, %s: %s", made, rs)
	}
	if i := mbk(t, runOpts{}, "info", file); !strings.Contains(i.stdout, "Set:       "+made) {
		t.Errorf("info's default should be %s: %s", made, i)
	}
}

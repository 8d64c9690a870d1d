package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRootOfOnePipeline: a root keeps one pipeline's sets. testing.hcl,
// copied from production.hcl with its root left as it was: validate names
// the file and line of both roots; a run of testing fails before it writes
// anything, naming the set and the pipeline it found, and so does its
// prune, whose keep_last = 1 would otherwise have deleted production's
// older set. A restore through testing of production's set says whose set
// it is. Production's sets are all still there, and production still runs.
func TestRootOfOnePipeline(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	pipeline := func(name string, keep int) string {
		return fmt.Sprintf(`plugin_dir = %q

pipeline %q {
  root    = %q
  timeout = "2m"

  stage "dump" "faulty" {
    mode        = "ok"
    size        = 1000
    compression = "none"
  }
  stage "retain" "policy" {
    keep_last = %d
  }
}
`, filepath.Join(binDir, "extra"), name, root, keep)
	}
	prod := writeFile(t, dir, "production.hcl", pipeline("production", 7))
	testing := writeFile(t, dir, "testing.hcl", pipeline("testing", 1))

	v := mbk(t, runOpts{}, "validate", dir)
	said := strings.Join(strings.Fields(v.stderr), " ") // the detail is wrapped
	if v.code == 0 || !strings.Contains(said, "Error: Root shared by two pipelines on "+testing+" line 4") ||
		!strings.Contains(said, `as pipeline "production" does (`+prod+":4,") {
		t.Errorf("validate of both files: want the shared root named at testing.hcl line 4 and production.hcl:4, got %s", v)
	}
	if v := mbk(t, runOpts{}, "validate", prod); v.code != 0 {
		t.Errorf("validate of production.hcl alone: %s", v)
	}

	for range 2 {
		if r := mbk(t, runOpts{}, "run", prod); r.code != 0 {
			t.Fatalf("production's run: %s", r)
		}
	}
	before := sets(t, root)
	if len(before) != 2 {
		t.Fatalf("production made %v, want 2 sets", before)
	}
	want := fmt.Sprintf(`root %s holds set %s of pipeline "production"`, root, before[0])
	r := mbk(t, runOpts{}, "run", testing)
	if r.code == 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("testing's run: want a failure saying %q, got %s", want, r)
	}
	p := mbk(t, runOpts{}, "prune", testing)
	if p.code == 0 || !strings.Contains(p.stdout+p.stderr, want) {
		t.Errorf("testing's prune: want a failure saying %q, got %s", want, p)
	}
	if after := sets(t, root); !slices.Equal(after, before) {
		t.Errorf("the root holds %v after testing's run and prune, want production's %v untouched", after, before)
	}
	// A restore through testing of a set production left there says whose
	// it is before it asks for confirmation (refused here: no terminal).
	says := fmt.Sprintf(`Restoring set %s of pipeline "production" into pipeline "testing" will OVERWRITE:`, before[1])
	if r := mbk(t, runOpts{}, "restore", testing, before[1]); r.code == 0 || !strings.Contains(r.stdout, says) {
		t.Errorf("testing's restore of production's set: want %q before the refusal, got %s", says, r)
	}
	if r := mbk(t, runOpts{}, "run", prod); r.code != 0 {
		t.Errorf("production's third run: %s", r)
	}
}

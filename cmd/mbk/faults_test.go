package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

// A pipeline around the test-only faulty plugin: no Docker needed, so these
// tests pin down the core's failure handling on its own.
func faultyPipeline(t *testing.T, mode, extra string) (file, root string) {
	dir := t.TempDir()
	root = filepath.Join(dir, "backups")
	file = writeFile(t, dir, "faulty.hcl", fmt.Sprintf(`
plugin_dir = %q

pipeline "faulty" {
  root    = %q
  timeout = "2m"

  stage "dump" "faulty" {
    mode = %q
    size = 4194304
    %s
  }
  stage "checksum" "sha256" {}
}
`, filepath.Join(binDir, "extra"), root, mode, extra))
	return file, root
}

func TestRunSucceedsThroughADropInPlugin(t *testing.T) {
	file, root := faultyPipeline(t, "ok", "")
	r := mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	got := sets(t, root)
	if len(got) != 1 {
		t.Fatalf("want one set, got %v", got)
	}
	dir := filepath.Join(root, got[0])
	m, err := repo.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "complete" || m.Pipeline != "faulty" || m.Set != got[0] || len(m.Artifacts) != 1 {
		t.Fatalf("manifest: %+v", m)
	}
	a := m.Artifacts[0]
	if a.RawSize != 4194304 || a.Stage != "dump" || a.Plugin != "faulty" || a.File != "faulty_"+got[0]+".bin.gz" {
		t.Fatalf("artifact: %+v", a)
	}
	cmd := exec.Command("sha256sum", "-c", repo.SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	for _, f := range []string{repo.LogFile, "FAULTY_INFO.txt", repo.ManifestFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("set dir mode %v, want 0700", st.Mode().Perm())
	}
}

func TestFailingPluginCommitsNothing(t *testing.T) {
	tests := []struct {
		mode, extra string
		want        []string
	}{
		{"error", "", []string{`dump "faulty"`, "disk on fire"}},
		{"crash", "", []string{`dump "faulty"`, "plugin faulty", "crashed or killed"}},
		{"hang", `timeout = "3s"`, []string{`dump "faulty"`, "timed out"}},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			file, root := faultyPipeline(t, tc.mode, tc.extra)
			// Only this run's plugins count: one an earlier test's mbk
			// left exiting under load is not this run's doing.
			before := map[int]bool{}
			for _, p := range allProcs() {
				before[p.pid] = true
			}
			r := mbk(t, runOpts{}, "run", file)
			if r.code != 1 {
				t.Fatalf("want exit 1\n%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr+r.stdout, w) {
					t.Errorf("output lacks %q\n%s", w, r)
				}
			}
			if got := sets(t, root); len(got) != 0 {
				t.Fatalf("a failed run left sets %v", got)
			}
			left, _ := repo.Leftovers(root)
			if len(left) != 0 {
				t.Fatalf("staging left behind: %v", left)
			}
			logs, _ := filepath.Glob(filepath.Join(root, "*.failed.log"))
			if len(logs) != 1 {
				t.Fatalf("want the failed run's log kept, got %v", logs)
			}
			for _, p := range allProcs() {
				if !before[p.pid] && p.state != 'Z' && strings.Contains(p.cmdline, "mbk-plugin-faulty") {
					t.Fatalf("a plugin process outlived the run: %s", p)
				}
			}
		})
	}
}

func TestSecondRunIsRefusedWhileLocked(t *testing.T) {
	file, root := faultyPipeline(t, "ok", "")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := repo.Acquire(root)
	if err != nil {
		t.Fatal(err)
	}
	r := mbk(t, runOpts{}, "run", file)
	lock.Release()
	if r.code != 1 || !strings.Contains(r.stderr+r.stdout, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("want exit 1 naming pid %d\n%s", os.Getpid(), r)
	}
	if got := sets(t, root); len(got) != 0 {
		t.Fatalf("sets %v", got)
	}
	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("after release: %s", r)
	}
}

func TestRootPermissions(t *testing.T) {
	t.Run("world-writable root refused", func(t *testing.T) {
		file, root := faultyPipeline(t, "ok", "")
		if err := os.MkdirAll(root, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(root, 0o777)
		r := mbk(t, runOpts{}, "run", file)
		if r.code != 1 || !strings.Contains(r.stderr, "writable by every user") {
			t.Fatalf("want a refusal: %s", r)
		}
		if got := sets(t, root); len(got) != 0 {
			t.Fatalf("sets %v", got)
		}
	})
	t.Run("symlinked root warned about", func(t *testing.T) {
		file, root := faultyPipeline(t, "ok", "")
		real := filepath.Join(t.TempDir(), "elsewhere")
		os.MkdirAll(real, 0o700)
		if err := os.Symlink(real, root); err != nil {
			t.Fatal(err)
		}
		r := mbk(t, runOpts{}, "run", file)
		if r.code != 0 || !strings.Contains(r.stderr, "is a symlink to "+real) {
			t.Fatalf("want a warning naming the target: %s", r)
		}
		if got := sets(t, real); len(got) != 1 {
			t.Fatalf("want the set stored at the target, got %v", got)
		}
	})
}

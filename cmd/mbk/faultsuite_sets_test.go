package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

// The fault suite (issue 8) on the sets themselves: a manifest that is
// garbage, retention when every set looks years old, and retention plugins
// that lie.

// listed runs `mbk list --json`: set name -> status.
func listed(t *testing.T, file string) map[string]string {
	t.Helper()
	l := mbk(t, runOpts{}, "list", file, "--json")
	var out []struct{ Set, Status string }
	if l.code != 0 || json.Unmarshal([]byte(l.stdout), &out) != nil {
		t.Fatalf("list: %s", l)
	}
	m := map[string]string{}
	for _, s := range out {
		m[s.Set] = s.Status
	}
	return m
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	os.RemoveAll(to)
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v %s", from, to, err, out)
	}
}

// TestFaultSuiteGarbageManifest: whatever replaces manifest.json, the set
// is not taken for complete: list says incomplete, verify fails naming
// manifest.json, restore refuses before touching anything.
func TestFaultSuiteGarbageManifest(t *testing.T) {
	file, root := faultyPipeline(t, "ok", "")
	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	set := sets(t, root)[0]
	setDir := filepath.Join(root, set)
	pristine := filepath.Join(t.TempDir(), "pristine")
	copyDir(t, setDir, pristine)
	good := readFile(t, filepath.Join(pristine, repo.ManifestFile))

	emptied := regexp.MustCompile(`(?s)"artifacts": \[.*?\n  \]`).ReplaceAllString(good, `"artifacts": []`)
	tests := []struct {
		name, content string
		listed        string // what list must say; "" when either is defensible
	}{
		{"random bytes", "\x00\xff\x13garbage\x7f\n", "incomplete"},
		{"empty", "", "incomplete"},
		{"truncated JSON", good[:len(good)/2], "incomplete"},
		{"a JSON array", "[]", "incomplete"},
		{"JSON null", "null", "incomplete"},
		{"not complete", strings.Replace(good, `"status": "complete"`, `"status": "partial"`, 1), "incomplete"},
		{"names another set", strings.Replace(good, `"set": "`+set+`"`, `"set": "2001-01-01_00-00-00"`, 1), "incomplete"},
		// Well-formed, but it no longer knows the set's artifact: verify
		// cannot check what it does not know of, so it must not say OK.
		{"artifacts emptied", emptied, ""},
		{"missing", "-", "incomplete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			copyDir(t, pristine, setDir)
			path := filepath.Join(setDir, repo.ManifestFile)
			if tc.content == "-" {
				os.Remove(path)
			} else if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.content == good || tc.content == "" && tc.name != "empty" {
				t.Fatal("the damage changed nothing")
			}
			if st := listed(t, file)[set]; tc.listed != "" && st != tc.listed {
				t.Errorf("list says %q, want %q", st, tc.listed)
			}
			if v := mbk(t, runOpts{}, "verify", file, set); v.code != 1 || !strings.Contains(v.stdout, "BAD: "+repo.ManifestFile) {
				t.Errorf("verify should fail naming %s: %s", repo.ManifestFile, v)
			}
			r := mbk(t, runOpts{}, "restore", file, set, "--yes")
			if out := r.stderr + r.stdout; r.code != 1 || !strings.Contains(out, "refusing to restore") && !strings.Contains(out, "nothing to restore") {
				t.Errorf("restore should refuse: %s", r)
			}
			if strings.Contains(r.stdout, "discarded") || strings.Contains(r.stdout, "restored.") {
				t.Errorf("restore went ahead: %s", r)
			}
		})
	}
}

// retainPipeline: the faulty dump, and a retain stage.
func retainPipeline(t *testing.T, dir, root, retain string) string {
	return writeFile(t, dir, "retain.hcl", fmt.Sprintf(`plugin_dir = %q

pipeline "retain" {
  root     = %q
  timezone = "UTC"

  stage "dump" "faulty" {
    mode = "ok"
    size = 65536
  }
  stage "retain" %s
}
`, filepath.Join(binDir, "extra"), root, retain))
}

// ageSet copies a real set under an older name: the directory, its files
// and its manifest renamed, as if a run had made it then.
func ageSet(t *testing.T, root, set, older string) {
	t.Helper()
	dst := filepath.Join(root, older)
	copyDir(t, filepath.Join(root, set), dst)
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		if strings.Contains(e.Name(), set) {
			if err := os.Rename(filepath.Join(dst, e.Name()), filepath.Join(dst, strings.ReplaceAll(e.Name(), set, older))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []string{repo.ManifestFile, repo.SumsFile} {
		p := filepath.Join(dst, f)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(readFile(t, p), set, older)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFaultSuiteRetentionYearsLater: sets made years ago, as after a long
// outage or a clock that jumped years ahead. Every set is "expired" by the
// clock, yet ages count from the newest complete set: it survives, and so
// does what lies within keep_days of it. A policy plugin whose verdict
// would delete every set is refused whole.
func TestFaultSuiteRetentionYearsLater(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	keepDay := retainPipeline(t, dir, root, `"policy" {
    keep_days = 1
  }`)
	if r := mbk(t, runOpts{}, "run", keepDay); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	made := sets(t, root)[0]
	old := []string{"2019-03-01_03-00-00", "2020-03-01_03-00-00", "2021-03-01_02-00-00", "2021-03-01_03-00-00"}
	for _, o := range old {
		ageSet(t, root, made, o)
	}
	if err := repo.Delete(root, made); err != nil {
		t.Fatal(err)
	}
	for _, o := range old {
		if st := listed(t, keepDay)[o]; st != "complete" {
			t.Fatalf("the aged copy %s is %q, want complete", o, st)
		}
	}

	t.Run("prune years later keeps the newest", func(t *testing.T) {
		r := mbk(t, runOpts{}, "prune", keepDay)
		if r.code != 0 {
			t.Fatalf("prune: %s", r)
		}
		want := []string{"2021-03-01_02-00-00", "2021-03-01_03-00-00"}
		if got := sets(t, root); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("want %v kept (the newest and what is within a day of it), got %v\n%s", want, got, r)
		}
		if !strings.Contains(r.stdout, "newest complete set") {
			t.Errorf("prune does not say why the newest is kept:\n%s", r)
		}
		if v := mbk(t, runOpts{}, "verify", keepDay, "--all"); v.code != 0 {
			t.Errorf("the kept sets do not verify: %s", v)
		}
	})

	t.Run("a policy that deletes everything is refused", func(t *testing.T) {
		before := sets(t, root)
		liar := retainPipeline(t, t.TempDir(), root, `"faulty" {
    mode = "delete-all"
  }`)
		r := mbk(t, runOpts{}, "run", liar)
		if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "refusing the policy's verdict") {
			t.Fatalf("want exit 3 and the verdict refused\n%s", r)
		}
		got := sets(t, root)
		if len(got) != len(before)+1 {
			t.Fatalf("want every set kept and the new one added: before %v, after %v", before, got)
		}
		log := readFile(t, filepath.Join(root, got[len(got)-1], repo.LogFile))
		if !strings.Contains(log, "refusing the policy's verdict") {
			t.Errorf("backup.log does not record the refusal:\n%s", log)
		}
		p := mbk(t, runOpts{}, "prune", liar)
		if p.code != 1 || !strings.Contains(p.stdout+p.stderr, "refusing the policy's verdict") {
			t.Fatalf("prune: want exit 1 and the verdict refused\n%s", p)
		}
		if after := sets(t, root); len(after) != len(got) {
			t.Fatalf("prune deleted sets under a refused verdict: %v -> %v", got, after)
		}
	})

	t.Run("a policy may not delete incomplete sets", func(t *testing.T) {
		broken := "2018-01-01_00-00-00"
		copyDir(t, filepath.Join(root, sets(t, root)[0]), filepath.Join(root, broken))
		os.Remove(filepath.Join(root, broken, repo.ManifestFile))
		liar := retainPipeline(t, t.TempDir(), root, `"faulty" {
    mode = "delete-all-but-newest"
  }`)
		r := mbk(t, runOpts{}, "prune", liar)
		if r.code != 0 {
			t.Fatalf("prune: %s", r)
		}
		got := sets(t, root)
		newest := got[len(got)-1]
		if strings.Join(got, ",") != broken+","+newest {
			t.Fatalf("want the incomplete set and the newest kept, got %v\n%s", got, r)
		}
		if !strings.Contains(r.stdout, "only complete sets are subject to retention") {
			t.Errorf("prune does not say why the incomplete set stays:\n%s", r)
		}
	})
}

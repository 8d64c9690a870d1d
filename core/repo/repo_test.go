package repo_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
)

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, repo.DirMode); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), repo.FileMode); err != nil {
		t.Fatal(err)
	}
}

// manifestFor writes a manifest naming set with status into dir.
func manifestFor(t *testing.T, dir, set, status string) {
	t.Helper()
	mkdir(t, dir)
	if err := repo.WriteManifest(dir, &repo.Manifest{Format: 1, Pipeline: "p", Set: set, Status: status}); err != nil {
		t.Fatal(err)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestList(t *testing.T) {
	root := t.TempDir()
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	// Created out of order: List sorts by the time in the name.
	manifestFor(t, filepath.Join(root, "2024-01-03_00-00-00"), "2024-01-03_00-00-00", repo.StatusComplete)
	manifestFor(t, filepath.Join(root, "2024-01-01_00-00-00"), "2024-01-01_00-00-00", repo.StatusComplete)
	mkdir(t, filepath.Join(root, "2024-01-02_00-00-00"))
	write(t, filepath.Join(root, "2024-01-04_00-00-00", repo.ManifestFile), "{not json")
	manifestFor(t, filepath.Join(root, "2024-01-05_00-00-00"), "2024-01-05_00-00-00", "failed")
	manifestFor(t, filepath.Join(root, "2024-01-06_00-00-00"), "2024-01-01_00-00-00", repo.StatusComplete)
	// Not sets.
	manifestFor(t, filepath.Join(root, repo.StagingPrefix+"2024-01-07_00-00-00"), "2024-01-07_00-00-00", repo.StatusComplete)
	manifestFor(t, filepath.Join(root, repo.DeletingPrefix+"2024-01-08_00-00-00"), "2024-01-08_00-00-00", repo.StatusComplete)
	manifestFor(t, filepath.Join(root, ".2024-01-10_00-00-00"), ".2024-01-10_00-00-00", repo.StatusComplete)
	write(t, filepath.Join(root, "2024-01-09_00-00-00"), "a file, not a set")
	mkdir(t, filepath.Join(root, "notes"))
	write(t, filepath.Join(root, repo.LockFile), "123\n")

	sets, err := repo.List(root, madrid)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name     string
		complete bool
		problem  string
		manifest bool
	}{
		{"2024-01-01_00-00-00", true, "", true},
		{"2024-01-02_00-00-00", false, "no manifest.json: the run that made it did not finish", false},
		{"2024-01-03_00-00-00", true, "", true},
		{"2024-01-04_00-00-00", false, "manifest.json is not valid: ", false},
		{"2024-01-05_00-00-00", false, `manifest status is "failed"`, true},
		{"2024-01-06_00-00-00", false, `manifest names set "2024-01-01_00-00-00"`, true},
	}
	if len(sets) != len(want) {
		var got []string
		for _, s := range sets {
			got = append(got, s.Name)
		}
		t.Fatalf("List = %q, want %d sets", got, len(want))
	}
	for i, w := range want {
		s := sets[i]
		if s.Name != w.name || s.Complete != w.complete || (s.Manifest != nil) != w.manifest {
			t.Errorf("set %d = %s complete=%v manifest=%v; want %s %v %v", i, s.Name, s.Complete, s.Manifest != nil, w.name, w.complete, w.manifest)
		}
		if w.problem == "" && s.Problem != "" || !strings.HasPrefix(s.Problem, w.problem) {
			t.Errorf("%s: problem %q, want %q", s.Name, s.Problem, w.problem)
		}
		if s.Dir != filepath.Join(root, w.name) {
			t.Errorf("%s: dir %q", s.Name, s.Dir)
		}
		wantTime, _ := time.ParseInLocation(repo.SetNameLayout, w.name, madrid)
		if !s.Time.Equal(wantTime) || s.Time.Location() != madrid {
			t.Errorf("%s: time %v, want %v in Madrid", s.Name, s.Time, wantTime)
		}
	}

	if sets, err := repo.List(filepath.Join(root, "missing"), time.UTC); err != nil || sets != nil {
		t.Errorf("List of a missing root = %v, %v; want nothing and no error", sets, err)
	}
}

// A set's size is its files' bytes; what lies in a directory under it is
// not the set's.
func TestSetSize(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "2024-01-01_00-00-00")
	write(t, filepath.Join(dir, "a.sql.gz"), strings.Repeat("a", 1000))
	write(t, filepath.Join(dir, "b.tar.zst"), strings.Repeat("b", 24))
	write(t, filepath.Join(dir, "sub", "c"), strings.Repeat("c", 5000))
	if got := (repo.Set{Dir: dir}).Size(); got != 1024 {
		t.Errorf("size %d, want 1024", got)
	}
	if got := (repo.Set{Dir: filepath.Join(dir, "gone")}).Size(); got != 0 {
		t.Errorf("a set that is gone: size %d, want 0", got)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	m := &repo.Manifest{
		Format: 1, Pipeline: "nightly", Set: "2024-02-03_05-05-06", Status: repo.StatusComplete,
		Started: start, Finished: start.Add(time.Minute), Host: "h", MBKVersion: "0.1", Timezone: "Europe/Madrid",
		Artifacts: []repo.Artifact{{Stage: "dump", Plugin: "mysql", Name: "mysql", ArtifactID: "moodle", File: "moodle_x.sql.gz",
			Format: "sql", Compression: "gzip", Size: 10, SHA256: "ab", RawSize: 20, RawSHA256: "cd", DurationMS: 5,
			Details: json.RawMessage(`{"tables":3}`)}},
		Stages: []repo.Stage{{Kind: "dump", Plugin: "mysql", Name: "mysql", PluginVersion: "1", Status: "ok", DurationMS: 5}},
	}
	// An older manifest with looser permissions is replaced whole.
	write(t, filepath.Join(dir, repo.ManifestFile), "old")
	if err := os.Chmod(filepath.Join(dir, repo.ManifestFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := repo.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := repo.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	// MarshalIndent re-indents the raw details; their content is what counts.
	var compact bytes.Buffer
	if err := json.Compact(&compact, got.Artifacts[0].Details); err != nil {
		t.Fatal(err)
	}
	got.Artifacts[0].Details = compact.Bytes()
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if p := mode(t, filepath.Join(dir, repo.ManifestFile)); p != 0o600 {
		t.Errorf("manifest mode %o, want 600", p)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestWriteSumsAcceptedBySha256sum(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Fatal("sha256sum (GNU coreutils) is needed: apt-get install coreutils")
	}
	dir := t.TempDir()
	files := map[string]string{
		"moodle_2024-01-01_00-00-00.sql.gz": "dump bytes",
		"moodledata 2024.tar.gz":            "tar bytes with a space in the name",
		"*star":                             "a name starting with the binary marker",
		"DB_INFO.txt":                       "",
	}
	var sums []repo.Sum
	for name, content := range files {
		write(t, filepath.Join(dir, name), content)
		h := sha256.Sum256([]byte(content))
		sums = append(sums, repo.Sum{File: name, Hex: hex.EncodeToString(h[:])})
	}
	if err := repo.WriteSums(dir, sums); err != nil {
		t.Fatal(err)
	}
	if p := mode(t, filepath.Join(dir, repo.SumsFile)); p != 0o600 {
		t.Errorf("SHA256SUMS mode %o, want 600", p)
	}
	check := func() (string, error) {
		cmd := exec.Command("sha256sum", "--strict", "-c", repo.SumsFile)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := check()
	if err != nil {
		t.Fatalf("sha256sum -c refused SHA256SUMS: %v\n%s", err, out)
	}
	if n := strings.Count(out, ": OK"); n != len(files) {
		t.Errorf("sha256sum checked %d files, want %d:\n%s", n, len(files), out)
	}
	// The check is meaningful: a changed file fails it.
	write(t, filepath.Join(dir, "moodledata 2024.tar.gz"), "tampered")
	if out, err := check(); err == nil || !strings.Contains(out, "moodledata 2024.tar.gz: FAILED") {
		t.Errorf("a tampered file passed: %v\n%s", err, out)
	}

	for _, bad := range []string{"new\nline", `back\slash`} {
		d := t.TempDir()
		err := repo.WriteSums(d, []repo.Sum{{File: bad, Hex: "00"}})
		if err == nil || !strings.Contains(err.Error(), "cannot be listed in SHA256SUMS") {
			t.Errorf("WriteSums(%q) = %v", bad, err)
		}
		if _, err := os.Stat(filepath.Join(d, repo.SumsFile)); err == nil {
			t.Errorf("WriteSums(%q) wrote a file", bad)
		}
	}
}

func TestCommit(t *testing.T) {
	root := t.TempDir()
	staging := filepath.Join(root, repo.StagingPrefix+"2024-01-01_00-00-00")
	final := filepath.Join(root, "2024-01-01_00-00-00")
	write(t, filepath.Join(staging, "a.sql.gz"), "first")
	if err := repo.Commit(staging, final); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("staging still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.sql.gz")); string(b) != "first" {
		t.Errorf("committed content %q", b)
	}

	occupied := filepath.Join(root, "2024-01-05_00-00-00")
	write(t, occupied, "a file where the set would go")
	tests := []struct {
		name   string
		target string
	}{
		{"existing set", final},
		{"existing file", occupied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := filepath.Join(root, repo.StagingPrefix+"again")
			write(t, filepath.Join(second, "a.sql.gz"), "second")
			err := repo.Commit(second, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.target+" already exists: refusing to overwrite a set") {
				t.Fatalf("Commit over an %s = %v", tt.name, err)
			}
			if b, _ := os.ReadFile(filepath.Join(second, "a.sql.gz")); string(b) != "second" {
				t.Error("the refused staging directory was touched")
			}
			if b, _ := os.ReadFile(filepath.Join(final, "a.sql.gz")); string(b) != "first" {
				t.Error("the existing set was changed")
			}
			if b, _ := os.ReadFile(occupied); string(b) != "a file where the set would go" {
				t.Error("the existing file was changed")
			}
		})
	}
}

func TestDelete(t *testing.T) {
	root := t.TempDir()
	manifestFor(t, filepath.Join(root, "2024-01-01_00-00-00"), "2024-01-01_00-00-00", repo.StatusComplete)
	write(t, filepath.Join(root, "2024-01-01_00-00-00", "sub", "deep.txt"), "x")
	manifestFor(t, filepath.Join(root, "2024-01-02_00-00-00"), "2024-01-02_00-00-00", repo.StatusComplete)
	if err := repo.Delete(root, "2024-01-01_00-00-00"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "2024-01-02_00-00-00" {
		t.Errorf("after Delete, root holds %v", entries)
	}
	if err := repo.Delete(root, "2024-01-01_00-00-00"); err == nil {
		t.Error("deleting a missing set succeeded")
	}
}

// TestDeleteInterrupted makes the removal fail after Delete has started: the
// set must already be gone from view, left as a hidden leftover.
func TestDeleteInterrupted(t *testing.T) {
	root := t.TempDir()
	const name = "2024-01-01_00-00-00"
	manifestFor(t, filepath.Join(root, name), name, repo.StatusComplete)
	write(t, filepath.Join(root, name, "moodle.sql.gz"), "dump")
	// A directory whose entries cannot be unlinked stops RemoveAll midway.
	pinned := filepath.Join(root, name, "pinned")
	write(t, filepath.Join(pinned, "file"), "x")
	if err := os.Chmod(pinned, 0o500); err != nil {
		t.Fatal(err)
	}

	out := runDeleteUnprivileged(t, root, name)
	if !strings.Contains(out, "permission denied") {
		t.Fatalf("Delete was expected to fail on the pinned directory; it said: %s", out)
	}

	if _, err := os.Lstat(filepath.Join(root, name)); !os.IsNotExist(err) {
		t.Errorf("the set is still visible after an interrupted Delete (err %v)", err)
	}
	sets, err := repo.List(root, time.UTC)
	if err != nil || len(sets) != 0 {
		t.Errorf("List = %v, %v; want no set", sets, err)
	}
	left, err := repo.Leftovers(root)
	if err != nil || len(left) != 1 || left[0].Name != repo.DeletingPrefix+name || left[0].Dir != filepath.Join(root, repo.DeletingPrefix+name) {
		t.Errorf("Leftovers = %+v, %v", left, err)
	}
}

func TestLeftovers(t *testing.T) {
	root := t.TempDir()
	mkdir(t, filepath.Join(root, repo.StagingPrefix+"2024-01-01_00-00-00"))
	mkdir(t, filepath.Join(root, repo.DeletingPrefix+"2024-01-02_00-00-00"))
	mkdir(t, filepath.Join(root, "2024-01-03_00-00-00"))
	mkdir(t, filepath.Join(root, ".other-hidden"))
	write(t, filepath.Join(root, repo.StagingPrefix+"a-file"), "not a directory")
	left, err := repo.Leftovers(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range left {
		got = append(got, l.Name)
	}
	want := []string{repo.DeletingPrefix + "2024-01-02_00-00-00", repo.StagingPrefix + "2024-01-01_00-00-00"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Leftovers = %q, want %q", got, want)
	}
	if left, err := repo.Leftovers(filepath.Join(root, "missing")); err != nil || left != nil {
		t.Errorf("Leftovers of a missing root = %v, %v", left, err)
	}
}

func TestParseSetName(t *testing.T) {
	if tm, ok := repo.ParseSetName("2024-12-31_23-59-58", time.UTC); !ok || !tm.Equal(time.Date(2024, 12, 31, 23, 59, 58, 0, time.UTC)) {
		t.Errorf("ParseSetName = %v, %v", tm, ok)
	}
	for _, bad := range []string{"2024-12-31", "latest", "2024-13-01_00-00-00", ".mbk-partial-2024-12-31_23-59-58"} {
		if _, ok := repo.ParseSetName(bad, time.UTC); ok {
			t.Errorf("ParseSetName(%q) accepted", bad)
		}
	}
}

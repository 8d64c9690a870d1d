package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// namedPipeline is a pipeline file of the faulty plugin (no Docker): its
// root on line 4, keep_last = keep (no retain stage when 0) and, when store
// is not empty, an SFTP store stage of that body.
func namedPipeline(name, root string, keep int, store string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin_dir = %q\n\npipeline %q {\n  root    = %q\n  timeout = \"2m\"\n\n", filepath.Join(binDir, "extra"), name, root)
	b.WriteString("  stage \"dump\" \"faulty\" {\n    mode        = \"ok\"\n    size        = 1000\n    compression = \"none\"\n  }\n")
	if keep > 0 {
		fmt.Fprintf(&b, "  stage \"retain\" \"policy\" {\n    keep_last = %d\n  }\n", keep)
	}
	if store != "" {
		fmt.Fprintf(&b, "  stage \"store\" \"sftp\" {\n    %s\n  }\n", store)
	}
	b.WriteString("}\n")
	return b.String()
}

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
	pipeline := func(name string, keep int) string { return namedPipeline(name, root, keep, "") }
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

// TestStorePrefixOfOnePipeline: production and testing with roots of their
// own but one SFTP path for their copies. Testing's run refuses to upload
// into a store holding production's sets, naming one, and so do its `mbk
// prune --store` (keep_last = 1 would have deleted production's older copy)
// and `mbk sync`. Production's copies are as they were; production runs on.
func TestStorePrefixOfOnePipeline(t *testing.T) {
	ftp := storetest.StartSFTP(t)
	dir := t.TempDir()
	shared := filepath.Join(ftp.Dir, "copies")
	pipeline := func(name string, keep int) string {
		return namedPipeline(name, filepath.Join(dir, name), keep, ftp.Stage(shared))
	}
	prod := writeFile(t, dir, "production.hcl", pipeline("production", 7))
	testing := writeFile(t, dir, "testing.hcl", pipeline("testing", 1))
	remote := func() []string { return sets(t, shared) }

	for range 2 {
		if r := mbk(t, runOpts{}, "run", prod); r.code != 0 {
			t.Fatalf("production's run: %s", r)
		}
	}
	prodSets := remote()
	if len(prodSets) != 2 {
		t.Fatalf("the store holds %v, want production's 2 sets", prodSets)
	}
	manifests := func() map[string]string { return storeManifests(t, shared) }
	before := manifests()
	// A second apart: the same name is TestStoreSetNameTaken's case.
	time.Sleep(1100 * time.Millisecond)
	want := fmt.Sprintf(`store "sftp" holds set %s of pipeline "production" where pipeline "testing" keeps its copies`, prodSets[0])
	r := mbk(t, runOpts{}, "run", testing)
	if r.code == 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("testing's run: want its copy refused, saying %q, got %s", want, r)
	}
	storeRefused(t, testing, want)
	if after := manifests(); !maps.Equal(after, before) {
		t.Errorf("the store's sets changed: %d sets after testing's run, prune and sync, want production's %v as they were", len(after), prodSets)
	}
	if r := mbk(t, runOpts{}, "run", prod); r.code != 0 {
		t.Errorf("production's third run: %s", r)
	}
}

// storeManifests is each manifest.json of the sets in an SFTP store's
// directory, by set.
func storeManifests(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	for _, set := range sets(t, dir) {
		out[set] = readFile(t, filepath.Join(dir, set, "manifest.json"))
	}
	return out
}

// storeRefused: file's prune of its store "sftp" and its sync both fail,
// saying want.
func storeRefused(t *testing.T, file, want string) {
	t.Helper()
	if p := mbk(t, runOpts{}, "prune", file, "--store", "sftp"); p.code == 0 || !strings.Contains(p.stdout+p.stderr, want) {
		t.Errorf("prune --store: want %q, got %s", want, p)
	}
	if s := mbk(t, runOpts{}, "sync", file); s.code == 0 || !strings.Contains(s.stdout+s.stderr, want) {
		t.Errorf("sync: want %q, got %s", want, s)
	}
}

// TestStoreSetNameTaken: a run whose set name the store holds already (a
// set another pipeline, sharing the store's path, made in the same second)
// does not upload into it.
func TestStoreSetNameTaken(t *testing.T) {
	ftp := storetest.StartSFTP(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "site.hcl", namedPipeline("site", root, 0, ftp.Stage(filepath.Join(ftp.Dir, "copies"))))
	// Sets of the next seconds, already in the store with a file of their own.
	now := time.Now()
	var planted []string
	for i := range 4 {
		name := now.Add(time.Duration(i) * time.Second).Format("2006-01-02_15-04-05")
		if err := os.MkdirAll(filepath.Join(ftp.Dir, "copies", name), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(ftp.Dir, "copies", name), "other.bin", "another pipeline's")
		planted = append(planted, name)
	}
	r := mbk(t, runOpts{}, "run", file)
	set := sets(t, root)
	if len(set) != 1 || !slices.Contains(planted, set[0]) {
		t.Fatalf("the run made %v, want one set among %v: the test's clock is off", set, planted)
	}
	want := fmt.Sprintf(`store "sftp" holds a set named %s already, which this run did not upload`, set[0])
	if r.code == 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("want the copy refused, saying %q, got %s", want, r)
	}
	entries, _ := os.ReadDir(filepath.Join(ftp.Dir, "copies", set[0]))
	if len(entries) != 1 || entries[0].Name() != "other.bin" {
		t.Errorf("the store's set %s holds %v, want only the file planted there", set[0], entries)
	}
}

// TestStoreManifestUnreadable: a stored set whose manifest.json cannot say
// whose it is (not JSON; larger than any manifest) stops the copy, naming
// the set and the file, rather than being counted as this pipeline's; the
// store is left as it was.
func TestStoreManifestUnreadable(t *testing.T) {
	for _, c := range []struct{ name, manifest, want string }{
		{"not JSON", "{ truncated", "manifest.json is not valid"},
		{"larger than a manifest", `{"pipeline": "` + strings.Repeat("x", 4<<20) + `"}`, "longer than 4194304 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ftp := storetest.StartSFTP(t)
			dir := t.TempDir()
			root := filepath.Join(dir, "backups")
			copies := filepath.Join(ftp.Dir, "copies")
			file := writeFile(t, dir, "site.hcl", namedPipeline("site", root, 0, ftp.Stage(copies)))
			old := "2001-01-01_00-00-00"
			if err := os.MkdirAll(filepath.Join(copies, old), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(copies, old), "manifest.json", c.manifest)
			r := mbk(t, runOpts{}, "run", file)
			if r.code == 0 || !strings.Contains(r.stdout, old) || !strings.Contains(r.stdout, c.want) {
				t.Errorf("want the copy refused, naming %s and saying %q, got %s", old, c.want, r)
			}
			if got := sets(t, copies); !slices.Equal(got, []string{old}) {
				t.Errorf("the store holds %v, want only the planted %s", got, old)
			}
		})
	}
}

// setHost rewrites the host a set's manifest.json says it was made on (and
// its name, for a set copied under another).
func setHost(t *testing.T, setDir, host string) {
	t.Helper()
	file := filepath.Join(setDir, "manifest.json")
	var m map[string]any
	if err := json.Unmarshal([]byte(readFile(t, file)), &m); err != nil {
		t.Fatal(err)
	}
	m["host"] = host
	m["set"] = filepath.Base(setDir)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, setDir, "manifest.json", string(b))
}

// TestStorePrefixOfOneMachine: a server cloned with its pipelines, both
// copies backing up into one store prefix, is told apart by the host the
// sets were made on. A set of another host made since this root's first set
// stops the copy, the store's prune and sync, naming the set and both
// hosts, and the store is left as it was; a restore from the store of that
// set says whose it is, as the store's set list does. Sets this root's own sets were made on under an
// older name, and sets of a machine this one replaced (made before its
// first set), do not.
func TestStorePrefixOfOneMachine(t *testing.T) {
	ftp := storetest.StartSFTP(t)
	dir := t.TempDir()
	copies := filepath.Join(ftp.Dir, "copies")
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "production.hcl", namedPipeline("production", root, 100, ftp.Stage(copies)))
	run := func(file string) result {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // a set a second
		return mbk(t, runOpts{}, "run", file)
	}
	for range 3 {
		if r := run(file); r.code != 0 {
			t.Fatalf("run: %s", r)
		}
	}
	made := sets(t, root)
	// The machine was renamed after its first two sets, and the second is
	// gone from its root (a thinning retention keeps fewer than the store):
	// the store's copy of it is not in the root, made after the root's
	// first set, on the host the root's first set names.
	for _, set := range made[:2] {
		setHost(t, filepath.Join(root, set), "old-name")
		setHost(t, filepath.Join(copies, set), "old-name")
	}
	if err := os.RemoveAll(filepath.Join(root, made[1])); err != nil {
		t.Fatal(err)
	}
	if r := run(file); r.code != 0 {
		t.Fatalf("a run after the machine's rename: %s", r)
	}

	// The clone's set, after this root's first.
	clone := time.Now().Add(time.Hour).Format("2006-01-02_15-04-05")
	if err := os.CopyFS(filepath.Join(copies, clone), os.DirFS(filepath.Join(copies, made[2]))); err != nil {
		t.Fatal(err)
	}
	setHost(t, filepath.Join(copies, clone), "school-b")
	manifests := func() map[string]string { return storeManifests(t, copies) }
	before := manifests()
	me, _ := os.Hostname()
	want := fmt.Sprintf(`store "sftp" holds set %s of pipeline "production", made on host "school-b" after this root's first set`, clone)
	r := run(file)
	if said := r.stdout + r.stderr; r.code == 0 || !strings.Contains(said, want) || !strings.Contains(said, fmt.Sprintf("this machine is %q", me)) {
		t.Errorf("the run beside a clone: want its copy refused, saying %q, got %s", want, r)
	}
	storeRefused(t, file, want)
	if after := manifests(); !maps.Equal(after, before) {
		t.Errorf("the store's sets changed: %d sets, want the %d there were", len(after), len(before))
	}
	// The store's list says which host made each set, where it is not
	// this machine.
	l := mbk(t, runOpts{}, "list", file, "--store", "sftp")
	for _, line := range strings.Split(l.stdout, "\n") {
		set, _, _ := strings.Cut(line, " ")
		onB := strings.Contains(line, `made on host "school-b"`)
		if (set == clone) != onB || (slices.Contains(made[:2], set) != strings.Contains(line, `made on host "old-name"`)) {
			t.Errorf("list --store: the line of %s says %q", set, line)
		}
	}
	if l.code != 0 || !strings.Contains(l.stdout, clone) {
		t.Errorf("list --store: %s", l)
	}
	rs := mbk(t, runOpts{stdin: "no\n"}, "restore", file, clone, "--from", "sftp")
	if wantHost := fmt.Sprintf("Set %s was made on host \"school-b\"; this machine is %q.", clone, me); !strings.Contains(rs.stdout, wantHost) {
		t.Errorf("a restore of the clone's set: want %q before the confirmation, got %s", wantHost, rs)
	}

	// A new machine replacing both: its first set is newer than every
	// other host's.
	fresh := writeFile(t, dir, "new.hcl", namedPipeline("production", filepath.Join(dir, "new-root"), 100, ftp.Stage(copies)))
	if r := run(fresh); r.code != 0 {
		t.Errorf("the replacing machine's first run: %s", r)
	}
}

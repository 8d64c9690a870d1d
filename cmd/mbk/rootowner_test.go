package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/testing/mbktest"
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
	storeRefusedTo(t, func(args ...string) result { return mbk(t, runOpts{}, args...) }, file, want)
}

// storeRefusedTo is storeRefused with mbk run by run.
func storeRefusedTo(t *testing.T, run func(args ...string) result, file, want string) {
	t.Helper()
	if p := run("prune", file, "--store", "sftp"); p.code == 0 || !strings.Contains(p.stdout+p.stderr, want) {
		t.Errorf("prune --store: want %q, got %s", want, p)
	}
	if s := run("sync", file); s.code == 0 || !strings.Contains(s.stdout+s.stderr, want) {
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

// onMachine runs mbk as if on a machine whose /etc/machine-id holds id:
// in a mount namespace of its own, a file bound over that one (the tests
// run as root).
func onMachine(t *testing.T, id string, args ...string) result {
	t.Helper()
	f := writeFile(t, t.TempDir(), "machine-id", id+"\n")
	script := `mount --bind "$0" /etc/machine-id && exec "$@"`
	r := mbktest.Run(t, "unshare", baseEnv(t), "no\n",
		append([]string{"--mount", "--propagation", "private", "sh", "-c", script, f, filepath.Join(binDir, "mbk")}, args...)...)
	return result{r.Stdout, r.Stderr, r.Code}
}

// TestStorePrefixOfOneCloneOfTheMachine: a clone of the server (a VM
// copied with its disk: the same host name, the same root, the same
// pipelines) backing up into the same store prefix is told apart by its
// machine id, and the original's copy, prune and sync are refused once
// the clone has a set there. A VM rolled back to a snapshot (its own
// sets in the store that its root no longer holds) and a machine that
// took over the root (new hardware: sets of another id, all made before
// its first) are not refused.
func TestStorePrefixOfOneCloneOfTheMachine(t *testing.T) {
	ftp := storetest.StartSFTP(t)
	dir := t.TempDir()
	copies := filepath.Join(ftp.Dir, "copies")
	const original, clone, newHardware = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "00112233445566778899aabbccddeeff"
	pipelineAt := func(name, store string) (file, root string) {
		root = filepath.Join(dir, name)
		return writeFile(t, dir, name+".hcl", namedPipeline("production", root, 100, ftp.Stage(store))), root
	}
	run := func(machine, file string) result {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // a set a second
		return onMachine(t, machine, "run", file)
	}
	ok := func(what string, r result) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: %s", what, r)
		}
	}
	copyRoot := func(from, to string) {
		t.Helper()
		if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
			t.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
		}
	}
	prod, root := pipelineAt("original", copies)
	for range 2 {
		ok("the original's run", run(original, prod))
	}
	// A snapshot of the VM, then a set it made after the snapshot.
	snapFile, snapRoot := pipelineAt("snapshot", copies)
	copyRoot(root, snapRoot)
	ok("the original's third run", run(original, prod))
	ok("a run of the VM rolled back to its snapshot (the store holds a set of its own that its root does not)", run(original, snapFile))
	// New hardware taking over the snapshot's root, and a copy of the
	// store (the original stops there): the store holds sets of another
	// machine made after the root's first, and before the new one's.
	hwStore := filepath.Join(ftp.Dir, "copies-hw")
	copyRoot(copies, hwStore)
	hwFile, hwRoot := pipelineAt("new-hardware", hwStore)
	copyRoot(snapRoot, hwRoot)
	ok("the first run on new hardware", run(newHardware, hwFile))
	ok("the second run on new hardware", run(newHardware, hwFile))
	// The clone, copied from the original now: its first run.
	cloneFile, cloneRoot := pipelineAt("clone", copies)
	copyRoot(root, cloneRoot)
	ok("the clone's first run", run(clone, cloneFile))
	cloneSet := sets(t, cloneRoot)[len(sets(t, cloneRoot))-1]
	if r := onMachine(t, original, "list", cloneFile, "--store", "sftp"); !strings.Contains(r.stdout, cloneSet) {
		t.Fatalf("list --store: no %s in %s", cloneSet, r)
	}

	// The original's next run: the clone's set is after the original's
	// first, by a machine of the same name and another id.
	me, _ := os.Hostname()
	before := storeManifests(t, copies)
	r := run(original, prod)
	want := fmt.Sprintf(`store "sftp" holds set %s of pipeline "production", made after this machine's first set in its root (%s) by another machine named %q`,
		cloneSet, started(t, filepath.Join(root, sets(t, root)[0])).UTC().Format(time.RFC3339), me)
	if said := r.stdout + r.stderr; r.code == 0 || !strings.Contains(said, want) {
		t.Errorf("the original's run beside its clone: want its copy refused, saying %q, got %s", want, r)
	}
	storeRefusedTo(t, func(args ...string) result { return onMachine(t, original, args...) }, prod, want)
	if after := storeManifests(t, copies); !maps.Equal(after, before) {
		t.Errorf("the store's sets changed: %d sets, want the %d there were", len(after), len(before))
	}
	// What the original's list and restore say of the clone's set.
	l := onMachine(t, original, "list", prod, "--store", "sftp")
	for _, line := range strings.Split(l.stdout, "\n") {
		set, _, _ := strings.Cut(line, " ")
		if marked := strings.Contains(line, fmt.Sprintf("made on another machine named %q", me)); strings.HasPrefix(set, "20") && marked != (set == cloneSet) {
			t.Errorf("list --store on the original: the line of %s says %q", set, line)
		}
	}
	rs := onMachine(t, original, "restore", prod, cloneSet, "--from", "sftp")
	if want := fmt.Sprintf("Set %s was made on another machine named %q, like this one", cloneSet, me); !strings.Contains(rs.stdout, want) {
		t.Errorf("a restore of the clone's set on the original: want %q before the confirmation, got %s", want, rs)
	}
}

// started is when the set in dir began, as its manifest says.
func started(t *testing.T, dir string) time.Time {
	t.Helper()
	var m struct{ Started time.Time }
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "manifest.json"))), &m); err != nil || m.Started.IsZero() {
		t.Fatalf("%s: no start time in its manifest (%v)", dir, err)
	}
	return m.Started
}

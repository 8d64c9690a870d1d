package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// poolPipeline archives a host directory with filedir in the pool (the
// %s is "pool" or "archive"), keeping keep_last sets.
const poolPipeline = `pipeline "pooled" {
  root    = %q
  timeout = "2m"

  stage "archive" "volume" {
    path        = %q
    filedir     = %q
    compression = "zstd"
  }
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_last = %d
  }
}
`

// moodleFile writes a file into filedir under the SHA-1 of its content, as
// Moodle does, and returns its blob.
func moodleFile(t *testing.T, root, dir string, content []byte) pool.Blob {
	t.Helper()
	h := sha1.Sum(content)
	name := hex.EncodeToString(h[:])
	p := filepath.Join(root, dir, name[:2], name[2:4], name)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 33, 33); err != nil {
		t.Fatal(err)
	}
	return pool.Blob{SHA1: name, Size: int64(len(content))}
}

// poolSite is a small dataroot: 60 files in filedir (a few large), one in
// trashdir, and the rest Moodle keeps outside them.
func poolSite(t *testing.T, root string, seed uint64) []pool.Blob {
	rng := rand.New(rand.NewPCG(seed, 1))
	var blobs []pool.Blob
	for i := range 60 {
		size := 100 + rng.IntN(20000)
		if i%20 == 0 {
			size = 1<<20 + rng.IntN(1<<20) // read by streaming, not into memory
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32() % 16) // compressible, like most files
		}
		blobs = append(blobs, moodleFile(t, root, "filedir", b))
	}
	blobs = append(blobs, moodleFile(t, root, "trashdir", []byte("deleted by a teacher")))
	for name, content := range map[string]string{
		"muc/config.php":         "<?php $configuration = array();\n",
		"lang/es/langconfig.php": "<?php $string['thislanguage'] = 'Español';\n",
		"cache/big":              strings.Repeat("x", 5000),
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("es", filepath.Join(root, "lang", "current")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2019, 3, 4, 5, 6, 7, 890000000, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "muc", "config.php"), old, old); err != nil {
		t.Fatal(err)
	}
	return blobs
}

// treePrint describes a directory: path -> type, mode, owner, mtime (ns),
// size, content hash, link target. Directory mtimes are left out: a
// restore sets them, but the test's own setup changes the source's.
func treePrint(t *testing.T, root string, skip ...string) map[string]string {
	t.Helper()
	fp := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v mode=%o owner=%d:%d", fi.Mode().Type(), st.Mode&0o7777, st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" mtime=%d size=%d sha=%x", fi.ModTime().UnixNano(), len(b), sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += fmt.Sprintf(" mtime=%d link=%s", fi.ModTime().UnixNano(), l)
		}
		fp[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %q, want %q", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s should not be there", what, k)
		}
	}
}

// TestPoolEndToEnd runs the real mbk and volume plugin with filedir in the
// pool: the first set stores every blob, an unchanged second set none and
// an artifact no bigger; a restore from the pool gives the tree a restore
// from a whole tar gives; retention keeps every blob a remaining set
// references and sweeps the rest; a damaged blob passes the plain verify
// (it is there) and fails verify --read-data and a restore; a missing blob
// fails the plain verify.
func TestPoolEndToEnd(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	blobs := poolSite(t, src, 1)
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "pool.hcl", fmt.Sprintf(poolPipeline, root, src, "pool", 2))

	r := mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	s1 := sets(t, root)
	if len(s1) != 1 {
		t.Fatalf("sets: %q", s1)
	}
	set1 := filepath.Join(root, s1[0])
	if v := strings.TrimSpace(readFile(t, filepath.Join(root, ".pool", "VERSION"))); v != "1" {
		t.Errorf(".pool/VERSION holds %q", v)
	}
	refs, err := pool.ReadRefs(set1)
	if err != nil {
		t.Fatal(err)
	}
	if refs.Count() != len(blobs) {
		t.Fatalf("POOL_REFS of the first set: %d blobs, want %d", refs.Count(), len(blobs))
	}
	pl, err := pool.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if !pl.Has(b) {
			t.Errorf("blob %s is not in the pool", b)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(set1, "SHA256SUMS")), " POOL_REFS\n") {
		t.Error("SHA256SUMS does not cover POOL_REFS")
	}
	info := readFile(t, filepath.Join(set1, "MOODLEDATA_INFO.txt"))
	if !strings.Contains(info, fmt.Sprintf("new in this set: %d blobs", len(blobs))) {
		t.Errorf("MOODLEDATA_INFO.txt of the first set:\n%s", info)
	}

	time.Sleep(1100 * time.Millisecond) // a new set name
	r = mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("second run: %s", r)
	}
	s2 := sets(t, root)
	set2 := filepath.Join(root, s2[1])
	info = readFile(t, filepath.Join(set2, "MOODLEDATA_INFO.txt"))
	if !strings.Contains(info, "new in this set: 0 blobs") {
		t.Errorf("MOODLEDATA_INFO.txt of the unchanged set:\n%s", info)
	}
	art := func(set string) int64 {
		fi, err := os.Stat(filepath.Join(root, set, "moodledata_"+set+".tar.zst"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if a, b := art(s2[0]), art(s2[1]); b > a+64 || b > 64<<10 {
		t.Errorf("the unchanged set's archive is %d bytes (the first's %d): the pool's contents went into it", b, a)
	}
	// The core gave the plugin a cache below the root, and the manifest
	// says what the walk listed and took from it. (The tree is seconds
	// old, so the walk lists it all; what the cache gives is
	// plugins/volume's TestWalkCache.)
	caches, _ := filepath.Glob(filepath.Join(root, engine.CacheDir, "*", "walk"))
	if len(caches) != 1 || !strings.HasPrefix(readFile(t, caches[0]), "mbk walk cache 2\n") {
		t.Errorf("walk caches below the root: %q", caches)
	}
	m2, err := repo.ReadManifest(set2)
	if err != nil {
		t.Fatal(err)
	}
	var details struct {
		Read   *int64 `json:"walk_dirs_read"`
		Cached *int64 `json:"walk_dirs_cached"`
	}
	for _, a := range m2.Artifacts {
		if a.Stage == "archive" {
			must(t, json.Unmarshal(a.Details, &details))
		}
	}
	if details.Read == nil || details.Cached == nil || *details.Read+*details.Cached == 0 {
		t.Errorf("the unchanged run's walk: %+v directories read and from the cache", details)
	}

	// Restore from the pool, and from a whole tar of the same tree.
	excluded := []string{"cache"}
	want := treePrint(t, src, excluded...)
	pooled := filepath.Join(dir, "from-pool")
	if r := mbk(t, runOpts{}, "restore", file, s2[1], "--yes", "--no-safety-copy", "--target-path", pooled); r.code != 0 {
		t.Fatalf("restore from the pool: %s", r)
	}
	sameTree(t, "restored from the pool", want, treePrint(t, pooled))
	wholeRoot := filepath.Join(dir, "whole")
	whole := writeFile(t, dir, "whole.hcl", fmt.Sprintf(poolPipeline, wholeRoot, src, "archive", 2))
	if r := mbk(t, runOpts{}, "run", whole); r.code != 0 {
		t.Fatalf("whole-tar run: %s", r)
	}
	fromTar := filepath.Join(dir, "from-tar")
	if r := mbk(t, runOpts{}, "restore", whole, sets(t, wholeRoot)[0], "--yes", "--no-safety-copy", "--target-path", fromTar); r.code != 0 {
		t.Fatalf("restore from the whole tar: %s", r)
	}
	sameTree(t, "pool against whole tar", treePrint(t, fromTar), treePrint(t, pooled))
	if _, err := os.Stat(filepath.Join(wholeRoot, ".pool")); err == nil {
		t.Error("a pipeline without filedir = \"pool\" made a pool")
	}

	// Change the site: one file goes, one comes. keep_last = 2 deletes the
	// first set; the blob only it referenced is swept, the rest stay.
	gone := blobs[3]
	if err := os.Remove(filepath.Join(src, "filedir", gone.SHA1[:2], gone.SHA1[2:4], gone.SHA1)); err != nil {
		t.Fatal(err)
	}
	added := moodleFile(t, src, "filedir", []byte("a new assignment submission"))
	time.Sleep(1100 * time.Millisecond)
	r = mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("third run: %s", r)
	}
	if s := sets(t, root); len(s) != 2 || s[0] != s2[1] {
		t.Fatalf("sets after retention: %q", s)
	}
	if !pl.Has(gone) {
		t.Error("a blob the second set still references was swept")
	}
	for _, b := range append(blobs, added) {
		if !pl.Has(b) {
			t.Errorf("blob %s was swept, still referenced", b)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	r = mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("fourth run: %s", r)
	}
	if pl.Has(gone) {
		t.Error("the blob no set references any more was not swept")
	}
	if !pl.Has(added) || !pl.Has(blobs[0]) {
		t.Error("a referenced blob was swept")
	}
	last := sets(t, root)[1]

	// Damage a blob the last set references.
	if r := mbk(t, runOpts{}, "verify", file, last, "--read-data"); r.code != 0 {
		t.Fatalf("verify --read-data of a sound set: %s", r)
	}
	victim := pl.Path(blobs[1])
	raw, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x55
	if err := os.WriteFile(victim, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := mbk(t, runOpts{}, "verify", file, last); r.code != 0 {
		t.Errorf("plain verify read the pool's data: %s", r)
	}
	r = mbk(t, runOpts{}, "verify", file, last, "--read-data")
	if r.code == 0 || !strings.Contains(r.stdout, blobs[1].SHA1) {
		t.Errorf("verify --read-data passed a damaged blob: %s", r)
	}
	r = mbk(t, runOpts{}, "restore", file, last, "--yes", "--no-safety-copy", "--target-path", filepath.Join(dir, "damaged"))
	if r.code == 0 || !strings.Contains(r.String(), blobs[1].SHA1) {
		t.Errorf("a restore from a damaged blob: %s", r)
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	r = mbk(t, runOpts{}, "verify", file, last)
	if r.code == 0 || !strings.Contains(r.stdout, "missing from the pool") {
		t.Errorf("verify passed a set whose blob is missing: %s", r)
	}
}

// A cache directory the core cannot make (here .cache is a file) costs the
// walk its cache, not the run its set.
func TestPoolCacheUnmade(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	poolSite(t, src, 3)
	root := filepath.Join(dir, "backups")
	must(t, os.MkdirAll(root, 0o700))
	must(t, os.WriteFile(filepath.Join(root, engine.CacheDir), []byte("not a directory"), 0o600))
	file := writeFile(t, dir, "pool.hcl", fmt.Sprintf(poolPipeline, root, src, "pool", 2))
	r := mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	if !strings.Contains(r.stderr, "no cache for this artifact") {
		t.Errorf("the run does not say it has no cache:\n%s", r.stderr)
	}
	s := sets(t, root)
	if len(s) != 1 {
		t.Fatalf("sets: %q", s)
	}
	if m := readFile(t, filepath.Join(root, s[0], "manifest.json")); strings.Contains(m, "walk_dirs") {
		t.Errorf("the manifest reports a walk cache:\n%s", m)
	}
}

// TestPoolTrustsNewestSet: a run takes the blobs the newest complete set
// references as in the pool, but for the day's sixteenth, which it looks
// up: a blob deleted behind mbk's back stays missing (the set references
// it) unless it is in that slice, where it is stored again from the site.
// verify finds the missing one and asks for a recheck, and the next run
// looks up every blob and stores it again; so does a run whose newest set's
// references cannot be read.
func TestPoolTrustsNewestSet(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	blobs := poolSite(t, src, 4)
	today := engine.PoolCheckSlice(time.Now())
	tomorrow := engine.PoolCheckSlice(time.Now().Add(24 * time.Hour))
	// A blob whose name starts with each of today's and tomorrow's digits
	// (a run that starts after midnight checks tomorrow's), and one with
	// neither.
	pick := func(want func(byte) bool) pool.Blob {
		for _, b := range blobs {
			if want(b.SHA1[0]) {
				return b
			}
		}
		for i := 0; ; i++ {
			if b := moodleFile(t, src, "filedir", fmt.Appendf(nil, "extra file %d", i)); want(b.SHA1[0]) {
				blobs = append(blobs, b)
				return b
			}
		}
	}
	inToday := pick(func(c byte) bool { return c == today })
	inTomorrow := pick(func(c byte) bool { return c == tomorrow })
	other := pick(func(c byte) bool { return c != today && c != tomorrow })
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "pool.hcl", fmt.Sprintf(poolPipeline, root, src, "pool", 5))
	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	pl, err := pool.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	deleted := []pool.Blob{inToday, inTomorrow, other}
	for _, b := range deleted {
		must(t, os.Remove(pl.Path(b)))
	}

	time.Sleep(1100 * time.Millisecond) // a new set name
	r := mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("second run: %s", r)
	}
	if !strings.Contains(r.stderr, "taken as present") {
		t.Errorf("the run does not say it took the newest set's references:\n%s", r.stderr)
	}
	set2 := sets(t, root)[1]
	m, err := repo.ReadManifest(filepath.Join(root, set2))
	if err != nil {
		t.Fatal(err)
	}
	slice := engine.PoolCheckSlice(m.Started)
	if slice != today && slice != tomorrow {
		t.Fatalf("the second run started %v, neither today nor tomorrow", m.Started)
	}
	for _, b := range deleted {
		if want := b.SHA1[0] == slice; pl.Has(b) != want {
			t.Errorf("blob %s (the run looks up names starting with %c): in the pool %v, want %v", b, slice, pl.Has(b), want)
		}
	}
	refs, err := pool.ReadRefs(filepath.Join(root, set2))
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := refs.Marked(other); !in {
		t.Errorf("the second set does not reference %s", other)
	}

	r = mbk(t, runOpts{}, "verify", file, set2)
	if r.code == 0 || !strings.Contains(r.stdout, other.SHA1) {
		t.Fatalf("verify of a set whose blob was deleted: %s", r)
	}
	if !pl.RecheckWanted() {
		t.Fatalf("verify found a blob missing and did not write %s", pool.RecheckFile)
	}
	time.Sleep(1100 * time.Millisecond)
	r = mbk(t, runOpts{}, "run", file)
	if r.code != 0 {
		t.Fatalf("third run: %s", r)
	}
	if !strings.Contains(r.stderr, "every blob looked up") {
		t.Errorf("the run after a recheck mark does not say it looked up every blob:\n%s", r.stderr)
	}
	for _, b := range deleted {
		if !pl.Has(b) {
			t.Errorf("blob %s, missing, was not stored again by the run after the recheck mark", b)
		}
	}
	if pl.RecheckWanted() {
		t.Errorf("%s is still there after a run looked up every blob", pool.RecheckFile)
	}
	if r := mbk(t, runOpts{}, "verify", file, sets(t, root)[2]); r.code != 0 {
		t.Errorf("verify of the healed set: %s", r)
	}

	// The newest set's references damaged: nothing is taken from them,
	// every blob is looked up, and a missing one is stored again. The set
	// is committed; retention's sweep refuses to run on references it
	// cannot read, so the run ends with a warning (exit 3).
	refsFile := filepath.Join(root, sets(t, root)[2], pool.RefsFile)
	must(t, os.Chmod(refsFile, 0o600))
	must(t, os.WriteFile(refsFile, []byte("not a reference\n"), 0o600))
	must(t, os.Remove(pl.Path(other)))
	time.Sleep(1100 * time.Millisecond)
	r = mbk(t, runOpts{}, "run", file)
	if r.code != 3 || !strings.Contains(r.stderr, "pool not swept") {
		t.Fatalf("run after the newest set's references were damaged: want exit 3 and the sweep refused: %s", r)
	}
	if !strings.Contains(r.stderr, "references cannot be read") || strings.Contains(r.stderr, "taken as present") {
		t.Errorf("the run does not say it looked every blob up:\n%s", r.stderr)
	}
	if !pl.Has(other) {
		t.Errorf("blob %s, missing, was not stored again with the newest references unreadable", other)
	}
}

// TestPoolMismatchedName: a file whose content does not hash to its name
// (corrupt in the site) is stored under its real hash and restored as it
// is; the run commits with a warning (exit 3) naming it.
func TestPoolMismatchedName(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	b := moodleFile(t, src, "filedir", []byte("what Moodle stored"))
	bad := filepath.Join(src, "filedir", b.SHA1[:2], b.SHA1[2:4], b.SHA1)
	if err := os.WriteFile(bad, []byte("what the disk holds now"), 0o640); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "pool.hcl", fmt.Sprintf(poolPipeline, root, src, "pool", 2))
	r := mbk(t, runOpts{}, "run", file)
	if r.code != 3 || !strings.Contains(r.String(), "did not match their names") {
		t.Fatalf("run over a mismatched file: want exit 3 and a warning: %s", r)
	}
	real := sha1.Sum([]byte("what the disk holds now"))
	pl, _ := pool.Open(root)
	if !pl.Has(pool.Blob{SHA1: hex.EncodeToString(real[:]), Size: 23}) || pl.Has(b) {
		t.Error("the content is not stored under its real hash alone")
	}
	set := sets(t, root)[0]
	if info := readFile(t, filepath.Join(root, set, "MOODLEDATA_INFO.txt")); !strings.Contains(info, b.SHA1) {
		t.Errorf("MOODLEDATA_INFO.txt does not name the file:\n%s", info)
	}
	out := filepath.Join(dir, "restored")
	if r := mbk(t, runOpts{}, "restore", file, set, "--yes", "--no-safety-copy", "--target-path", out); r.code != 0 {
		t.Fatalf("restore: %s", r)
	}
	got, err := os.ReadFile(filepath.Join(out, "filedir", b.SHA1[:2], b.SHA1[2:4], b.SHA1))
	if err != nil || string(got) != "what the disk holds now" {
		t.Errorf("restored %q, %v", got, err)
	}
}

// TestPoolSweepKilled kills mbk prune while it sweeps: whatever it had
// deleted, every blob a set references is still there, verify passes, and
// the next prune finishes the sweep.
func TestPoolSweepKilled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	blobs := poolSite(t, src, 2)
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "pool.hcl", fmt.Sprintf(poolPipeline, root, src, "pool", 2))
	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	pl, err := pool.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	// Blobs no set references, as deleted sets leave them: enough that the
	// sweep takes a while.
	const orphans = 20000
	w, err := pl.Put(strings.NewReader("an orphan"), pool.Codec{Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(pl.Path(w.Blob))
	if err != nil {
		t.Fatal(err)
	}
	// The sweep deletes in the order of the blobs' names: it is under way
	// when the first orphan is gone and the last is still there.
	first, last := w.Blob, w.Blob
	for i := range orphans - 1 {
		h := sha1.Sum([]byte(fmt.Sprint("orphan ", i)))
		b := pool.Blob{SHA1: hex.EncodeToString(h[:]), Size: int64(i)}
		if err := os.MkdirAll(filepath.Dir(pl.Path(b)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pl.Path(b), body, 0o600); err != nil {
			t.Fatal(err)
		}
		if b.SHA1 < first.SHA1 {
			first = b
		}
		if b.SHA1 > last.SHA1 {
			last = b
		}
	}
	count := func() int {
		n := 0
		pl.Walk(func(pool.Blob, string, int64) error { n++; return nil })
		return n
	}
	exists := func(b pool.Blob) bool {
		_, err := os.Stat(pl.Path(b))
		return err == nil
	}
	cmd := exec.Command(filepath.Join(binDir, "mbk"), "prune", file)
	cmd.Env = baseEnv(t)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if !exists(first) {
			if exists(last) {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	cmd.Wait()
	if !killed {
		t.Fatal("the sweep was not caught under way (it finished, or never started)")
	}
	left := count()
	if left <= len(blobs) {
		t.Fatalf("the kill came after the sweep ended (%d blobs left)", left)
	}
	for _, b := range blobs {
		if !pl.Has(b) {
			t.Errorf("blob %s, referenced, is missing after the killed sweep", b)
		}
	}
	if r := mbk(t, runOpts{}, "verify", file, "--all", "--read-data"); r.code != 0 {
		t.Errorf("verify after the killed sweep: %s", r)
	}
	r := mbk(t, runOpts{}, "prune", file)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("swept %d unreferenced", left-len(blobs))) {
		t.Errorf("the next prune: %s", r)
	}
	if n := count(); n != len(blobs) {
		t.Errorf("%d blobs after the second prune, want %d", n, len(blobs))
	}
}

// TestPoolDrill: a drill of a site whose filedir is in the pool restores
// it from the pool into its sandbox and passes the same checks a whole
// tar's drill passes; after a blob of the pool is damaged, the drill fails
// naming it.
func TestPoolDrill(t *testing.T) {
	s := newMoodleSite(t)
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	hcl := drillPipeline("pooled", root, s, mail, "")
	pooled := strings.Replace(hcl, `exclude = ["cache"`, `filedir = "pool"
    exclude = ["cache"`, 1)
	if pooled == hcl {
		t.Fatal("the drill pipeline's archive stage changed: filedir not set")
	}
	file := writeFile(t, dir, "drill.hcl", pooled)
	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	set := sets(t, root)[0]
	marks, err := pool.ReadRefs(filepath.Join(root, set))
	if err != nil {
		t.Fatal(err)
	}
	refs := slices.Collect(marks.Blobs())
	if len(refs) < 40 {
		t.Fatalf("the set references %d blobs: the site's filedir did not go to the pool", len(refs))
	}
	r := mbk(t, runOpts{env: s.env()}, "drill", file, "--sample", "100")
	if r.code != 0 || !strings.Contains(r.stdout, "PASSED") || !strings.Contains(r.stdout, "blob-hashes") {
		t.Fatalf("a drill of a pooled set: %s", r)
	}
	pl, err := pool.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	victim := refs[len(refs)/2]
	raw, err := os.ReadFile(pl.Path(victim))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-2] ^= 0x5a
	if err := os.WriteFile(pl.Path(victim), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r = mbk(t, runOpts{env: s.env()}, "drill", file)
	if r.code == 0 || !strings.Contains(r.String(), victim.SHA1) {
		t.Fatalf("a drill over a damaged pool blob must fail naming it: %s", r)
	}
	if left := drillLeftovers(t); len(left) > 0 {
		t.Fatalf("the drill left %v", left)
	}
}

// poolStorePipeline is poolPipeline with an S3 and an SFTP store.
const poolStorePipeline = `pipeline "pooled" {
  root    = %q
  timeout = "5m"

  stage "archive" "volume" {
    path        = %q
    filedir     = "pool"
    compression = "zstd"
  }
  stage "retain" "policy" {
    keep_last = 2
  }
  stage "store" "s3" {
    %s
  }
  stage "store" "sftp" {
    %s
  }
}
`

// TestPoolStores: the pool travels to S3 and SFTP. The first run uploads
// every blob; an unchanged second run uploads no blob, only the set's own
// files; a restore from each store on a fresh machine (no root yet) gives
// back the tree; store retention sweeps the blob no stored set references
// any more and keeps the rest.
func TestPoolStores(t *testing.T) {
	s3 := storetest.StartS3(t)
	ftp := storetest.StartSFTP(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	blobs := poolSite(t, src, 3)
	root := filepath.Join(dir, "backups")
	ftpDir := filepath.Join(ftp.Dir, "pooled")
	hcl := func(root string) string {
		return fmt.Sprintf(poolStorePipeline, root, src, s3.Stage(s3.Bucket, "moodle/pooled"), ftp.Stage(ftpDir))
	}
	file := writeFile(t, dir, "pool.hcl", hcl(root))
	env := runOpts{env: s3.Env()}
	blobPuts := func(from int) (n int) {
		for _, r := range s3.Requests(t)[from:] {
			if r.Op == "PutObject" && strings.Contains(r.Key, "/mbk-pool/") {
				n++
			}
		}
		return n
	}
	s3Blob := func(b pool.Blob) bool {
		_, err := os.Stat(filepath.Join(s3.Dir, s3.Bucket, "moodle", "pooled", "mbk-pool", b.String()))
		return err == nil
	}
	ftpBlob := func(b pool.Blob) bool {
		_, err := os.Stat(filepath.Join(ftpDir, "mbk-pool", b.SHA1[:2], b.String()))
		return err == nil
	}

	if r := mbk(t, env, "run", file); r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	if n := blobPuts(0); n != len(blobs) {
		t.Errorf("the first run uploaded %d blobs to S3, want %d", n, len(blobs))
	}
	for _, b := range blobs {
		if !s3Blob(b) || !ftpBlob(b) {
			t.Errorf("blob %s: in S3 %v, in SFTP %v", b, s3Blob(b), ftpBlob(b))
		}
	}
	mark := len(s3.Requests(t))
	time.Sleep(1100 * time.Millisecond)
	if r := mbk(t, env, "run", file); r.code != 0 {
		t.Fatalf("second run: %s", r)
	}
	var puts []string
	for _, r := range s3.Requests(t)[mark:] {
		if r.Op == "PutObject" || r.Op == "CreateMultipartUpload" {
			puts = append(puts, r.Key)
		}
	}
	set2 := sets(t, root)[1]
	for _, k := range puts {
		if !strings.Contains(k, "/"+set2+"/") {
			t.Errorf("the unchanged run uploaded %s, not a file of its set", k)
		}
	}
	if len(puts) == 0 || len(puts) > 6 {
		t.Errorf("the unchanged run uploaded %d objects: %q", len(puts), puts)
	}

	// A fresh machine: same stores, no root.
	want := treePrint(t, src, "cache")

	// A blob gone from the store: the restore says so, naming it, before
	// it downloads any blob.
	lost := filepath.Join(s3.Dir, s3.Bucket, "moodle", "pooled", "mbk-pool", blobs[9].String())
	if err := os.Rename(lost, lost+".away"); err != nil {
		t.Fatal(err)
	}
	fresh := writeFile(t, dir, "fresh-lost.hcl", hcl(filepath.Join(dir, "fresh-lost")))
	mark = len(s3.Requests(t))
	r := mbk(t, env, "restore", fresh, "--from", "s3", "--yes", "--no-safety-copy", "--target-path", filepath.Join(dir, "restored-lost"))
	if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "pool (mbk-pool) lacks 1 of the") || !strings.Contains(r.stderr+r.stdout, blobs[9].String()) {
		t.Errorf("a restore from a store that lost a blob: %s", r)
	}
	for _, req := range s3.Requests(t)[mark:] {
		if req.Op == "GetObject" && strings.Contains(req.Key, "/mbk-pool/") {
			t.Errorf("the restore downloaded %s before it knew a blob was missing", req.Key)
		}
	}
	if err := os.Rename(lost+".away", lost); err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"s3", "sftp"} {
		fresh := writeFile(t, dir, "fresh-"+store+".hcl", hcl(filepath.Join(dir, "fresh-"+store)))
		out := filepath.Join(dir, "restored-"+store)
		if r := mbk(t, env, "restore", fresh, "--from", store, "--yes", "--no-safety-copy", "--target-path", out); r.code != 0 {
			t.Fatalf("restore from %s on a fresh machine: %s", store, r)
		}
		sameTree(t, "restored from "+store, want, treePrint(t, out))
	}
	// A drill from the store on a fresh machine: the set and its blobs
	// come down, are restored into a sandbox volume and checked.
	freshDrill := writeFile(t, dir, "fresh-drill.hcl", hcl(filepath.Join(dir, "fresh-drill")))
	if r := mbk(t, env, "drill", freshDrill, "--from", "s3", "--no-record"); r.code != 0 || !strings.Contains(r.stdout, "PASSED") {
		t.Fatalf("drill from s3 on a fresh machine: %s", r)
	}
	if left := drillLeftovers(t); len(left) > 0 {
		t.Fatalf("the drill left %v", left)
	}

	// One file goes, two runs later its blob has left both stores.
	gone := blobs[5]
	if err := os.Remove(filepath.Join(src, "filedir", gone.SHA1[:2], gone.SHA1[2:4], gone.SHA1)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		time.Sleep(1100 * time.Millisecond)
		if r := mbk(t, env, "run", file); r.code != 0 {
			t.Fatalf("run: %s", r)
		}
	}
	if s3Blob(gone) || ftpBlob(gone) {
		t.Errorf("the unreferenced blob is still stored: S3 %v, SFTP %v", s3Blob(gone), ftpBlob(gone))
	}
	for _, b := range blobs {
		if b != gone && (!s3Blob(b) || !ftpBlob(b)) {
			t.Errorf("referenced blob %s was swept: S3 %v, SFTP %v", b, s3Blob(b), ftpBlob(b))
		}
	}
}

// TestPoolEncrypted: with an encryption block every blob is encrypted to
// the recipients (no blob holds a file's plain bytes); a restore needs the
// identity and gives the tree back with it; verify --read-data reads the
// blobs with it and, without it, says the identity is needed.
func TestPoolEncrypted(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	idFile := writeFile(t, dir, "key.txt", id.String()+"\n")
	src := filepath.Join(dir, "moodledata")
	poolSite(t, src, 4)
	plainText := []byte("deleted by a teacher")
	root := filepath.Join(dir, "backups")
	hcl := strings.Replace(fmt.Sprintf(poolPipeline, root, src, "pool", 2), `  timeout = "2m"`,
		fmt.Sprintf("  timeout = \"2m\"\n\n  encryption {\n    recipients = [%q]\n  }", id.Recipient().String()), 1)
	file := writeFile(t, dir, "enc.hcl", hcl)
	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	pl, err := pool.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	pl.Walk(func(b pool.Blob, path string, _ int64) error {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), "mbkpool1 zstd age\n") || strings.Contains(string(raw), string(plainText)) {
			t.Errorf("blob %s is not encrypted: %.40q", b, raw)
		}
		n++
		return nil
	})
	if n != 61 {
		t.Fatalf("%d blobs in the pool, want 61", n)
	}
	set := sets(t, root)[0]
	out := filepath.Join(dir, "restored")
	if r := mbk(t, runOpts{}, "restore", file, set, "--yes", "--no-safety-copy", "--target-path", out); r.code == 0 {
		t.Errorf("a restore without the identity succeeded: %s", r)
	}
	if r := mbk(t, runOpts{}, "restore", file, set, "--yes", "--no-safety-copy", "--target-path", out, "--identity", idFile); r.code != 0 {
		t.Fatalf("restore with the identity: %s", r)
	}
	sameTree(t, "restored from the encrypted pool", treePrint(t, src, "cache"), treePrint(t, out))
	if r := mbk(t, runOpts{}, "verify", file, set, "--read-data", "--identity", idFile); r.code != 0 {
		t.Errorf("verify --read-data with the identity: %s", r)
	}
	if r := mbk(t, runOpts{}, "verify", file, set, "--read-data"); r.code == 0 || !strings.Contains(r.stdout, "identity") {
		t.Errorf("verify --read-data without the identity: %s", r)
	}
}

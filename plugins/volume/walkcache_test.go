package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/sdk"
)

// walkCacheSite is a pooled site on the host, a pool, and a backup of it
// with or without a walk cache.
type walkCacheSite struct {
	t     *testing.T
	src   string
	cache string
	p     *plugin
	cfg   sdk.Config
	cp    *corePool
}

func newWalkCacheSite(t *testing.T) *walkCacheSite {
	base := t.TempDir()
	s := &walkCacheSite{t: t, src: filepath.Join(base, "moodledata"), cache: filepath.Join(base, "cache"), p: newTestPlugin(t)}
	sha1Dataroot(t, s.src)
	must(t, os.Mkdir(s.cache, 0o700))
	pl, err := pool.Open(filepath.Join(base, "root"))
	must(t, err)
	s.cp = &corePool{p: pl}
	s.cfg = testConfig(t, s.p, map[string]cty.Value{"path": cty.StringVal(s.src), "filedir": cty.StringVal("pool")})
	return s
}

// backup archives the site, through the cache when cached, and returns
// the archive's bytes and the directories of filedir and trashdir read and
// taken from the cache.
func (s *walkCacheSite) backup(cached bool) (archive []byte, read, fromCache int64) {
	s.t.Helper()
	cache := ""
	if cached {
		cache = s.cache
	}
	var buf bytes.Buffer
	res, err := s.p.Backup(context.Background(), sdk.BackupRequest{Config: s.cfg, Artifact: artifactID, Set: "s", Pool: s.cp, CacheDir: cache}, &buf)
	if err != nil {
		s.t.Fatalf("Backup: %v", err)
	}
	read, _ = res.Details["walk_dirs_read"].(int64)
	fromCache, _ = res.Details["walk_dirs_cached"].(int64)
	if !cached && (read != 0 || fromCache != 0) {
		s.t.Fatalf("a backup without a cache says it used one: %v", res.Details)
	}
	return buf.Bytes(), read, fromCache
}

// same fails unless a backup through the cache writes the very archive a
// backup that reads every directory writes.
func (s *walkCacheSite) same(what string, cachedArchive []byte) {
	s.t.Helper()
	plain, _, _ := s.backup(false)
	if !bytes.Equal(cachedArchive, plain) {
		a, _ := os.CreateTemp(s.t.TempDir(), "cached-*.tar")
		b, _ := os.CreateTemp(s.t.TempDir(), "read-*.tar")
		a.Write(cachedArchive)
		b.Write(plain)
		a.Close()
		b.Close()
		ea, _ := tarEntries(s.t, a.Name())
		eb, _ := tarEntries(s.t, b.Name())
		for name, d := range eb {
			if ea[name] != d {
				s.t.Errorf("%s: %s: through the cache %q, read %q", what, name, ea[name], d)
			}
		}
		for name := range ea {
			if _, ok := eb[name]; !ok {
				s.t.Errorf("%s: %s only in the archive made through the cache", what, name)
			}
		}
		s.t.Fatalf("%s: the archive made through the cache differs from the one read whole", what)
	}
}

// touchDir changes a file in dir and waits until dir's ctime shows it
// (the file system's clock may tick coarsely).
func touchDir(t *testing.T, dir string, change func()) {
	t.Helper()
	before := ctimeOf(t, dir)
	change()
	for i := 0; ctimeOf(t, dir) == before; i++ {
		if i == 100 {
			t.Fatalf("%s: its ctime does not change", dir)
		}
		time.Sleep(10 * time.Millisecond)
		must(t, os.Chmod(dir, 0o750)) // sets ctime again, mode unchanged
	}
}

func ctimeOf(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Lstat(path)
	must(t, err)
	return fi.Sys().(*syscall.Stat_t).Ctim.Nano()
}

// The walk cache gives an unchanged directory's names without reading it,
// and a backup through it is the very archive a backup that reads every
// directory makes: after files are added, removed, renamed and re-moded,
// after the cache is damaged, and whatever guard sends a directory back
// to be read.
func TestWalkCache(t *testing.T) {
	defer setVar(&walkCacheMargin, -time.Hour)() // the tree is a moment old
	s := newWalkCacheSite(t)
	// What a run killed while writing its cache left.
	must(t, os.WriteFile(filepath.Join(s.cache, "walk.new"), []byte("mbk walk cache 1\nhalf a li"), 0o600))

	first, read, fromCache := s.backup(true)
	if ents, _ := os.ReadDir(s.cache); len(ents) != 1 || ents[0].Name() != "walk" {
		t.Errorf("after a backup the cache directory holds %v, want walk alone", ents)
	}
	if read == 0 || fromCache != 0 {
		t.Fatalf("first backup: %d directories read, %d from the cache; want all read", read, fromCache)
	}
	s.same("first backup", first)
	dirs := read

	second, read, fromCache := s.backup(true)
	if read != 0 || fromCache != dirs {
		t.Fatalf("unchanged: %d directories read, %d from the cache; want 0 and %d", read, fromCache, dirs)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("unchanged: the second archive differs from the first")
	}

	// Changes a directory's names (and its ctime) or only a file's
	// metadata (which the file's lstat gives each night).
	var pooled []string
	must(t, filepath.WalkDir(filepath.Join(s.src, "filedir"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && len(d.Name()) == 40 {
			pooled = append(pooled, p)
		}
		return err
	}))
	added := filepath.Join(filepath.Dir(pooled[0]), "0000000000000000000000000000000000000000")
	touchDir(t, filepath.Dir(pooled[0]), func() { must(t, os.WriteFile(added, []byte("new"), 0o640)) })
	touchDir(t, filepath.Dir(pooled[1]), func() { must(t, os.Remove(pooled[1])) })
	renamed := filepath.Join(filepath.Dir(pooled[2]), "ffffffffffffffffffffffffffffffffffffffff")
	touchDir(t, filepath.Dir(pooled[2]), func() { must(t, os.Rename(pooled[2], renamed)) })
	newDir := filepath.Join(filepath.Dir(filepath.Dir(pooled[5])), "zz")
	touchDir(t, filepath.Dir(newDir), func() {
		must(t, os.Mkdir(newDir, 0o750))
		must(t, os.WriteFile(filepath.Join(newDir, "eeee000000000000000000000000000000000000"), []byte("x"), 0o640))
	})
	must(t, os.Chmod(pooled[3], 0o600))
	must(t, os.Chtimes(pooled[4], time.Unix(1e9, 0), time.Unix(1e9, 0)))

	changed := map[string]bool{filepath.Dir(pooled[0]): true, filepath.Dir(pooled[1]): true, filepath.Dir(pooled[2]): true, filepath.Dir(newDir): true}
	third, read, fromCache := s.backup(true)
	if want := int64(len(changed) + 1); read != want || fromCache != dirs+1-want {
		t.Errorf("after changes to %d directories and a new one: %d read, %d from the cache; want %d and %d", len(changed), read, fromCache, want, dirs+1-want)
	}
	s.same("after changes", third)
	for _, want := range []string{"0000000000000000000000000000000000000000", "ffffffffffffffffffffffffffffffffffffffff", "eeee000000000000000000000000000000000000"} {
		if !bytes.Contains(third, []byte(want)) {
			t.Errorf("after changes: %s is not in the archive", want)
		}
	}

	// A damaged cache is used up to the damage, and no further.
	walk := filepath.Join(s.cache, "walk")
	b, err := os.ReadFile(walk)
	must(t, err)
	b[len(b)/2] ^= 0x20
	must(t, os.WriteFile(walk, b, 0o600))
	damaged, read, fromCache := s.backup(true)
	if read == 0 || fromCache == 0 {
		t.Errorf("damaged cache: %d read, %d from the cache; want some of each", read, fromCache)
	}
	s.same("damaged cache", damaged)
	// The cache of a whole backup, under another version's heading.
	s.backup(true)
	b, err = os.ReadFile(walk)
	must(t, err)
	must(t, os.WriteFile(walk, bytes.Replace(b, []byte(walkCacheMagic), []byte("mbk walk cache 1"), 1), 0o600))
	if _, read, fromCache = s.backup(true); fromCache != 0 {
		t.Errorf("a cache of another version: %d read, %d from the cache", read, fromCache)
	}

	// A cache that cannot be written (here walk.new is a directory; a full
	// disk alike) costs the next backup time, not this one its success.
	before, err := os.ReadFile(walk)
	must(t, err)
	must(t, os.Mkdir(walk+".new", 0o700))
	blocked, _, _ := s.backup(true)
	s.same("cache not writable", blocked)
	if after, err := os.ReadFile(walk); err != nil || !bytes.Equal(before, after) {
		t.Errorf("a cache that could not be written replaced the last one (%v)", err)
	}
	must(t, os.Remove(walk+".new"))

	// An entry read longer ago than walkCacheMaxAge is read again.
	func() {
		defer setVar(&walkCacheMaxAge, 0)()
		if _, read, fromCache = s.backup(true); fromCache != 0 || read != dirs+1 {
			t.Errorf("stale cache: %d read, %d from the cache; want all %d read", read, fromCache, dirs+1)
		}
	}()

	// A directory of more names than walkCacheMaxNames is listed each time.
	func() {
		defer setVar(&walkCacheMaxNames, 1)()
		small, all := s.dirs("filedir", 1)+s.dirs("trashdir", 1), s.dirs("filedir", -1)+s.dirs("trashdir", -1)
		s.backup(true) // forgets the bigger ones
		for range 2 {  // and does not record them when it lists them
			if _, read, fromCache = s.backup(true); fromCache != int64(small) || read != int64(all-small) {
				t.Errorf("at most 1 name a directory: %d read, %d from the cache; want %d and %d", read, fromCache, all-small, small)
			}
		}
		if small == 0 || small == all {
			t.Errorf("the site has %d directories, %d of at most one name: the case shows nothing", all, small)
		}
	}()

	// A backup that fails leaves the last cache as it was, and no other,
	// though the tree changed since.
	before, err = os.ReadFile(walk)
	must(t, err)
	touchDir(t, newDir, func() {
		must(t, os.WriteFile(filepath.Join(newDir, "eeee111111111111111111111111111111111111"), []byte("y"), 0o640))
	})
	if _, err := s.p.Backup(context.Background(), sdk.BackupRequest{Config: s.cfg, Artifact: artifactID, Set: "s", Pool: &failingPool{p: s.cp.p, failHaveAt: 1}, CacheDir: s.cache}, &bytes.Buffer{}); err == nil {
		t.Error("a backup whose pool fails succeeded")
	}
	after, err := os.ReadFile(walk)
	must(t, err)
	if !bytes.Equal(before, after) {
		t.Error("a failed backup changed the cache")
	}
	if ents, _ := os.ReadDir(s.cache); len(ents) != 1 {
		t.Errorf("after a failed backup the cache directory holds %d files, want 1", len(ents))
	}
}

// A directory changed less than walkCacheMargin before the walk is not
// recorded: a file added to it in the same clock tick as the walk read it
// would leave its ctime as the cache knows it.
func TestWalkCacheRacyDirectories(t *testing.T) {
	s := newWalkCacheSite(t) // every directory changed a moment ago
	s.backup(true)
	if _, read, fromCache := s.backup(true); read == 0 || fromCache != 0 {
		t.Errorf("a tree made a moment ago: %d read, %d from the cache; want all read", read, fromCache)
	}
}

// A name the cache gives that is gone when it is lstat'ed (removed between
// the directory's stat and the file's, which the ctime check cannot see)
// is a warning, as a file that vanishes during any walk, and the rest of
// the archive is what a full walk writes.
func TestWalkCacheNameGone(t *testing.T) {
	defer setVar(&walkCacheMargin, -time.Hour)()
	s := newWalkCacheSite(t)
	s.backup(true)
	// The cache as a removal in that moment leaves it: a name more in a
	// directory it serves, the line's checksum made again.
	walk := filepath.Join(s.cache, "walk")
	b, err := os.ReadFile(walk)
	must(t, err)
	const ghost = "1111111111111111111111111111111111111111"
	var where string
	secs := readWalkCache(t, b)
	for _, sec := range secs {
		for i, d := range sec.Dirs {
			if d.Rel != "" && where == "" {
				sec.Dirs[i].Names = append(d.Names, ghost)
				where = sec.Key + "/" + d.Rel + "/" + ghost
			}
		}
	}
	if where == "" {
		t.Fatal("the cache serves no directory")
	}
	must(t, os.WriteFile(walk, writeWalkCache(secs), 0o600))

	var buf bytes.Buffer
	res, err := s.p.Backup(context.Background(), sdk.BackupRequest{Config: s.cfg, Artifact: artifactID, Set: "s", Pool: s.cp, CacheDir: s.cache}, &buf)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if !strings.Contains(res.InfoText, where) || !strings.Contains(res.InfoText, "vanished") {
		t.Errorf("no warning names %s:\n%s", where, res.InfoText)
	}
	s.same("a name gone", buf.Bytes())
}

// dirs counts the directories below a pooled area (not the area itself)
// of at most max names; all of them when max < 0.
func (s *walkCacheSite) dirs(area string, max int) int {
	n := 0
	top := filepath.Join(s.src, area)
	must(s.t, filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == top {
			return err
		}
		ents, err := os.ReadDir(p)
		if max < 0 || len(ents) <= max {
			n++
		}
		return err
	}))
	return n
}

// The file system is asked about for each pooled area, not the dataroot:
// filedir or trashdir may be a mount of its own. Here trashdir stands for
// one the cache cannot be used on.
func TestWalkCachePerArea(t *testing.T) {
	defer setVar(&walkCacheMargin, -time.Hour)()
	defer setVar(&walkCacheFSOf, func(dir string) (string, bool) {
		if filepath.Base(dir) == "trashdir" {
			return "nfs", false
		}
		return ctimeFS(dir)
	})()
	s := newWalkCacheSite(t)
	s.backup(true)
	cached, read := s.dirs("filedir", -1), s.dirs("trashdir", -1)
	if cached == 0 || read == 0 {
		t.Fatalf("the site has %d directories below filedir and %d below trashdir: the case shows nothing", cached, read)
	}
	// The counts are of the areas the cache serves: trashdir's directories
	// are listed without it, and the archive shows they were.
	archive, gotRead, gotCached := s.backup(true)
	if gotCached != int64(cached) || gotRead != 0 {
		t.Errorf("%d directories read, %d from the cache; want filedir's %d from the cache and trashdir's %d left out", gotRead, gotCached, cached, read)
	}
	s.same("trashdir on another file system", archive)
}

// On a file system not known to keep directories' ctime (NFS, FUSE),
// every directory is read and no cache is written.
func TestWalkCacheOtherFileSystems(t *testing.T) {
	defer setVar(&walkCacheMargin, -time.Hour)()
	defer setVar(&walkCacheFS, map[int64]string{})()
	s := newWalkCacheSite(t)
	for range 2 {
		if _, read, fromCache := s.backup(true); read != 0 || fromCache != 0 {
			t.Errorf("%d directories read, %d from the cache: the cache was used", read, fromCache)
		}
	}
	if ents, _ := os.ReadDir(s.cache); len(ents) != 0 {
		t.Errorf("the cache directory holds %v", ents)
	}
}

// BenchmarkWalkCacheDir sets what the cache holds: a directory of n
// names read with open and getdents (read), against its entry written to
// and read back from the cache (cached). Below some n the cache is
// cheaper; above it, listing the directory is (walkCacheMaxNames).
func BenchmarkWalkCacheDir(b *testing.B) {
	for _, n := range []int{1, 8, 32, 76, 256} {
		dir := b.TempDir()
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("%040x", i*7919)
			must(b, os.WriteFile(filepath.Join(dir, names[i]), nil, 0o600))
		}
		b.Run(fmt.Sprintf("names=%d/read", n), func(b *testing.B) {
			for range b.N {
				if _, err := sortedNames(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("names=%d/cached", n), func(b *testing.B) {
			c := &walkCache{log: newTestPlugin(b).log, path: filepath.Join(b.TempDir(), "walk")}
			var buf bytes.Buffer
			c.w = bufio.NewWriter(&buf)
			d := &dirCache{c: c, key: "filedir/ab", new: []cachedDir{{Rel: "cd", Ino: 1, Ctime: 2, Read: 3, Names: names}}, changed: true}
			for range b.N {
				buf.Reset()
				d.save()
				c.w.Flush()
				c.r = bufio.NewReader(&buf)
				if s := c.readSection(); s == nil || len(s.Dirs) != 1 || len(s.Dirs[0].Names) != n {
					b.Fatal("the section did not read back")
				}
			}
		})
	}
}

// readWalkCache is the sections of a cache file's bytes, all of which
// must read back.
func readWalkCache(t *testing.T, b []byte) []*cacheSection {
	t.Helper()
	head, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok || string(head) != walkCacheMagic {
		t.Fatalf("the cache starts %q", head)
	}
	c := &walkCache{r: bufio.NewReader(bytes.NewReader(rest))}
	var out []*cacheSection
	for {
		sec := c.readSection()
		if sec == nil {
			break
		}
		out = append(out, sec)
	}
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatalf("the cache does not read back to its end (%d sections read)", len(out))
	}
	return out
}

// writeWalkCache is a cache file of secs, as save writes them.
func writeWalkCache(secs []*cacheSection) []byte {
	var buf bytes.Buffer
	c := &walkCache{w: bufio.NewWriter(&buf)}
	c.w.WriteString(walkCacheMagic + "\n")
	for _, sec := range secs {
		(&dirCache{c: c, key: sec.Key, new: sec.Dirs, changed: true}).save()
	}
	c.w.Flush()
	return buf.Bytes()
}

// A section reads back as written: names with spaces, newlines and bytes
// above ASCII, an empty directory, the subtree's top (""). One in which
// every directory was kept as the last backup recorded it is written as
// it was read, byte for byte; one changed or missing a directory is
// written anew, and reads back as it now is.
func TestWalkCacheSections(t *testing.T) {
	dirs := []cachedDir{
		{Rel: "", Dev: 2049, Ino: 7, Ctime: 1764843000123456789, Read: 1764843001, Names: []string{"cd", "ef"}},
		{Rel: "cd", Dev: 2049, Ino: 8, Ctime: 1, Read: 2, Names: []string{"a name with spaces", "new\nline", "caf\xc3\xa9"}},
		{Rel: "ef", Dev: 2049, Ino: 9, Ctime: 3, Read: 4, Names: []string{}},
	}
	b := writeWalkCache([]*cacheSection{{Key: "filedir/ab", Dirs: dirs}, {Key: "filedir/ac"}})
	secs := readWalkCache(t, b)
	if len(secs) != 2 || secs[0].Key != "filedir/ab" || secs[1].Key != "filedir/ac" || len(secs[1].Dirs) != 0 {
		t.Fatalf("read back %d sections: %+v", len(secs), secs)
	}
	for i, d := range secs[0].Dirs {
		if fmt.Sprint(d) != fmt.Sprint(dirs[i]) {
			t.Errorf("directory %d read back as %+v, want %+v", i, d, dirs[i])
		}
	}
	if d, ok := secs[0].find("cd"); !ok || d.Ino != 8 {
		t.Errorf("find(cd) = %+v, %v", d, ok)
	}
	if _, ok := secs[0].find("c"); ok {
		t.Error("find(c) found a directory the section does not hold")
	}

	// save, from the section read: all kept, one changed, one left out.
	save := func(old *cacheSection, change func(d *dirCache)) []byte {
		var buf bytes.Buffer
		c := &walkCache{w: bufio.NewWriter(&buf)}
		d := &dirCache{c: c, key: old.Key, old: old}
		for _, e := range old.Dirs {
			d.record(e, false)
		}
		change(d)
		d.save()
		c.w.Flush()
		return buf.Bytes()
	}
	body := b[len(walkCacheMagic)+1:]
	if got := save(secs[0], func(*dirCache) {}); !bytes.HasPrefix(body, got) || len(got) == 0 {
		t.Error("an unchanged section was not written as it was read")
	}
	got := save(secs[0], func(d *dirCache) {
		d.new[1].Names = []string{"x"}
		d.changed = true
	})
	if re := readWalkCache(t, append([]byte(walkCacheMagic+"\n"), got...)); len(re) != 1 || fmt.Sprint(re[0].Dirs[1].Names) != "[x]" {
		t.Errorf("a changed section read back as %+v", re)
	}
	got = save(secs[0], func(d *dirCache) {
		d.new, d.kept = d.new[:2], 2
	})
	if re := readWalkCache(t, append([]byte(walkCacheMagic+"\n"), got...)); len(re) != 1 || len(re[0].Dirs) != 2 {
		t.Errorf("a section that lost a directory read back as %+v", re)
	}

	// Damage anywhere in a section (its sum, length, body or end) stops
	// the reading there.
	for _, at := range []int{0, 65, 70, len(body) / 3, len(secs[0].raw) - 1} {
		bad := bytes.Clone(b)
		bad[len(walkCacheMagic)+1+at] ^= 0x01
		c := &walkCache{r: bufio.NewReader(bytes.NewReader(bad[len(walkCacheMagic)+1:]))}
		if sec := c.readSection(); sec != nil {
			t.Errorf("a section damaged at byte %d read back: %+v", at, sec)
		}
	}
	// Out of order, or a count past the body: not what save writes.
	for _, body := range []string{
		"k\x00b\x001\x002\x003\x004\x000\x00a\x001\x002\x003\x004\x000\x00",
		"k\x00a\x001\x002\x003\x004\x009\x00n\x00",
		"k\x00a\x001\x00x\x003\x004\x000\x00",
		"k\x00a\x001\x00",
	} {
		if sec, ok := decodeSection(body, 0, len(body)); ok {
			t.Errorf("decodeSection(%q) = %+v", body, sec)
		}
	}
}

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// The walk cache: what the last pooled backup found in the directories of
// filedir and trashdir, so that a directory unchanged since is not read
// again. On an unchanged night the walk of a pooled area is mostly
// directories of one or two files (filedir/ab/cd/), and listing one costs
// about 16 µs where an lstat costs 4 (BenchmarkWalkCacheDir, on the bench
// machine). Every file is still lstat'ed: its size, mode,
// owner and times come from the file system each night, never from the
// cache. Only a directory's list of names does.
//
// A directory's names are taken from the cache when its inode, device and
// change time (ctime) are those the cache recorded. Adding, removing or
// renaming an entry sets a directory's ctime, and no program can set it
// back (unlike mtime, which rsync or a restore does) on the local file
// systems of walkCacheFS, the only ones the cache is used on. Three guards
// stand where that falls short:
//   - a directory whose ctime is within walkCacheMargin of the walk's
//     start is not recorded: an entry added in the same clock tick as the
//     read would leave the ctime unchanged (git's "racy" index entries);
//   - a directory read more than walkCacheMaxAge ago is read again, so a
//     cache wrong for any reason is wrong for a week at most;
//   - each section of the cache (one `ab` directory's) carries its
//     SHA-256: from a section that does not check out on, the cache is
//     not used.
// The cache is written beside the last one and replaces it only when the
// backup succeeds.

// Guards of the walk cache, and the largest directory it records. Listing
// a directory costs about 16 µs and 0.44 µs a name on the bench machine,
// its entry in the cache about 0.23 µs a name written and read back
// (BenchmarkWalkCacheDir), so the cache pays at any size; the bound keeps
// it small where it pays least: a site of millions of files, whose
// filedir/ab/cd directories hold dozens each, would otherwise keep a
// cache of hundreds of MB. (Variables for the tests.)
var (
	walkCacheMargin   = 5 * time.Second
	walkCacheMaxAge   = 7 * 24 * time.Hour
	walkCacheMaxNames = 64
)

// walkCacheMagic heads the cache file. Version 2 (NUL-separated fields,
// an unchanged section copied as read) replaced 1 (JSON), whose decoding,
// encoding and maps were about a tenth of an unchanged medium night's
// perf samples; with 2, that night's archive stage took 369-476 ms
// (median 385) against 391-510 (median 409), eight runs of each
// alternating. A cache of another version is not read: the next backup
// lists every directory once.
const walkCacheMagic = "mbk walk cache 2"

// walkCacheFS are the file systems (statfs's f_type) the cache is used on:
// local ones that set a directory's ctime whenever its entries change.
// Elsewhere (NFS, whose times are the server's clock; FUSE mounts such as
// sshfs, s3fs or rclone, whose directory times may be made up; FAT, whose
// ctime is a creation time) every directory is read.
var walkCacheFS = map[int64]string{
	unix.EXT4_SUPER_MAGIC:  "ext4", // ext2 and ext3 share it
	unix.XFS_SUPER_MAGIC:   "xfs",
	unix.BTRFS_SUPER_MAGIC: "btrfs",
	unix.TMPFS_MAGIC:       "tmpfs",
	0x2fc12fc1:             "zfs",
}

// walkCacheFSOf is ctimeFS (a variable for the tests).
var walkCacheFSOf = ctimeFS

// ctimeFS says whether the file system under dir is one of walkCacheFS,
// and names it.
func ctimeFS(dir string) (string, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err.Error(), false
	}
	if name, ok := walkCacheFS[int64(st.Type)]; ok {
		return name, true
	}
	return fmt.Sprintf("f_type %#x", st.Type), false
}

// walkCache is one backup's use of its cache: one file, read and written
// in the walk's order, a section per ab directory of a pooled area (only one
// such directory's entries are in memory at a time, whatever the site's
// size).
type walkCache struct {
	log    hclog.Logger
	path   string // <cache>/walk: the last backup's
	root   string // the tree walked; keys are its relative paths
	now    int64  // the walk's start, Unix seconds
	cutoff int64  // directories changed after it (ns) are not recorded
	// The last backup's cache, nil once it ends or stops making sense;
	// ahead is a section read but not yet asked for.
	in    *os.File
	r     *bufio.Reader
	ahead *cacheSection
	// This backup's, renamed over path when the backup succeeds; nil when
	// it cannot be written.
	out        *os.File
	w          *bufio.Writer
	hits       atomic.Int64 // directories whose names came from the cache
	misses     atomic.Int64 // directories read
	failed     bool
	failedOnce sync.Once
	// partial: the cache is a helper's, written as it arrives
	// (receiveWalkCache), and not yet whole.
	partial bool
}

// openWalkCache prepares dir for one backup of root.
func openWalkCache(dir, root string, log hclog.Logger) *walkCache {
	c := &walkCache{log: log, path: filepath.Join(dir, "walk"), root: root}
	start := time.Now()
	c.now = start.Unix()
	c.cutoff = start.Add(-walkCacheMargin).UnixNano()
	if in, err := os.Open(c.path); err == nil {
		c.in, c.r = in, bufio.NewReaderSize(in, 64<<10)
		if head, err := c.r.ReadString('\n'); err != nil || head != walkCacheMagic+"\n" {
			c.closeIn()
		}
	}
	// A killed backup's half-written cache is replaced here.
	out, err := os.OpenFile(c.path+".new", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		c.fail(err)
		return c
	}
	c.out, c.w = out, bufio.NewWriterSize(out, 64<<10)
	if _, err := c.w.WriteString(walkCacheMagic + "\n"); err != nil {
		c.fail(err)
	}
	return c
}

// receiveWalkCache prepares dir for the cache a helper container's walk
// sends back (helperwalk.go): written beside the last one as it arrives,
// it replaces it when the backup succeeds, if it arrived whole. nil when
// it cannot be written: the helper then gets no cache.
func receiveWalkCache(dir string, log hclog.Logger) *walkCache {
	c := &walkCache{log: log, path: filepath.Join(dir, "walk"), partial: true}
	out, err := os.OpenFile(c.path+".new", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		log.Warn("no walk cache: every directory is read", "error", err)
		return nil
	}
	c.out, c.w = out, bufio.NewWriterSize(out, 64<<10)
	return c
}

// receive writes the next bytes of a helper's cache; end says it is whole.
func (c *walkCache) receive(b []byte, end bool) {
	if c.w == nil || c.failed {
		return
	}
	if _, err := c.w.Write(b); err != nil {
		c.fail(err)
	}
	if end {
		c.partial = false
	}
}

func (c *walkCache) closeIn() {
	if c.in != nil {
		c.in.Close()
		c.in, c.r, c.ahead = nil, nil, nil
	}
}

// fail gives up writing this backup's cache: the last one stays.
func (c *walkCache) fail(err error) {
	c.failed = true
	c.failedOnce.Do(func() {
		c.log.Warn("the walk cache is not updated (the next backup reads more directories)", "error", err)
	})
}

// commit makes this backup's cache the one the next backup reads.
func (c *walkCache) commit() {
	if c == nil || c.out == nil {
		return
	}
	err := c.w.Flush()
	if cerr := c.out.Close(); err == nil {
		err = cerr
	}
	c.out, c.w = nil, nil
	if err == nil && !c.failed && !c.partial {
		err = os.Rename(c.path+".new", c.path)
	}
	if err != nil {
		c.fail(err)
	}
	if c.failed || c.partial {
		os.Remove(c.path + ".new")
	}
	c.close()
}

// close lets go of both files; this backup's cache, if not committed, is
// not kept.
func (c *walkCache) close() {
	if c == nil {
		return
	}
	c.closeIn()
	if c.out != nil {
		c.out.Close()
		c.out, c.w = nil, nil
		os.Remove(c.path + ".new")
	}
}

// cachedDir is one directory as the walk found it.
type cachedDir struct {
	Rel   string // in its subtree, "" for the top
	Dev   uint64
	Ino   uint64
	Ctime int64    // ns
	Read  int64    // when its names were read, Unix seconds
	Names []string // sorted
}

// cacheSection is one section of the cache: the directories of one
// subtree, sorted by Rel (byte order), and the section as it was read
// (header and body), written again as is when nothing in it changed.
type cacheSection struct {
	Key  string
	Dirs []cachedDir
	raw  string
}

// find is the directory rel of the section.
func (s *cacheSection) find(rel string) (cachedDir, bool) {
	if s == nil {
		return cachedDir{}, false
	}
	i, ok := slices.BinarySearchFunc(s.Dirs, rel, func(d cachedDir, rel string) int { return strings.Compare(d.Rel, rel) })
	if !ok {
		return cachedDir{}, false
	}
	return s.Dirs[i], true
}

// dirCache is the cache of one subtree (a pooled area's filedir/ab): the
// last backup's section, read-only, and this one's, filled by the scan's
// workers. kept counts the last backup's entries recorded again as they
// were, changed says a directory read was recorded: a section with every
// entry kept and none changed is written as it was read.
type dirCache struct {
	c       *walkCache
	key     string
	old     *cacheSection
	mu      sync.Mutex
	new     []cachedDir
	kept    int
	changed bool
}

// subtree is the cache of the subtree at full; nil (no cache) when c is.
// Subtrees are asked for in the walk's order, the order they were written
// in.
func (c *walkCache) subtree(full string) *dirCache {
	if c == nil {
		return nil
	}
	rel, err := filepath.Rel(c.root, full)
	if err != nil {
		rel = full
	}
	d := &dirCache{c: c, key: filepath.ToSlash(rel)}
	for c.r != nil {
		if c.ahead == nil {
			c.ahead = c.readSection()
			if c.ahead == nil {
				c.closeIn()
				break
			}
		}
		switch cmp := compareKeys(c.ahead.Key, d.key); {
		case cmp < 0: // a subtree gone since
			c.ahead = nil
			continue
		case cmp == 0:
			d.old = c.ahead
			d.new = make([]cachedDir, 0, len(d.old.Dirs))
			c.ahead = nil
		}
		break
	}
	return d
}

// readSection is the next section of the last backup's cache; nil at its
// end or at a section that is not what save wrote (cut short by a power
// cut, say). A section is a header line, "<sha256 of body> <length of
// body>", then the body and a newline. The body is NUL-terminated fields:
// the key, then for each directory its rel, device, inode, ctime, time
// read, number of names and the names (none holds a NUL).
func (c *walkCache) readSection() *cacheSection {
	head, err := c.r.ReadSlice('\n')
	if err != nil || len(head) < sha256.Size*2+3 || head[sha256.Size*2] != ' ' {
		return nil
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], head[:sha256.Size*2]); err != nil {
		return nil
	}
	n, err := strconv.Atoi(string(head[sha256.Size*2+1 : len(head)-1]))
	if err != nil || n < 0 || n > walkCacheMaxSection {
		return nil
	}
	raw := make([]byte, len(head)+n+1)
	copy(raw, head)
	body := raw[len(head) : len(head)+n]
	if _, err := io.ReadFull(c.r, raw[len(head):]); err != nil || raw[len(raw)-1] != '\n' || sha256.Sum256(body) != want {
		return nil
	}
	// raw is not written again: the section's strings share its bytes.
	s, ok := decodeSection(unsafe.String(&raw[0], len(raw)), len(head), len(head)+n)
	if !ok {
		return nil
	}
	return s
}

// walkCacheMaxSection bounds a section's body: walkCacheMaxNames names of
// at most 255 bytes in each of a filedir/ab directory's 257 directories
// is under 5 MiB.
const walkCacheMaxSection = 8 << 20

// decodeSection parses the body raw[from:to] (raw is the whole section,
// kept); false for a body that is not what encodeSection writes. Names and
// rels are substrings of raw: one allocation for the lot.
func decodeSection(raw string, from, to int) (*cacheSection, bool) {
	body := raw[from:to]
	next := func() (string, bool) {
		i := strings.IndexByte(body, 0)
		if i < 0 {
			return "", false
		}
		f := body[:i]
		body = body[i+1:]
		return f, true
	}
	num := func() (uint64, bool) {
		f, ok := next()
		if !ok {
			return 0, false
		}
		v, err := strconv.ParseUint(f, 10, 64)
		return v, err == nil
	}
	key, ok := next()
	if !ok {
		return nil, false
	}
	s := &cacheSection{Key: key, raw: raw}
	// Directories' names are slices of one growing array, not one each
	// (a slice taken before it grew keeps the array it was taken from).
	var names []string
	for len(body) > 0 {
		var d cachedDir
		var ctime, read, n uint64
		var ok1, ok2, ok3, ok4, ok5, ok6 bool
		d.Rel, ok1 = next()
		d.Dev, ok2 = num()
		d.Ino, ok3 = num()
		ctime, ok4 = num()
		read, ok5 = num()
		n, ok6 = num()
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || n > uint64(len(body)) ||
			(len(s.Dirs) > 0 && s.Dirs[len(s.Dirs)-1].Rel >= d.Rel) {
			return nil, false
		}
		d.Ctime, d.Read = int64(ctime), int64(read)
		start := len(names)
		for range n {
			name, ok := next()
			if !ok {
				return nil, false
			}
			names = append(names, name)
		}
		d.Names = names[start:len(names):len(names)]
		s.Dirs = append(s.Dirs, d)
	}
	return s, true
}

// encodeSection is the body decodeSection reads; dirs sorted by Rel.
func encodeSection(b []byte, key string, dirs []cachedDir) []byte {
	b = append(append(b, key...), 0)
	for _, d := range dirs {
		b = append(append(b, d.Rel...), 0)
		b = append(strconv.AppendUint(b, d.Dev, 10), 0)
		b = append(strconv.AppendUint(b, d.Ino, 10), 0)
		b = append(strconv.AppendUint(b, uint64(d.Ctime), 10), 0)
		b = append(strconv.AppendUint(b, uint64(d.Read), 10), 0)
		b = append(strconv.AppendUint(b, uint64(len(d.Names)), 10), 0)
		for _, name := range d.Names {
			b = append(append(b, name...), 0)
		}
	}
	return b
}

// compareKeys orders two subtrees' keys (area/name) as the walk meets
// them: by area, then by name.
func compareKeys(a, b string) int {
	aa, an, _ := strings.Cut(a, "/")
	ba, bn, _ := strings.Cut(b, "/")
	if c := strings.Compare(aa, ba); c != 0 {
		return c
	}
	return strings.Compare(an, bn)
}

// save writes this backup's section of the subtree; the walk calls it in
// its order. A section in which every directory is as the last backup
// recorded it is written as it was read.
func (d *dirCache) save() {
	if d == nil || d.c.w == nil || d.c.failed {
		return
	}
	c := d.c
	var err error
	if d.old != nil && !d.changed && d.kept == len(d.old.Dirs) {
		_, err = c.w.WriteString(d.old.raw)
	} else {
		slices.SortFunc(d.new, func(a, b cachedDir) int { return strings.Compare(a.Rel, b.Rel) })
		body := encodeSection(nil, d.key, d.new)
		sum := sha256.Sum256(body)
		var head [sha256.Size*2 + 1]byte
		hex.Encode(head[:], sum[:])
		head[len(head)-1] = ' '
		c.w.Write(head[:])
		c.w.WriteString(strconv.Itoa(len(body)))
		c.w.WriteByte('\n')
		c.w.Write(body)
		err = c.w.WriteByte('\n')
	}
	if err != nil {
		c.fail(err)
	}
}

// names is the sorted names in directory full (rel in the subtree), whose
// lstat is fi: from the cache when the directory is unchanged since it was
// recorded, else read.
func (d *dirCache) names(full, rel string, fi fs.FileInfo) ([]string, error) {
	sys, _ := fi.Sys().(*syscall.Stat_t)
	if d == nil || sys == nil {
		return sortedNames(full)
	}
	key := cachedDir{Rel: rel, Dev: uint64(sys.Dev), Ino: sys.Ino, Ctime: sys.Ctim.Nano()}
	if e, ok := d.old.find(rel); ok && e.Dev == key.Dev && e.Ino == key.Ino && e.Ctime == key.Ctime && d.c.now-e.Read < int64(walkCacheMaxAge/time.Second) {
		d.c.hits.Add(1)
		if len(e.Names) <= walkCacheMaxNames {
			d.record(e, false)
		}
		return e.Names, nil
	}
	d.c.misses.Add(1)
	names, err := sortedNames(full)
	if err == nil && key.Ctime < d.c.cutoff && len(names) <= walkCacheMaxNames {
		key.Read, key.Names = d.c.now, names
		d.record(key, true)
	}
	return names, err
}

// record keeps e for this backup's section: read is true for a directory
// read now, false for the last backup's entry kept as it was.
func (d *dirCache) record(e cachedDir, read bool) {
	d.mu.Lock()
	d.new = append(d.new, e)
	if read {
		d.changed = true
	} else {
		d.kept++
	}
	d.mu.Unlock()
}

// sortedNames lists a directory, sorted as filepath.WalkDir would.
func sortedNames(dir string) ([]string, error) {
	names, err := readNames(dir)
	slices.Sort(names)
	return names, err
}

// joinRel is rel/name, or name at the subtree's top.
func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// summary is how many directories the walk listed and took from the
// cache, for the details.
func (c *walkCache) summary() (read, cached int64) {
	if c == nil {
		return 0, 0
	}
	return c.misses.Load(), c.hits.Load()
}

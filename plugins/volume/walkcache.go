package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
//   - each line of the cache (one `ab` directory's) carries its SHA-256:
//     from a line that does not check out on, the cache is not used.
// The cache is written beside the last one and replaces it only when the
// backup succeeds.

// Guards of the walk cache, and the largest directory it records: listing
// a directory costs about 16 µs and 0.34 µs a name on the bench machine,
// its entry in the cache about 0.47 µs a name, so a directory of more
// than about a hundred names is cheaper to list (BenchmarkWalkCacheDir).
// A site of millions of files, whose filedir/ab/cd directories hold
// dozens each, keeps a small cache that way. (Variables for the tests.)
var (
	walkCacheMargin   = 5 * time.Second
	walkCacheMaxAge   = 7 * 24 * time.Hour
	walkCacheMaxNames = 64
)

const walkCacheMagic = "mbk walk cache 1"

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
// in the walk's order, a line per ab directory of a pooled area (only one
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
	Dev   uint64   `json:"d"`
	Ino   uint64   `json:"i"`
	Ctime int64    `json:"c"` // ns
	Read  int64    `json:"r"` // when its names were read, Unix seconds
	Names []string `json:"n"` // sorted
}

// cacheSection is one line of the cache: the directories of one subtree,
// by path relative to it ("" for its top).
type cacheSection struct {
	Key  string               `json:"k"`
	Dirs map[string]cachedDir `json:"d"`
}

// dirCache is the cache of one subtree (a pooled area's filedir/ab): the
// last backup's section, read-only, and this one's, filled by the scan's
// workers.
type dirCache struct {
	c   *walkCache
	key string
	old map[string]cachedDir
	mu  sync.Mutex
	new map[string]cachedDir
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
	d := &dirCache{c: c, key: filepath.ToSlash(rel), new: map[string]cachedDir{}}
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
			d.old = c.ahead.Dirs
			c.ahead = nil
		}
		break
	}
	return d
}

// readSection is the next line of the last backup's cache; nil at its end
// or at a line that is not what save wrote (cut short by a power cut, say).
func (c *walkCache) readSection() *cacheSection {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil
	}
	sum, body, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte(" "))
	if !ok {
		return nil
	}
	got := sha256.Sum256(body)
	if string(sum) != hex.EncodeToString(got[:]) {
		return nil
	}
	var s cacheSection
	if json.Unmarshal(body, &s) != nil {
		return nil
	}
	return &s
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
// its order.
func (d *dirCache) save() {
	if d == nil || d.c.w == nil || d.c.failed {
		return
	}
	c := d.c
	body, err := json.Marshal(cacheSection{Key: d.key, Dirs: d.new})
	if err == nil {
		sum := sha256.Sum256(body)
		c.w.WriteString(hex.EncodeToString(sum[:]))
		c.w.WriteByte(' ')
		c.w.Write(body)
		_, err = c.w.WriteString("\n")
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
	key := cachedDir{Dev: uint64(sys.Dev), Ino: sys.Ino, Ctime: sys.Ctim.Nano()}
	if e, ok := d.old[rel]; ok && e.Dev == key.Dev && e.Ino == key.Ino && e.Ctime == key.Ctime && d.c.now-e.Read < int64(walkCacheMaxAge/time.Second) {
		d.c.hits.Add(1)
		if len(e.Names) <= walkCacheMaxNames {
			d.record(rel, e)
		}
		return e.Names, nil
	}
	d.c.misses.Add(1)
	names, err := sortedNames(full)
	if err == nil && key.Ctime < d.c.cutoff && len(names) <= walkCacheMaxNames {
		key.Read, key.Names = d.c.now, names
		d.record(rel, key)
	}
	return names, err
}

func (d *dirCache) record(rel string, e cachedDir) {
	d.mu.Lock()
	d.new[rel] = e
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

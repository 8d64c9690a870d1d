package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

type devIno struct{ dev, ino uint64 }

// relTo is full relative to root, slash-separated. The walk builds each
// path as root (clean), a separator and names read from directories, so
// that the name below root is full's tail: cut, not cleaned and compared
// again for each of a million names. Any other path (one with "//", "/."
// or a final "/" in its tail) is worked out by filepath.Rel.
func relTo(root, full string) (string, error) {
	if full == root {
		return ".", nil
	}
	if rest, ok := strings.CutPrefix(full, root); ok && len(rest) > 1 && rest[0] == filepath.Separator &&
		!strings.HasSuffix(root, string(filepath.Separator)) && !strings.Contains(rest, "/.") && !strings.Contains(rest, "//") &&
		!strings.HasSuffix(rest, "/") {
		return filepath.ToSlash(rest[1:]), nil
	}
	rel, err := filepath.Rel(root, full)
	return filepath.ToSlash(rel), err
}

// backupHost walks a host directory and writes it to tw. Changes made while
// it reads (files vanishing, growing or shrinking) are warnings: the archive
// stays a valid tar whatever happens.
func (p *plugin) backupHost(ctx context.Context, dir string, ex *excluder, st *stats, tw *archiveWriter) error {
	root, err := hostRoot(dir)
	if err != nil {
		return err
	}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		p.log.Warn(msg)
		st.warn(msg)
	}
	links := map[devIno]string{}
	if tw.pool != nil {
		tw.pool.whole = func(full, rel string) error { return p.hostFile(ctx, full, rel, tw, st, links, warn) }
		// An unchanged pooled walk streams its listing through a small
		// live heap.
		defer sdk.RaiseGCFloor(sdk.WalkGCFloor)()
	}
	// areaCache is the walk cache for a pooled area, opened for the first
	// one on a file system it can be used on; nil for none. Each area is
	// asked about, not the dataroot: filedir may be a mount of its own.
	areaCache := func(area string) *walkCache {
		if tw.pool == nil || tw.pool.cacheDir == "" {
			return nil
		}
		if fs, ok := walkCacheFSOf(area); !ok {
			p.log.Info("no walk cache: every directory is read", "directory", area, "file_system", fs,
				"why", "the cache relies on a directory's ctime changing with its entries, which only local Linux file systems are known to keep")
			return nil
		}
		if tw.pool.cache == nil {
			tw.pool.cache = openWalkCache(tw.pool.cacheDir, root, p.log)
		}
		return tw.pool.cache
	}
	// visit archives one entry the walk found. fi is its lstat when the
	// walk took it already (the parallel scan of a pooled area), nil
	// otherwise.
	var visit func(full string, d fs.DirEntry, walkErr error, fi fs.FileInfo) error
	visit = func(full string, d fs.DirEntry, walkErr error, fi fs.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		rel, err := relTo(root, full)
		if err != nil {
			return err
		}
		if excl := ex.match(rel); excl != "" {
			// Walk on below an excluded directory only to report its size.
			if walkErr == nil {
				if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
					st.exclude(excl, fi.Size())
				} else if err == nil {
					st.exclude(excl, 0)
				}
			}
			return nil
		}
		if walkErr != nil {
			if errors.Is(walkErr, fs.ErrNotExist) && rel != "." {
				warn("skipped %q: it vanished while the directory was read", rel)
				return nil
			}
			return fmt.Errorf("read %q: %w", full, walkErr)
		}
		if d.Type().IsRegular() {
			if tw.pool != nil && poolable(rel) {
				return p.hostPooled(ctx, full, rel, fi, tw, st, links, warn)
			}
			// The directory listing says regular file: open and fstat it,
			// one path lookup instead of two (lstat, then open).
			return p.hostFile(ctx, full, rel, tw, st, links, warn)
		}
		if fi, err = lstatOnce(full, fi); err != nil {
			return vanished(err, rel, warn)
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %q: no unix metadata", full)
		}
		// The entry as header() would make it, built here: a walk of a
		// million directories allocates no header for them.
		out := tar.Header{
			Name:    tarName(rel),
			Mode:    int64(sys.Mode & 0o7777),
			Uid:     int(sys.Uid),
			Gid:     int(sys.Gid),
			ModTime: time.Unix(sys.Mtim.Sec, sys.Mtim.Nsec),
			Format:  tar.FormatPAX,
		}
		switch fi.Mode().Type() {
		case fs.ModeDir:
			out.Typeflag = tar.TypeDir
			if !strings.HasSuffix(out.Name, "/") {
				out.Name += "/"
			}
		case fs.ModeSymlink:
			out.Typeflag = tar.TypeSymlink
			if out.Linkname, err = os.Readlink(full); errors.Is(err, fs.ErrNotExist) {
				warn("skipped %q: it vanished while the directory was read", rel)
				return nil
			} else if err != nil {
				return fmt.Errorf("read symlink %q: %w", full, err)
			}
		case fs.ModeNamedPipe:
			out.Typeflag = tar.TypeFifo
		case 0:
			// It became a regular file after the directory was listed.
			return p.hostFile(ctx, full, rel, tw, st, links, warn)
		default:
			warn("skipped %q: %s is not archived", rel, fi.Mode().Type())
			return nil
		}
		if err := tw.writeHeader(&out); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
		st.add(rel, &out)
		if tw.pool != nil && fi.IsDir() && (rel == "filedir" || rel == "trashdir") {
			// Moodle's pooled areas: scanned side by side below here.
			if err := scanParallel(ctx, full, areaCache(full), func(full string, d fs.DirEntry, walkErr error, fi fs.FileInfo) error {
				return visit(full, d, walkErr, fi)
			}); err != nil {
				return err
			}
			return fs.SkipDir
		}
		return nil
	}
	return filepath.WalkDir(root, func(full string, d fs.DirEntry, walkErr error) error {
		return visit(full, d, walkErr, nil)
	})
}

// scanWorkers is how many subtrees of a pooled area are listed and
// lstat'ed at once; scanAhead how many listed subtrees may wait for the
// archive. An unchanged pooled backup is the walk: its cost is these
// system calls. The archive takes entries in bursts (a batch of
// poolBatch files written at once, after the core's answer), so the scan
// must be able to run well ahead: with 6 subtrees it stalled, and the
// medium site's unchanged stage took 294 ms against 253 ms with 64 (8
// alternating runs each; 256 subtrees, or 2 or 8 workers, did no better).
// A filedir/ab/cd subtree is a directory and a few files: 64 of them
// waiting are a few tens of KiB.
const (
	scanWorkers = 4
	scanBatch   = 8
)

// scanAhead: a variable for the tests, which run the scan with fewer
// places than a job's subtrees.
var scanAhead = 64

// scanned is one entry of a subtree, in walk order. ok says info holds
// its lstat; err is the entry's error (a directory that could not be
// listed has both). An entry that could not be lstat'ed keeps only its
// name in info.
type scanned struct {
	full string
	err  error
	ok   bool
	info entryInfo
}

// entry is what visit takes of e: its DirEntry (nil when not even its
// name is known) and its lstat (nil with an error).
func (e *scanned) entry() (fs.DirEntry, fs.FileInfo) {
	switch {
	case e.ok && e.err == nil:
		return &e.info, &e.info
	case e.ok:
		return &e.info, nil
	case e.info.name != "":
		return goneEntry(e.info.name), nil
	}
	return nil, nil
}

// entryInfo is an entry's lstat as both fs.FileInfo and fs.DirEntry. The
// scan keeps it by value in a subtree's list: an unchanged file costs no
// allocation for its metadata.
type entryInfo struct {
	name string
	st   syscall.Stat_t
}

func (e *entryInfo) Name() string               { return e.name }
func (e *entryInfo) Size() int64                { return e.st.Size }
func (e *entryInfo) ModTime() time.Time         { return time.Unix(e.st.Mtim.Sec, e.st.Mtim.Nsec) }
func (e *entryInfo) IsDir() bool                { return e.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (e *entryInfo) Sys() any                   { return &e.st }
func (e *entryInfo) Type() fs.FileMode          { return e.Mode().Type() }
func (e *entryInfo) Info() (fs.FileInfo, error) { return e, nil }

// Mode is st_mode as os.Lstat gives it.
func (e *entryInfo) Mode() fs.FileMode {
	m := fs.FileMode(e.st.Mode & 0o777)
	switch e.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if e.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if e.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if e.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// lstatInto lstat's full into e.
func lstatInto(full string, e *entryInfo) error {
	for {
		err := syscall.Lstat(full, &e.st)
		if err != syscall.EINTR {
			if err != nil {
				return &fs.PathError{Op: "lstat", Path: full, Err: err}
			}
			return nil
		}
	}
}

// scannedLists are subtrees' lists the walk is done with, for others to
// fill: an entry is mostly its lstat, a few hundred bytes, and a
// filedir/ab/cd subtree a directory and a file or two.
var scannedLists sync.Pool

// scanGroup is an entry of a pooled area (a filedir/ab directory), visited
// first; a directory's entries are then scanned side by side as subtrees.
type scanGroup struct {
	full string
	// e is the entry, fi its lstat and err the error taking it; e is nil
	// for the area's own listing error (err).
	e   fs.DirEntry
	fi  fs.FileInfo
	err error
	// dc, names and listErr are the directory's listing, for a directory
	// listed; first is the number of its first name's subtree.
	listed  bool
	dc      *dirCache
	names   []string
	listErr error
	first   int
}

// scanParallel walks each entry below dir (not dir itself) and hands it to
// visit in the order filepath.WalkDir would. Each of dir's entries is a
// group (Moodle's filedir/ab), whose directory's entries' subtrees (ab/cd)
// are jobs. One goroutine lists the groups in order (from the walk cache, wc, nil for
// none, when unchanged), scanWorkers list and lstat the jobs, and visit
// takes them in order, up to scanAhead subtrees behind: one pipeline over
// the whole area, so that the workers do not wait for visit at the end of
// each filedir/ab directory. A job is one ab/cd directory, a few files
// even on a site of millions, so what waits in memory stays small; the
// walk cache keeps one section per group. visit's fs.SkipDir for a
// directory leaves out what lies below it.
func scanParallel(ctx context.Context, dir string, wc *walkCache, visit func(string, fs.DirEntry, error, fs.FileInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	// Nothing of the walk runs on once it returns: the walk cache is
	// committed or closed after.
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	groups := make(chan *scanGroup, scanAhead)
	// sem holds a place for each subtree between the producer and visit;
	// subtree number n's list waits in slots[n%scanAhead], free again by
	// the time the place is (visit took n-scanAhead before n could start).
	sem := make(chan struct{}, scanAhead)
	slots := make([]chan []scanned, scanAhead)
	for i := range slots {
		slots[i] = make(chan []scanned, 1)
	}
	// A job is up to scanBatch consecutive subtrees of one group: fewer
	// hand-overs between goroutines than one a subtree.
	type job struct {
		g        *scanGroup
		from, to int
	}
	jobs := make(chan job)
	for range scanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				for i := j.from; i < j.to; i++ {
					// Names read from a directory: joined, not cleaned.
					slots[(j.g.first+i)%scanAhead] <- scanTree(ctx, j.g.full+string(filepath.Separator)+j.g.names[i], j.g.names[i], j.g.dc)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		defer close(groups)
		next := 0 // the number of the next subtree
		// send hands g to visit and its subtrees to the workers; false
		// once the walk stopped.
		send := func(g *scanGroup) bool {
			if g.listed {
				g.dc = wc.subtree(g.full)
				g.names, g.listErr = g.dc.names(g.full, "", g.fi)
				if g.listErr != nil {
					g.names = nil
				}
			}
			g.first = next
			next += len(g.names)
			select {
			case groups <- g:
			case <-ctx.Done():
				return false
			}
			var j job // subtrees with a place, not handed to a worker yet
			hand := func() bool {
				if j.to > j.from {
					select {
					case jobs <- j:
					case <-ctx.Done():
						return false
					}
				}
				j = job{g: g, from: j.to, to: j.to}
				return true
			}
			for i := range g.names {
				select {
				case sem <- struct{}{}:
				default:
					// visit may be waiting for the subtrees held here.
					if !hand() {
						return false
					}
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return false
					}
				}
				if j.g == nil {
					j = job{g: g, from: i}
				}
				j.to = i + 1
				if j.to-j.from == scanBatch && !hand() {
					return false
				}
			}
			return hand()
		}
		top, err := os.ReadDir(dir)
		if err != nil {
			send(&scanGroup{full: dir, err: err})
			return
		}
		for _, e := range top {
			g := &scanGroup{full: dir + string(filepath.Separator) + e.Name(), e: e}
			g.fi, g.err = e.Info()
			if errors.Is(g.err, fs.ErrNotExist) {
				g.fi, g.err = nil, nil // visit finds it gone and says so
			}
			g.listed = e.IsDir() && g.err == nil && g.fi != nil
			if !send(g) {
				return
			}
		}
	}()
	// take is subtree i of g, once scanned.
	take := func(g *scanGroup, i int) ([]scanned, error) {
		select {
		case list := <-slots[(g.first+i)%scanAhead]:
			<-sem
			return list, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	for g := range groups {
		if g.e == nil && g.err != nil {
			// The area could not be listed.
			return visit(g.full, nil, g.err, nil)
		}
		err := visit(g.full, g.e, g.err, g.fi)
		if err == fs.SkipDir && g.e.IsDir() {
			// Scanned already: what lies below is left out.
			for i := range g.names {
				if _, err := take(g, i); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		if !g.listed {
			continue
		}
		if g.listErr != nil {
			if err := visit(g.full, nil, g.listErr, nil); err != nil {
				return err
			}
			continue
		}
		for i := range g.names {
			list, err := take(g, i)
			if err != nil {
				return err
			}
			skip := ""
			for k := range list {
				e := &list[k]
				if skip != "" && strings.HasPrefix(e.full, skip) {
					continue
				}
				d, fi := e.entry()
				err := visit(e.full, d, e.err, fi)
				if err == fs.SkipDir && d != nil && d.IsDir() {
					skip = e.full + string(filepath.Separator)
					continue
				}
				if err != nil {
					return err
				}
			}
			// visit keeps nothing of an entry once it returns: the list
			// serves a later subtree.
			clear(list)
			scannedLists.Put(&list)
		}
		g.dc.save()
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// scanTree lists a subtree (rel in dc's) as filepath.WalkDir walks it,
// lstat'ing each entry: a regular file's metadata is all a pooled backup
// of an unchanged file needs. A directory's names come from dc when it is
// unchanged since the last backup.
func scanTree(ctx context.Context, root, rel string, dc *dirCache) []scanned {
	var out []scanned
	if l, ok := scannedLists.Get().(*[]scanned); ok {
		out = (*l)[:0]
	}
	out = append(out, scanned{full: root, info: entryInfo{name: filepath.Base(root)}})
	if err := lstatInto(root, &out[0].info); err != nil {
		return []scanned{{full: root, err: err}}
	}
	out[0].ok = true
	// walk lists the directory out[i] (rel in dc's) and lstat's each
	// entry into out, a subdirectory's entries after it.
	var walk func(i int, rel string)
	walk = func(i int, rel string) {
		full := out[i].full
		if !out[i].info.IsDir() || ctx.Err() != nil {
			return
		}
		names, err := dc.names(full, rel, &out[i].info)
		if err != nil {
			// As WalkDir: the directory again, with the error.
			out = append(out, scanned{full: full, err: err, ok: true, info: out[i].info})
			return
		}
		for _, name := range names {
			out = append(out, scanned{full: full + string(filepath.Separator) + name, info: entryInfo{name: name}})
			e := &out[len(out)-1]
			if e.err = lstatInto(e.full, &e.info); e.err != nil {
				// visit says a file gone since the directory was listed
				// vanished, and fails on any other error.
				continue
			}
			e.ok = true
			if e.info.IsDir() {
				walk(len(out)-1, joinRel(rel, name))
			}
		}
	}
	walk(0, rel)
	return out
}

// goneEntry stands for an entry that could not be lstat'ed: a file, as
// far as anyone knows.
type goneEntry string

func (e goneEntry) Name() string             { return string(e) }
func (goneEntry) IsDir() bool                { return false }
func (goneEntry) Type() fs.FileMode          { return 0 }
func (goneEntry) Info() (fs.FileInfo, error) { return nil, fs.ErrNotExist }

// hostPooled queues a file for the pool from lstat alone: a blob the pool
// has is not opened. A file with other names (hard links) is pooled under
// the first the walk meets, unless that one was archived whole (it lies
// outside filedir and trashdir); each later name in the tree is a hard
// link to it. Names outside the tree (a snapshot made with cp -al or
// rsnapshot on the same file system) are not seen: the file is pooled as
// any other.
func (p *plugin) hostPooled(ctx context.Context, full, rel string, fi fs.FileInfo, tw *archiveWriter, st *stats, links map[devIno]string, warn func(string, ...any)) error {
	fi, err := lstatOnce(full, fi)
	if err != nil {
		return vanished(err, rel, warn)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() {
		return p.hostFile(ctx, full, rel, tw, st, links, warn)
	}
	m := metaOf(sys, fi.Size())
	if sys.Nlink > 1 {
		key := devIno{uint64(sys.Dev), sys.Ino}
		if first := tw.pool.linkTarget(key); first != "" {
			return tw.pool.addLink(ctx, full, rel, first, m, tw, st, warn)
		}
		if _, ok := links[key]; ok {
			return p.hostFile(ctx, full, rel, tw, st, links, warn)
		}
		tw.pool.remember(key, rel, p.log)
	}
	return tw.pool.add(ctx, full, rel, m, tw, st, warn)
}

// lstatOnce is fi, or full's lstat when the walk had none.
func lstatOnce(full string, fi fs.FileInfo) (fs.FileInfo, error) {
	if fi != nil {
		return fi, nil
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, fmt.Errorf("stat %q: %w", full, err)
	}
	return fi, nil
}

// vanished is nil, with a warning, for a file that went away while the
// directory was read (nothing to archive), else err.
func vanished(err error, rel string, warn func(string, ...any)) error {
	if errors.Is(err, fs.ErrNotExist) {
		warn("skipped %q: it vanished while the directory was read", rel)
		return nil
	}
	return err
}

// hostFile archives one regular file, or a hard link to one archived
// before. Its header comes from fstat on the open file, so name, size and
// metadata describe what is read.
func (p *plugin) hostFile(ctx context.Context, full, rel string, tw *archiveWriter, st *stats, links map[devIno]string, warn func(string, ...any)) error {
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		warn("skipped %q: it vanished or was replaced while the directory was read", rel)
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %q: %w", full, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %q: %w", full, err)
	}
	if !fi.Mode().IsRegular() {
		warn("skipped %q: it was replaced while the directory was read", rel)
		return nil
	}
	sys := fi.Sys().(*syscall.Stat_t)
	h := &tar.Header{
		Typeflag: tar.TypeReg,
		Mode:     int64(sys.Mode & 0o7777),
		Uid:      int(sys.Uid),
		Gid:      int(sys.Gid),
		ModTime:  time.Unix(sys.Mtim.Sec, sys.Mtim.Nsec),
		Size:     fi.Size(),
	}
	key := devIno{uint64(sys.Dev), sys.Ino}
	if sys.Nlink > 1 && tw.pool != nil {
		// Another name of a pooled file: a link entry behind it.
		if first := tw.pool.linkTarget(key); first != "" {
			return tw.pool.addLink(ctx, full, rel, first, metaOf(sys, fi.Size()), tw, st, warn)
		}
	}
	if first, ok := links[key]; ok && sys.Nlink > 1 {
		h.Typeflag, h.Size = tar.TypeLink, 0
		out := header(h, rel, first)
		if err := tw.WriteHeader(out); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
		st.add(rel, out)
		return nil
	}
	h = header(h, rel, "")
	if err := tw.writeHeader(h); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := fileData(ctx, tw, f, h.Size, func(format string, args ...any) {
		warn("%q "+format, append([]any{rel}, args...)...)
	}); err != nil {
		return fmt.Errorf("archive file %q: %w", full, err)
	}
	st.add(rel, h)
	if sys.Nlink > 1 {
		links[key] = rel
	}
	return nil
}

// fileData writes exactly size bytes of r to tw: the tar header promised
// that many. A file that shrank is padded with zeros, one that grew is cut
// at size; both are warnings, since a live site keeps writing.
func fileData(ctx context.Context, tw *archiveWriter, r io.Reader, size int64, warn func(string, ...any)) error {
	n, err := tw.copyFrom(ctx, r, size)
	if err == io.EOF {
		warn("shrank from %d to %d bytes while being read; the rest is padded with zeros", size, n)
		if _, err := copyData(ctx, tw, zeroReader{}, size-n); err != nil {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		warn("grew while being read; only its first %d bytes are archived", size)
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

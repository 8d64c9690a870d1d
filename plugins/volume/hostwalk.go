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
)

type devIno struct{ dev, ino uint64 }

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
		rel, err := filepath.Rel(root, full)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
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
		h := &tar.Header{
			Name:    tarName(rel),
			Mode:    int64(sys.Mode & 0o7777),
			Uid:     int(sys.Uid),
			Gid:     int(sys.Gid),
			ModTime: time.Unix(sys.Mtim.Sec, sys.Mtim.Nsec),
		}
		switch fi.Mode().Type() {
		case fs.ModeDir:
			h.Typeflag = tar.TypeDir
		case fs.ModeSymlink:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = os.Readlink(full); errors.Is(err, fs.ErrNotExist) {
				warn("skipped %q: it vanished while the directory was read", rel)
				return nil
			} else if err != nil {
				return fmt.Errorf("read symlink %q: %w", full, err)
			}
		case fs.ModeNamedPipe:
			h.Typeflag = tar.TypeFifo
		case 0:
			// It became a regular file after the directory was listed.
			return p.hostFile(ctx, full, rel, tw, st, links, warn)
		default:
			warn("skipped %q: %s is not archived", rel, fi.Mode().Type())
			return nil
		}
		out := header(h, h.Name, h.Linkname)
		if err := tw.writeHeader(out); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
		st.add(rel, out)
		if tw.pool != nil && fi.IsDir() && (rel == "filedir" || rel == "trashdir") {
			// Moodle's pooled areas: scanned side by side below here.
			if err := scanParallel(ctx, full, fi, 2, areaCache(full), func(full string, d fs.DirEntry, walkErr error, fi fs.FileInfo) error {
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
// system calls.
const (
	scanWorkers = 4
	scanAhead   = 6
)

// scanned is one subtree's entries, in walk order, with their lstat.
type scanned struct {
	full string
	d    fs.DirEntry
	err  error
	fi   fs.FileInfo
}

// scanParallel walks each entry below dir (not dir itself, whose lstat is
// fi) and hands it to visit in the order filepath.WalkDir would. At depth 1
// the subtrees of dir's entries are listed and lstat'ed by scanWorkers
// goroutines while visit takes them one subtree after the other; above,
// dir's directories are visited one by one and scanned at the next depth.
// Moodle's filedir/ab/cd/ is scanned at depth 2: a job is one ab/cd
// directory, a few files even on a site of millions, so that what waits in
// memory stays small; the walk cache (wc, nil for none) keeps one line per
// ab directory. visit's fs.SkipDir for a directory leaves out what lies
// below it.
func scanParallel(ctx context.Context, dir string, fi fs.FileInfo, depth int, wc *walkCache, visit func(string, fs.DirEntry, error, fs.FileInfo) error) error {
	if depth > 1 {
		top, err := os.ReadDir(dir)
		if err != nil {
			return visit(dir, nil, err, nil)
		}
		for _, e := range top {
			full := filepath.Join(dir, e.Name())
			fi, ierr := e.Info()
			if errors.Is(ierr, fs.ErrNotExist) {
				fi, ierr = nil, nil // visit finds it gone and says so
			}
			err := visit(full, e, ierr, fi)
			switch {
			case err == fs.SkipDir && e.IsDir():
				continue
			case err != nil:
				return err
			case e.IsDir() && ierr == nil && fi != nil:
				if err := scanParallel(ctx, full, fi, depth-1, wc, visit); err != nil {
					return err
				}
			}
		}
		return nil
	}
	dc := wc.subtree(dir)
	top, err := dc.names(dir, "", fi)
	if err != nil {
		return visit(dir, nil, err, nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan []scanned, len(top))
	for i := range results {
		results[i] = make(chan []scanned, 1)
	}
	sem := make(chan struct{}, scanAhead)
	go func() {
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range scanWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					results[i] <- scanTree(ctx, filepath.Join(dir, top[i]), top[i], dc)
				}
			}()
		}
		for i := range top {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			jobs <- i
		}
		close(jobs)
		wg.Wait()
	}()
	for i := range top {
		var list []scanned
		select {
		case list = <-results[i]:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		<-sem
		skip := ""
		for _, e := range list {
			if skip != "" && strings.HasPrefix(e.full, skip) {
				continue
			}
			err := visit(e.full, e.d, e.err, e.fi)
			if err == fs.SkipDir && e.d != nil && e.d.IsDir() {
				skip = e.full + string(filepath.Separator)
				continue
			}
			if err != nil {
				return err
			}
		}
	}
	dc.save()
	return nil
}

// scanTree lists a subtree (rel in dc's) as filepath.WalkDir walks it,
// lstat'ing each entry: a regular file's metadata is all a pooled backup
// of an unchanged file needs. A directory's names come from dc when it is
// unchanged since the last backup.
func scanTree(ctx context.Context, root, rel string, dc *dirCache) []scanned {
	fi, err := os.Lstat(root)
	if err != nil {
		return []scanned{{full: root, err: err}}
	}
	var out []scanned
	var walk func(full, rel string, fi fs.FileInfo)
	walk = func(full, rel string, fi fs.FileInfo) {
		d := fs.FileInfoToDirEntry(fi)
		out = append(out, scanned{full: full, d: d, fi: fi})
		if !fi.IsDir() || ctx.Err() != nil {
			return
		}
		names, err := dc.names(full, rel, fi)
		if err != nil {
			// As WalkDir: the directory again, with the error.
			out = append(out, scanned{full: full, d: d, err: err})
			return
		}
		for _, name := range names {
			cf := full + string(filepath.Separator) + name
			cfi, err := os.Lstat(cf)
			if err != nil {
				// visit says a file gone since the directory was listed
				// vanished, and fails on any other error.
				out = append(out, scanned{full: cf, d: goneEntry(name), err: err})
				continue
			}
			walk(cf, joinRel(rel, name), cfi)
		}
	}
	walk(root, rel, fi)
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
	h := statHeader(sys, fi.Size())
	if sys.Nlink > 1 {
		key := devIno{uint64(sys.Dev), sys.Ino}
		if first := tw.pool.linkTarget(key); first != "" {
			return tw.pool.addLink(ctx, full, rel, first, h, tw, st, warn)
		}
		if _, ok := links[key]; ok {
			return p.hostFile(ctx, full, rel, tw, st, links, warn)
		}
		tw.pool.remember(key, rel, p.log)
	}
	return tw.pool.add(ctx, full, rel, h, tw, st, warn)
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
			return tw.pool.addLink(ctx, full, rel, first, *h, tw, st, warn)
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

package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// restoreHost extracts a checked archive into a host directory, creating it
// when missing. An empty target is written directly. A target holding files
// (clean=true) is restored into a staging directory inside it (stage.go) and
// swapped in only after the whole archive was written, read to the end of
// the stream (commit: the core checks the artifact's hashes there) and
// synced; until then the old files are untouched.
func (p *plugin) restoreHost(ctx context.Context, dir string, o restoreOpts, ts *tarStream, first *tar.Header, commit func() error) (*stats, error) {
	root, err := hostTarget(dir)
	if err != nil {
		return nil, err
	}
	if err := removeLeftovers(root, "", p.log); err != nil {
		return nil, err
	}
	names, err := readNames(root)
	if err != nil {
		return nil, err
	}
	pol := newPolicy(o.keepSpecial, p.log)
	if len(names) == 0 {
		x, err := newExtractor(root, p.log)
		if err != nil {
			return nil, err
		}
		defer x.close()
		st, err := eachEntry(ctx, ts, first, pol, func(e entry) error { return x.put(ctx, ts, e) })
		if err != nil {
			return nil, err
		}
		if err := x.finish(); err != nil {
			return nil, err
		}
		return st, commit()
	}
	if !o.clean {
		return nil, fmt.Errorf("the directory is not empty (it holds %q): set clean=true to replace its contents", names[0])
	}
	stage, err := newStaging(root)
	if err != nil {
		return nil, err
	}
	swapped := false
	defer func() {
		if !swapped {
			if err := os.RemoveAll(filepath.Join(root, stage)); err != nil {
				p.log.Warn("could not remove the staging directory; the next restore will", "path", filepath.Join(root, stage), "error", err)
			}
		}
	}()
	p.log.Info("the target holds files: restoring beside them, swapping in when complete",
		"path", root, "entries", len(names), "staging", stage)
	x, err := newExtractor(filepath.Join(root, stage, stageNew), p.log)
	if err != nil {
		return nil, err
	}
	defer x.close()
	st, err := eachEntry(ctx, ts, first, pol, func(e entry) error { return x.put(ctx, ts, e) })
	if err != nil {
		return nil, fmt.Errorf("%w (the old files are untouched)", err)
	}
	if err := x.finish(); err != nil {
		return nil, fmt.Errorf("%w (the old files are untouched)", err)
	}
	if err := commit(); err != nil {
		return nil, fmt.Errorf("%w (the old files are untouched)", err)
	}
	swapped = true // from here on, swapIn owns the staging directory
	if err := swapIn(root, stage, x.hasRoot, p.log); err != nil {
		return nil, err
	}
	return st, nil
}

// hostTarget resolves (or creates) the target directory. "/" is refused:
// clean=true there would wipe the machine.
func hostTarget(dir string) (string, error) {
	if filepath.Clean(dir) == "/" {
		return "", errors.New("refusing to restore into /")
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("create the directory: %w", err)
		}
	}
	root, err := hostRoot(dir)
	if err != nil {
		return "", err
	}
	if root == "/" {
		return "", errors.New("refusing to restore into /")
	}
	return root, nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", dir, err)
	}
	return names, nil
}

// extractor writes entries below a directory it holds open, with *at system
// calls only, so that nothing it does can leave that directory or go through
// a symlink, whatever is below it (the archive's own symlinks, or ones a
// live site creates meanwhile):
//
//   - a parent directory is reached one component at a time with
//     openat(O_DIRECTORY|O_NOFOLLOW): a symlink anywhere on the way is
//     ELOOP, a file ENOTDIR, and the entry is refused;
//   - a file is created with openat(O_CREAT|O_EXCL|O_NOFOLLOW), and its
//     owner, mode and times are set on that descriptor (fchown, fchmod,
//     futimens), never by name;
//   - a directory's metadata is set the same way on a descriptor opened
//     with O_NOFOLLOW;
//   - a symlink gets fchownat and utimensat with AT_SYMLINK_NOFOLLOW, and
//     no mode (Linux has none for links: fchmodat refuses
//     AT_SYMLINK_NOFOLLOW, which is why nothing here chmods by name);
//   - a FIFO is opened O_NONBLOCK|O_NOFOLLOW and set through that
//     descriptor; a device (keep_special only) through an O_PATH|O_NOFOLLOW
//     descriptor: fchownat(AT_EMPTY_PATH), and chmod and utimensat on its
//     /proc/self/fd link, which names the inode, not a path.
//
// os.Root was the other candidate: it keeps operations inside the root, but
// follows symlinks that stay inside it, and the rule here is stricter.
type extractor struct {
	root   string
	rootFd int
	// the parent directory of the last entry, kept open: most entries
	// share it (moodledata's filedir/ab/cd/<hash>).
	lastDir string
	lastFd  int
	// dirs get their metadata last: creating children changes a directory's
	// mtime. Only what meta needs is kept, not the tar header: a 50,000-file
	// moodledata has some 35,000 directories, and their headers held 17 MiB.
	dirs        []dirMeta
	hasRoot     bool // the archive had a "." entry
	warnedOwner bool
	log         hclog.Logger
}

func newExtractor(root string, log hclog.Logger) (*extractor, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", root, err)
	}
	return &extractor{root: root, rootFd: fd, lastFd: -1, log: log}, nil
}

func (x *extractor) close() {
	if x.lastFd >= 0 {
		unix.Close(x.lastFd)
		x.lastFd = -1
	}
	if x.rootFd >= 0 {
		unix.Close(x.rootFd)
		x.rootFd = -1
	}
}

// walk opens dir (clean, relative, not ".") below the root without following
// any symlink, creating missing directories when create is set (archives
// need not list every parent; tar creates them). The caller closes the fd.
func (x *extractor) walk(dir string, create bool) (int, error) {
	cur := x.rootFd
	done := ""
	for _, comp := range splitPath(dir) {
		fd, err := unix.Openat(cur, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(cur, comp, 0o755); err == nil || err == unix.EEXIST {
				fd, err = unix.Openat(cur, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		done = path.Join(done, comp)
		if cur != x.rootFd {
			unix.Close(cur)
		}
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return -1, fmt.Errorf("%q is a symlink or not a directory: nothing is written through it", done)
		}
		if err != nil {
			return -1, fmt.Errorf("open directory %q: %w", done, err)
		}
		cur = fd
	}
	if cur == x.rootFd {
		return unix.Dup(cur)
	}
	return cur, nil
}

func splitPath(p string) []string {
	var out []string
	for p != "" && p != "." {
		d, f := path.Split(p)
		out = append([]string{f}, out...)
		p = path.Clean(d)
		if p == "/" {
			break
		}
	}
	return out
}

// parent returns an open fd of dir, kept for the next entries; the caller
// does not close it.
func (x *extractor) parent(dir string) (int, error) {
	if dir == "." {
		return x.rootFd, nil
	}
	if dir == x.lastDir && x.lastFd >= 0 {
		return x.lastFd, nil
	}
	if x.lastFd >= 0 {
		unix.Close(x.lastFd)
		x.lastFd = -1
	}
	fd, err := x.walk(dir, true)
	if err != nil {
		return -1, err
	}
	x.lastDir, x.lastFd = dir, fd
	return fd, nil
}

func (x *extractor) put(ctx context.Context, data io.Reader, e entry) error {
	h := e.hdr
	if e.name == "." {
		x.hasRoot = true
		x.dirs = append(x.dirs, dirMeta{name: ".", a: attrsOf(h)})
		return nil
	}
	pfd, err := x.parent(path.Dir(e.name))
	if err != nil {
		return fmt.Errorf("entry %q: %w", e.name, err)
	}
	base := path.Base(e.name)
	var st unix.Stat_t
	serr := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if serr != nil && serr != unix.ENOENT {
		return fmt.Errorf("stat %q: %w", e.name, serr)
	}
	exists, isDir := serr == nil, serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	if h.Typeflag == tar.TypeDir {
		if exists && !isDir {
			if err := unix.Unlinkat(pfd, base, 0); err != nil {
				return fmt.Errorf("replace %q: %w", e.name, err)
			}
		}
		if !isDir {
			// Owner-only until finish sets the archived mode.
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("create directory %q: %w", e.name, err)
			}
		}
		x.dirs = append(x.dirs, dirMeta{name: e.name, a: attrsOf(h)})
		return nil
	}
	// Replace what is there, as tar does; never a directory.
	if isDir {
		return fmt.Errorf("entry %q would replace a directory", e.name)
	}
	if exists {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return fmt.Errorf("replace %q: %w", e.name, err)
		}
	}
	a := attrsOf(h)
	switch h.Typeflag {
	case tar.TypeReg:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create %q: %w", e.name, err)
		}
		f := os.NewFile(uintptr(fd), e.name)
		defer f.Close()
		if _, err := copyData(ctx, f, data, h.Size); err != nil {
			if err == io.EOF {
				err = errTruncated
			}
			return fmt.Errorf("write %q: %w", e.name, err)
		}
		if err := x.metaFd(fd, e.name, a); err != nil {
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
			return fmt.Errorf("create symlink %q: %w", e.name, err)
		}
		if err := x.chown(func() error { return unix.Fchownat(pfd, base, a.uid, a.gid, unix.AT_SYMLINK_NOFOLLOW) }, e.name); err != nil {
			return err
		}
		ts := times(a)
		if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set mtime of %q: %w", e.name, err)
		}
		return nil
	case tar.TypeLink:
		// A hard link shares its target's inode and metadata. linkat
		// without AT_SYMLINK_FOLLOW links a symlink itself, not its target.
		sfd := x.rootFd
		if d := path.Dir(e.link); d != "." {
			if sfd, err = x.walk(d, false); err != nil {
				return fmt.Errorf("hard link %q to %q: %w", e.name, e.link, err)
			}
			defer unix.Close(sfd)
		}
		if err := unix.Linkat(sfd, path.Base(e.link), pfd, base, 0); err != nil {
			return fmt.Errorf("create hard link %q: %w", e.name, err)
		}
		return nil
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return fmt.Errorf("create FIFO %q: %w", e.name, err)
		}
		// Non-blocking: opening a FIFO for reading does not wait for a writer.
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open FIFO %q: %w", e.name, err)
		}
		defer unix.Close(fd)
		return x.metaFd(fd, e.name, a)
	case tar.TypeChar, tar.TypeBlock:
		mode := uint32(unix.S_IFCHR)
		if h.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		if err := unix.Mknodat(pfd, base, mode|0o600, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
			return fmt.Errorf("create device %q: %w", e.name, err)
		}
		return x.metaPath(pfd, base, e.name, a)
	}
	return fmt.Errorf("entry %q: %s is not restored", e.name, typeName(h.Typeflag))
}

// attrs are what meta applies.
type attrs struct {
	uid, gid int
	mode     int64
	typ      byte
	mtime    int64 // ns since the epoch
}

func attrsOf(h *tar.Header) attrs {
	return attrs{uid: h.Uid, gid: h.Gid, mode: h.Mode, typ: h.Typeflag, mtime: h.ModTime.UnixNano()}
}

type dirMeta struct {
	name string
	a    attrs
}

func times(a attrs) [2]unix.Timespec {
	t := unix.NsecToTimespec(a.mtime)
	return [2]unix.Timespec{t, t}
}

// futimens sets the times of the file fd is open on: utimensat with a NULL
// path, which x/sys/unix has no wrapper for.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// chown runs a chown; EPERM when not root is a warning, once.
func (x *extractor) chown(do func() error, name string) error {
	err := do()
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EPERM) || os.Geteuid() == 0 {
		return fmt.Errorf("set owner of %q: %w", name, err)
	}
	if !x.warnedOwner {
		x.warnedOwner = true
		x.log.Warn("not running as root: files keep the restoring user as owner", "first", name)
	}
	return nil
}

// metaFd applies owner, mode and mtime to an open file or directory; the
// mode after the owner, because chown clears setuid and setgid bits.
func (x *extractor) metaFd(fd int, name string, a attrs) error {
	if err := x.chown(func() error { return unix.Fchown(fd, a.uid, a.gid) }, name); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(a.mode&0o7777)); err != nil {
		return fmt.Errorf("set mode of %q: %w", name, err)
	}
	ts := times(a)
	if err := futimens(fd, &ts); err != nil {
		return fmt.Errorf("set mtime of %q: %w", name, err)
	}
	return nil
}

// metaPath applies owner, mode and mtime to a device just created as base in
// dirfd, through an O_PATH descriptor: a device is not opened for real.
func (x *extractor) metaPath(dirfd int, base, name string, a attrs) error {
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFCHR && t != unix.S_IFBLK {
		return fmt.Errorf("%q changed while it was restored", name)
	}
	if err := x.chown(func() error { return unix.Fchownat(fd, "", a.uid, a.gid, unix.AT_EMPTY_PATH) }, name); err != nil {
		return err
	}
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Fchmodat(unix.AT_FDCWD, proc, uint32(a.mode&0o7777), 0); err != nil {
		return fmt.Errorf("set mode of %q: %w", name, err)
	}
	ts := times(a)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts[:], 0); err != nil {
		return fmt.Errorf("set mtime of %q: %w", name, err)
	}
	return nil
}

// finish applies the directories' metadata, deepest first, and flushes
// the filesystem so a reported success survives a crash.
func (x *extractor) finish() error {
	if x.lastFd >= 0 {
		unix.Close(x.lastFd)
		x.lastFd = -1
	}
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		fd, err := x.walk(d.name, false)
		if err != nil {
			return fmt.Errorf("directory %q: %w", d.name, err)
		}
		err = x.metaFd(fd, d.name, d.a)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	if err := unix.Syncfs(x.rootFd); err != nil {
		return fmt.Errorf("sync %q: %w", x.root, err)
	}
	return nil
}

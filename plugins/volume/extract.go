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
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// restoreHost extracts a checked archive into a host directory, creating it
// when missing.
func (p *plugin) restoreHost(ctx context.Context, dir string, clean bool, ts *tarStream, first *tar.Header) (*stats, error) {
	root, err := hostTarget(dir)
	if err != nil {
		return nil, err
	}
	names, err := readNames(root)
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		if !clean {
			return nil, fmt.Errorf("the directory is not empty (it holds %q): set clean=true to empty it first", names[0])
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return nil, context.Cause(ctx)
			}
			if err := os.RemoveAll(filepath.Join(root, n)); err != nil {
				return nil, fmt.Errorf("empty the directory: %w", err)
			}
		}
		p.log.Info("emptied the target directory", "path", root, "entries", len(names))
	}
	x := &extractor{root: root, log: p.log}
	st, err := eachEntry(ctx, ts, first, func(e entry) error { return x.put(ctx, ts, e) })
	if err != nil {
		return nil, err
	}
	if err := x.finish(); err != nil {
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

// extractor writes entries below root. The checker has already refused
// anything that could leave root, and root was empty when it started, so
// the only symlinks below root are the archive's own.
type extractor struct {
	root string
	// dirs get their metadata last: creating children changes a directory's
	// mtime. Only what meta needs is kept, not the tar header: a 50,000-file
	// moodledata has some 35,000 directories, and their headers held 17 MiB.
	dirs        []dirMeta
	warnedOwner bool
	log         hclog.Logger
}

func (x *extractor) put(ctx context.Context, data io.Reader, e entry) error {
	full := filepath.Join(x.root, filepath.FromSlash(e.name))
	h := e.hdr
	if e.name != "." {
		// Archives need not list every parent; tar creates them.
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("create parent of %q: %w", e.name, err)
		}
	}
	if h.Typeflag == tar.TypeDir {
		fi, err := os.Lstat(full)
		if err == nil && !fi.IsDir() {
			if err := os.Remove(full); err != nil {
				return fmt.Errorf("replace %q: %w", e.name, err)
			}
			err = fs.ErrNotExist
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Owner-only until finish sets the archived mode.
			err = os.Mkdir(full, 0o700)
		}
		if err != nil {
			return fmt.Errorf("create directory %q: %w", e.name, err)
		}
		x.dirs = append(x.dirs, dirMeta{name: e.name, a: attrsOf(h)})
		return nil
	}
	if err := replace(full, e.name); err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeReg:
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("create %q: %w", e.name, err)
		}
		if _, err := copyData(ctx, f, data, h.Size); err != nil {
			f.Close()
			if err == io.EOF {
				err = errTruncated
			}
			return fmt.Errorf("write %q: %w", e.name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %q: %w", e.name, err)
		}
	case tar.TypeSymlink:
		if err := os.Symlink(h.Linkname, full); err != nil {
			return fmt.Errorf("create symlink %q: %w", e.name, err)
		}
	case tar.TypeLink:
		// A hard link shares its target's inode and metadata.
		if err := os.Link(filepath.Join(x.root, filepath.FromSlash(e.link)), full); err != nil {
			return fmt.Errorf("create hard link %q: %w", e.name, err)
		}
		return nil
	case tar.TypeFifo:
		if err := syscall.Mkfifo(full, 0o600); err != nil {
			return fmt.Errorf("create FIFO %q: %w", e.name, err)
		}
	}
	return x.meta(full, e.name, attrsOf(h))
}

// replace removes what an entry replaces, as tar does; never a directory.
func replace(full, name string) error {
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("entry %q would replace a directory", name)
	}
	if err := os.Remove(full); err != nil {
		return fmt.Errorf("replace %q: %w", name, err)
	}
	return nil
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

// meta applies owner, mode and mtime; the mode after the owner, because
// chown clears setuid and setgid bits.
func (x *extractor) meta(full, name string, a attrs) error {
	if err := os.Lchown(full, a.uid, a.gid); err != nil {
		if !errors.Is(err, syscall.EPERM) || os.Geteuid() == 0 {
			return fmt.Errorf("set owner of %q: %w", name, err)
		}
		if !x.warnedOwner {
			x.warnedOwner = true
			x.log.Warn("not running as root: files keep the restoring user as owner", "first", name)
		}
	}
	if a.typ != tar.TypeSymlink {
		if err := syscall.Chmod(full, uint32(a.mode&0o7777)); err != nil {
			return fmt.Errorf("set mode of %q: %w", name, err)
		}
	}
	t := unix.NsecToTimespec(a.mtime)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime of %q: %w", name, err)
	}
	return nil
}

// finish applies the directories' metadata, deepest first, and flushes
// the filesystem so a reported success survives a crash.
func (x *extractor) finish() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.meta(filepath.Join(x.root, filepath.FromSlash(d.name)), d.name, d.a); err != nil {
			return err
		}
	}
	f, err := os.Open(x.root)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %q: %w", x.root, err)
	}
	return nil
}

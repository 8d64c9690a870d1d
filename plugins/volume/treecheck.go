package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/dustin/go-humanize"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
)

// The checks of a restored dataroot, with Moodle's own invariants: every
// blob the database references is in the file pool (references), blobs are
// what their names say (blob-hashes), and the tree holds what the backup
// recorded (files), in refcheck.go, blobcheck.go and here. The same code
// runs on a directory of this host and, on the Engine path, inside a helper
// container next to the volume (check.go).
const (
	checkReferences = "references"
	checkBlobHashes = "blob-hashes"
	checkFiles      = "files"
	// problemsKept caps a check's list of problems; its summary counts all.
	problemsKept = 200
)

// blobAreas are where Moodle keeps content-addressed files:
// <area>/<h[0:2]>/<h[2:4]>/<h>. trashdir holds deleted files until a
// scheduled task removes them; a file restored from the trash is there.
var blobAreas = []string{"filedir", "trashdir"}

// checkSpec is what the checks are asked; it travels to the helper as JSON.
type checkSpec struct {
	// Refs: references arrive (sdk.ReadRefs format) for the references check.
	Refs   bool       `json:"refs"`
	Sample sdk.Sample `json:"sample"`
	// Recorded are the backup's figures; nil when it recorded none.
	Recorded *recorded `json:"recorded,omitempty"`
	// Exclude are the backup's exclude patterns: what the target may hold
	// that the archive never did (caches, climaintenance.html).
	Exclude []string `json:"exclude,omitempty"`
}

type recorded struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// refSource calls fn for each reference, in order.
type refSource func(fn func(sdk.Ref) error) error

// tree is a restored dataroot opened for checking. Every name below it is
// resolved one component at a time from a directory descriptor, with
// O_NOFOLLOW (as extract.go writes), so that a hostile tree (a symlink to
// /etc or to another volume's directory) cannot make a check read, or even
// stat, anything outside it. os.Root would keep lookups inside too, but
// follows symlinks that stay inside; Moodle never makes one in its file
// pool, and a blob reached through one is not where Moodle stores it.
type tree struct {
	root *os.File
	log  hclog.Logger
}

func openTree(dir string, log hclog.Logger) (*tree, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", dir, err)
	}
	return &tree{root: os.NewFile(uintptr(fd), dir), log: log}, nil
}

func (t *tree) close() { t.root.Close() }

// run runs the three checks.
func (t *tree) run(ctx context.Context, spec checkSpec, refs refSource) ([]sdk.Check, error) {
	ex, err := newExcluder(spec.Exclude)
	if err != nil {
		return nil, err
	}
	ch := []sdk.Check{}
	for _, run := range []func() (sdk.Check, error){
		func() (sdk.Check, error) { return t.references(ctx, spec.Refs, refs) },
		func() (sdk.Check, error) { return t.blobHashes(ctx, spec.Sample) },
		func() (sdk.Check, error) { return t.files(ctx, spec.Recorded, ex) },
	} {
		c, err := run()
		if err != nil {
			return nil, err
		}
		t.log.Info("check", "name", c.Name, "ok", c.OK, "summary", c.Summary)
		ch = append(ch, c)
	}
	return ch, nil
}

// problems collects a check's problems, keeping the first problemsKept.
type problems struct {
	list []string
	n    int
}

func (p *problems) add(format string, args ...any) {
	p.n++
	if len(p.list) < problemsKept {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

// listed says how many problems there were, and whether all are listed.
func (p *problems) listed() string {
	if p.n <= len(p.list) {
		return ""
	}
	return fmt.Sprintf(" (the first %d listed)", len(p.list))
}

// openDirAt opens the directory name in dir without following a symlink:
// a symlink is ELOOP, anything but a directory ENOTDIR.
func openDirAt(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path.Join(dir.Name(), name)), nil
}

// openArea opens a blob area; nil when the tree has none. A symlink or a
// file in its place is a problem: blobs are not looked for through it.
func (t *tree) openArea(area string, pr *problems) (*os.File, error) {
	d, err := openDirAt(t.root, area)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		if pr != nil {
			pr.add("%s is not a directory (a symlink or a file): no blob is looked for through it", area)
		}
		return nil, nil
	}
	return nil, fmt.Errorf("open %s: %w", area, err)
}

// eachName calls fn for each entry of dir with its lstat, reading the
// directory in chunks: a filedir/ab/cd directory may hold many blobs, a
// hostile one millions of names. Entries that vanish are skipped.
func eachName(ctx context.Context, dir *os.File, fn func(name string, st *unix.Stat_t) error) error {
	fd := int(dir.Fd())
	for {
		names, err := dir.Readdirnames(1024)
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			var st unix.Stat_t
			if serr := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); serr == unix.ENOENT {
				continue
			} else if serr != nil {
				return fmt.Errorf("stat %s: %w", path.Join(dir.Name(), n), serr)
			}
			if err := fn(n, &st); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir.Name(), err)
		}
	}
}

func isBlobName(s string) bool { return spec.HexSHA1(s) }

func typeOf(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "device"
}

// files counts the tree's regular files and their bytes as a backup does (a
// file with several names once, under the first; what the backup excludes
// not at all) and compares them with what the backup recorded.
func (t *tree) files(ctx context.Context, want *recorded, ex *excluder) (sdk.Check, error) {
	c := sdk.Check{Name: checkFiles}
	if want == nil {
		c.OK, c.Summary = true, "skipped: the backup recorded no file count"
		return c, nil
	}
	var files, bytes, dirs, symlinks int64
	seen := map[devIno]bool{}
	var walk func(dir *os.File, rel string) error
	walk = func(dir *os.File, rel string) error {
		return eachName(ctx, dir, func(name string, st *unix.Stat_t) error {
			r := name
			if rel != "." {
				r = rel + "/" + name
			}
			if ex.match(r) != "" {
				return nil
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				if st.Nlink > 1 {
					k := devIno{uint64(st.Dev), st.Ino}
					if seen[k] {
						return nil
					}
					seen[k] = true
				}
				files++
				bytes += st.Size
			case unix.S_IFLNK:
				symlinks++
			case unix.S_IFDIR:
				dirs++
				sub, err := openDirAt(dir, name)
				if err != nil {
					return fmt.Errorf("open %s: %w", r, err)
				}
				defer sub.Close()
				return walk(sub, r)
			}
			return nil
		})
	}
	if err := walk(t.root, "."); err != nil {
		return c, err
	}
	got := fmt.Sprintf("%d files, %s (%d bytes)", files, humanize.IBytes(uint64(bytes)), bytes)
	c.OK = files == want.Files && bytes == want.Bytes
	if c.OK {
		c.Summary = got + ", as the backup recorded"
	} else {
		c.Summary = fmt.Sprintf("%s; the backup recorded %d files, %s (%d bytes)", got, want.Files, humanize.IBytes(uint64(want.Bytes)), want.Bytes)
		if files != want.Files {
			c.Problems = append(c.Problems, fmt.Sprintf("restored %d files, the backup recorded %d", files, want.Files))
		}
		if bytes != want.Bytes {
			c.Problems = append(c.Problems, fmt.Sprintf("restored %d bytes of files, the backup recorded %d", bytes, want.Bytes))
		}
	}
	c.Summary += fmt.Sprintf(" (and %d directories, %d symlinks)", dirs, symlinks)
	return c, nil
}

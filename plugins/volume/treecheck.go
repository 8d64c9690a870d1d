package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"

	"github.com/dustin/go-humanize"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/mbk-backup/mbk/core/sdk"
)

// The checks of a restored dataroot, with Moodle's own invariants: every
// blob the database references is in the file pool (references), blobs are
// what their names say (blob-hashes), and the tree holds what the backup
// recorded (files). The same code runs on a directory of this host and, on
// the Engine path, inside a helper container next to the volume (check.go).
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

func isBlobName(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

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

// lookup finds blob h in an area. Each call opens <h[0:2]>/<h[2:4]> from
// the area's descriptor, keeping the last one open: a database's references
// are often in hash order.
type lookup struct {
	area    *os.File
	lastDir string
	last    *os.File
}

func (l *lookup) close() {
	if l.last != nil {
		l.last.Close()
	}
	if l.area != nil {
		l.area.Close()
	}
}

// find reports whether h is a regular file in the area, or else what is
// there instead ("" when nothing is).
func (l *lookup) find(h string) (found bool, other string, err error) {
	if l.area == nil {
		return false, "", nil
	}
	dir := h[0:2] + "/" + h[2:4]
	if dir != l.lastDir || l.last == nil {
		if l.last != nil {
			l.last.Close()
			l.last = nil
		}
		ab, err := openDirAt(l.area, h[0:2])
		if err == nil {
			l.last, err = openDirAt(ab, h[2:4])
			ab.Close()
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return false, "", nil
		}
		if err != nil {
			return false, "", err
		}
		l.lastDir = dir
	}
	var st unix.Stat_t
	err = unix.Fstatat(int(l.last.Fd()), h, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
		return false, "", nil
	case err != nil:
		return false, "", err
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return false, typeOf(st.Mode), nil
	}
	return true, "", nil
}

// references checks that every SHA-1 reference has its blob, as a regular
// file, in filedir or trashdir. It holds one reference at a time.
func (t *tree) references(ctx context.Context, have bool, refs refSource) (sdk.Check, error) {
	c := sdk.Check{Name: checkReferences}
	if !have {
		c.OK, c.Summary = true, "skipped: no stage before this one named files it references"
		return c, nil
	}
	var pr problems
	var areas []*lookup
	for _, a := range blobAreas {
		d, err := t.openArea(a, &pr)
		if err != nil {
			return c, err
		}
		l := &lookup{area: d}
		defer l.close()
		areas = append(areas, l)
	}
	noFiledir := areas[0].area == nil
	var total, other, missing, inTrash int64
	err := refs(func(r sdk.Ref) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		alg, h := r.Split()
		if alg != "sha1" {
			other++ // not a blob of Moodle's file pool: another stage's to resolve
			return nil
		}
		total++
		if !isBlobName(h) {
			missing++
			pr.add("reference %s is not a SHA-1 content hash (40 lowercase hex digits): %s", r.Hash, r.Label)
			return nil
		}
		var others []string
		for i, l := range areas {
			found, what, err := l.find(h)
			if err != nil {
				return fmt.Errorf("look up blob %s in %s: %w", h, blobAreas[i], err)
			}
			if found {
				if i > 0 {
					inTrash++
				}
				return nil
			}
			if what != "" {
				others = append(others, fmt.Sprintf("%s/%s/%s/%s is a %s", blobAreas[i], h[0:2], h[2:4], h, what))
			}
		}
		missing++
		if len(others) > 0 {
			pr.add("missing blob %s (%s, not a file): %s", h, others[0], r.Label)
		} else {
			pr.add("missing blob %s: %s", h, r.Label)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("resolve references: %w", err)
	}
	c.Problems = pr.list
	c.OK = pr.n == 0
	var ignored string
	if other > 0 {
		ignored = fmt.Sprintf("; %d references that are not SHA-1 ignored", other)
	}
	switch {
	case noFiledir && total == 0 && pr.n == 0:
		c.Summary = "skipped: no SHA-1 references and no filedir" + ignored
	case total == 0:
		c.Summary = "no SHA-1 references to resolve, but the file pool is damaged" + ignored
	case noFiledir && missing > 0:
		c.OK = false
		c.Summary = fmt.Sprintf("no filedir in the restored tree, yet %d references name blobs in it: %d missing%s%s",
			total, missing, pr.listed(), ignored)
	case missing > 0:
		c.Summary = fmt.Sprintf("%d of %d references have no blob%s%s", missing, total, pr.listed(), ignored)
	case pr.n > 0:
		c.Summary = fmt.Sprintf("all %d references have their blob, but the file pool is damaged%s", total, ignored)
	default:
		c.Summary = fmt.Sprintf("all %d references have their blob", total)
		if inTrash > 0 {
			c.Summary += fmt.Sprintf(" (%d only in trashdir)", inTrash)
		}
		c.Summary += ignored
	}
	return c, nil
}

// eachBlob calls fn for each regular file at <area>/<xx>/<yy>/<name>, with
// its directory open. With pr, what does not belong in Moodle's file pool
// is reported there: symlinks on the way, names that are not a SHA-1 or in
// the wrong directory, anything but a regular file in a blob's place. fn
// sees only well-named blobs. Regular files above the blob level (filedir's
// warning.txt) are Moodle's and are skipped.
func (t *tree) eachBlob(ctx context.Context, pr *problems, fn func(dir *os.File, rel, name string, st *unix.Stat_t) error) error {
	report := func(format string, args ...any) {
		if pr != nil {
			pr.add(format, args...)
		}
	}
	for _, area := range blobAreas {
		ad, err := t.openArea(area, pr)
		if err != nil {
			return err
		}
		if ad == nil {
			continue
		}
		err = eachName(ctx, ad, func(ab string, st *unix.Stat_t) error {
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				report("%s/%s is a symlink: Moodle's file pool has none", area, ab)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return nil
			}
			abd, err := openDirAt(ad, ab)
			if err != nil {
				return fmt.Errorf("open %s/%s: %w", area, ab, err)
			}
			defer abd.Close()
			return eachName(ctx, abd, func(cd string, st *unix.Stat_t) error {
				if st.Mode&unix.S_IFMT == unix.S_IFLNK {
					report("%s/%s/%s is a symlink: Moodle's file pool has none", area, ab, cd)
				}
				if st.Mode&unix.S_IFMT != unix.S_IFDIR {
					return nil
				}
				cdd, err := openDirAt(abd, cd)
				if err != nil {
					return fmt.Errorf("open %s/%s/%s: %w", area, ab, cd, err)
				}
				defer cdd.Close()
				return eachName(ctx, cdd, func(name string, st *unix.Stat_t) error {
					rel := area + "/" + ab + "/" + cd + "/" + name
					switch {
					case st.Mode&unix.S_IFMT != unix.S_IFREG:
						report("%s is a %s, not a blob", rel, typeOf(st.Mode))
					case !isBlobName(name):
						report("%s: not a blob name (Moodle names blobs by their SHA-1: 40 lowercase hex digits)", rel)
					case name[0:2] != ab || name[2:4] != cd:
						report("%s: in the wrong directory (Moodle looks for it in %s/%s/%s)", rel, area, name[0:2], name[2:4])
					default:
						return fn(cdd, rel, name, st)
					}
					return nil
				})
			})
		})
		ad.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// blobHashes re-hashes the sample's blobs and compares each with its name.
// It lists the pool twice: once to count the blobs (the sample widens to
// reach its minimum of the total), once to read the chosen ones; holding
// the names instead would cost memory in proportion to the pool.
func (t *tree) blobHashes(ctx context.Context, s sdk.Sample) (sdk.Check, error) {
	c := sdk.Check{Name: checkBlobHashes}
	if s.Of <= 0 {
		c.OK, c.Summary = true, "skipped: no sample asked for"
		return c, nil
	}
	if s.Of > 1 && (s.Part < 1 || s.Part > s.Of) {
		return c, fmt.Errorf("sample part %d of %d: want 1 to %d", s.Part, s.Of, s.Of)
	}
	var pr problems
	total := 0
	if err := t.eachBlob(ctx, &pr, func(*os.File, string, string, *unix.Stat_t) error {
		total++
		return nil
	}); err != nil {
		return c, err
	}
	extra := s.Extra(total)
	var read, bytes int64
	h := sha1.New()
	err := t.eachBlob(ctx, nil, func(dir *os.File, rel, name string, _ *unix.Stat_t) error {
		if !s.In(name, extra) {
			return nil
		}
		read++
		n, sum, err := hashAt(ctx, h, dir, name)
		bytes += n
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return err
		case err != nil:
			pr.add("%s: %v", rel, err)
		case sum != name:
			pr.add("%s: its content hashes to %s", rel, sum)
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	c.Problems = pr.list
	c.OK = pr.n == 0
	which := "all"
	if s.Of > 1 {
		which = fmt.Sprintf("group %d of %d", s.Part, s.Of)
		if extra > 0 {
			which += fmt.Sprintf(" and the %d after it, to reach %d", extra, s.Min)
		}
	}
	c.Summary = fmt.Sprintf("re-hashed %d of %d blobs (%s, %d bytes; %s)", read, total, humanize.IBytes(uint64(bytes)), bytes, which)
	if pr.n > 0 {
		c.Summary += fmt.Sprintf(": %d problems%s", pr.n, pr.listed())
	}
	return c, nil
}

// hashAt returns the SHA-1 of the regular file name in dir, opened without
// following a symlink.
func hashAt(ctx context.Context, h hash.Hash, dir *os.File, name string) (int64, string, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, "", fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, "", fmt.Errorf("replaced by a %s while being checked", fi.Mode().Type())
	}
	h.Reset()
	n, err := copyData(ctx, h, f, fi.Size())
	if err == io.EOF {
		err = fmt.Errorf("shrank while being read")
	}
	if err != nil {
		return n, "", fmt.Errorf("read: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
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

package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// entry is an archive entry that passed the checks.
type entry struct {
	hdr  *tar.Header
	name string // clean, relative; "." for the root
	link string // hard links: clean, relative target
}

// checker refuses entries that could write outside the restore target: an
// absolute name, ".." after cleaning, a hard link pointing out, or a path
// through a symlink the archive created earlier (the classic
// "link -> /etc" then "link/passwd" attack). Devices pass the checker: the
// policy skips them unless keep_special. The extraction itself never
// follows a symlink either (extract.go); this check names the entry.
type checker struct {
	symlinks map[string]bool
}

func newChecker() *checker { return &checker{symlinks: map[string]bool{}} }

func (c *checker) check(h *tar.Header) (entry, error) {
	if !supported(h.Typeflag) && h.Typeflag != tar.TypeChar && h.Typeflag != tar.TypeBlock {
		return entry{}, fmt.Errorf("entry %q is a %s, which mbk does not restore", h.Name, typeName(h.Typeflag))
	}
	name, err := cleanRel(h.Name)
	if err != nil {
		return entry{}, fmt.Errorf("entry %q %v", h.Name, err)
	}
	if name == "." && h.Typeflag != tar.TypeDir {
		return entry{}, fmt.Errorf("entry %q names the target itself but is not a directory", h.Name)
	}
	if via := c.through(name); via != "" {
		return entry{}, fmt.Errorf("entry %q passes through symlink %q created earlier by the archive", h.Name, via)
	}
	e := entry{hdr: h, name: name}
	switch h.Typeflag {
	case tar.TypeLink:
		if e.link, err = cleanRel(h.Linkname); err != nil {
			return entry{}, fmt.Errorf("hard link %q points to %q, which %v", h.Name, h.Linkname, err)
		}
		if e.link == "." {
			return entry{}, fmt.Errorf("hard link %q points to the target directory itself", h.Name)
		}
		if via := c.through(e.link); via != "" {
			return entry{}, fmt.Errorf("hard link %q points to %q, through symlink %q created earlier by the archive", h.Name, h.Linkname, via)
		}
	case tar.TypeSymlink:
		c.symlinks[name] = true
	}
	return e, nil
}

// through returns the first proper ancestor of p that is an archive symlink.
func (c *checker) through(p string) string {
	if len(c.symlinks) == 0 {
		return ""
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && c.symlinks[p[:i]] {
			return p[:i]
		}
	}
	return ""
}

func cleanRel(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("is empty")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("is an absolute path")
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New(`climbs out of the target with ".."`)
	}
	return c, nil
}

// eachEntry reads an archive to its end marker, checks every entry before
// fn sees it, and counts what passed. first is the header already read.
// fn reads a regular file's data from ts. pol leaves out or changes special
// entries (policy); a skipped file's data is left for ts.Next to skip.
func eachEntry(ctx context.Context, ts *tarStream, first *tar.Header, pol *policy, fn func(entry) error) (*stats, error) {
	st := newStats()
	ck := newChecker()
	h := first
	for {
		if err := ctx.Err(); err != nil {
			return st, context.Cause(ctx)
		}
		if h.Typeflag != tar.TypeXGlobalHeader {
			e, err := ck.check(h)
			if err != nil {
				return st, fmt.Errorf("refused: %w; nothing after it was restored (entries before it may have been)", err)
			}
			if pol.apply(&e, st) {
				if err := fn(e); err != nil {
					return st, err
				}
				st.add(e.name, e.hdr)
			}
		}
		var err error
		if h, err = ts.Next(); err == io.EOF {
			pol.done()
			return st, nil
		} else if err != nil {
			return st, fmt.Errorf("read archive: %w", err)
		}
	}
}

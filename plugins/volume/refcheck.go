package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mbk-backup/mbk/core/sdk"
)

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

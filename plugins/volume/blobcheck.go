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

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/mbk-backup/mbk/core/sdk"
)

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
	counts := make([]int, max(s.Of, 1))
	if err := t.eachBlob(ctx, &pr, func(_ *os.File, _, name string, _ *unix.Stat_t) error {
		total++
		counts[s.Group(name)]++
		return nil
	}); err != nil {
		return c, err
	}
	extra := s.Extra(counts)
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

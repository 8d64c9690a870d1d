package spec

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// A pool listing is a more compact form of a pooled artifact's entries:
// one tar entry whose data is lines, each a directory or a pooled file,
// where the PAX form takes a header of 512 bytes for each directory and
// three for each file (an extended header, its records, the ustar block).
// On the medium bench site that made an unchanged night's listing 26 MB,
// compressed and hashed by the core and sent between the processes.
//
// The entry is a regular file named PoolListingName whose PAX records are
// PoolPAXListing (the listing's version, PoolListingVersion) and
// PoolPAXSHA1 set to "listing": an mbk older than listings takes the entry
// for a malformed pooled one and refuses the restore, where restoring it
// as a file would leave out every file it lists. Its lines stand where the
// entry stands in the stream, in their order:
//
//	d <mode> <uid> <gid> <mtime> <name>
//	f <mode> <uid> <gid> <mtime> <size> <sha1> <name>
//
// mode in octal (permission bits, setuid, setgid, sticky), uid and gid in
// decimal, mtime as Unix seconds or seconds.nanoseconds (nine digits),
// size in bytes; sha1 is "=" when it is the name's last element (a
// Moodle filedir name). The name runs to the end of the line: the entry's
// name as a tar header would carry it (a directory's ends with "/"), of
// printable ASCII.
const (
	PoolPAXListing     = "MBK.pool.listing"
	PoolListingVersion = "1"
	PoolListingName    = ".mbk-pool-listing"
	// PoolListingMax bounds one listing entry's data; a writer starts
	// another entry well before it.
	PoolListingMax = 4 << 20
)

// ListEntry is one line of a pool listing.
type ListEntry struct {
	Dir      bool
	Name     string
	Mode     int64
	UID, GID int
	ModTime  time.Time
	Size     int64  // a file's
	SHA1     string // a file's blob
}

// Listable says whether e can be a line: a name of printable ASCII (no
// newline), a time after 1970, ids and mode in range, and for a file a
// hash of 40 lower-case hex digits and a size.
func Listable(e *ListEntry) bool {
	if e.Name == "" || e.Mode < 0 || e.Mode > 0o7777 || e.UID < 0 || e.GID < 0 || e.UID > 1<<31-1 || e.GID > 1<<31-1 || e.ModTime.Unix() < 0 {
		return false
	}
	for i := 0; i < len(e.Name); i++ {
		if c := e.Name[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return e.Dir || (e.Size >= 0 && HexSHA1(e.SHA1))
}

// HexSHA1 says whether s is a SHA-1 as Moodle names filedir's files: 40
// lower-case hex digits.
func HexSHA1(s string) bool {
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

// AppendListEntry appends e's line to b; Listable(e) must hold.
func AppendListEntry(b []byte, e *ListEntry) []byte {
	if e.Dir {
		b = append(b, 'd', ' ')
	} else {
		b = append(b, 'f', ' ')
	}
	b = strconv.AppendInt(b, e.Mode, 8)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.ModTime.Unix(), 10)
	if ns := e.ModTime.Nanosecond(); ns != 0 {
		var d [10]byte
		d[0] = '.'
		for i := 9; i >= 1; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		b = append(b, d[:]...)
	}
	b = append(b, ' ')
	if !e.Dir {
		b = strconv.AppendInt(b, e.Size, 10)
		b = append(b, ' ')
		if e.SHA1 == lastElem(e.Name) {
			b = append(b, '=')
		} else {
			b = append(b, e.SHA1...)
		}
		b = append(b, ' ')
	}
	b = append(b, e.Name...)
	return append(b, '\n')
}

func lastElem(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// ParseListing calls fn with each line of a listing entry's data, in
// order, and stops at fn's first error. A line that is not what
// AppendListEntry writes is an error naming it by its number.
func ParseListing(data []byte, fn func(*ListEntry) error) error {
	var e ListEntry
	var canon []byte
	for n := 1; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return fmt.Errorf("pool listing line %d: no end of line", n)
		}
		line := data[:i+1]
		data = data[i+1:]
		if err := parseListLine(line[:i], &e); err != nil {
			return fmt.Errorf("pool listing line %d: %w", n, err)
		}
		// One way to write each entry: a line AppendListEntry would not
		// write (a leading zero or sign, a "=" where the hash is written
		// out) is refused rather than read some other way.
		if canon = AppendListEntry(canon[:0], &e); !bytes.Equal(canon, line) {
			return fmt.Errorf("pool listing line %d: not in its one written form", n)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

func parseListLine(line []byte, e *ListEntry) error {
	field := func() (string, bool) {
		i := bytes.IndexByte(line, ' ')
		if i <= 0 {
			return "", false
		}
		f := string(line[:i])
		line = line[i+1:]
		return f, true
	}
	kind, ok := field()
	if !ok || (kind != "d" && kind != "f") {
		return fmt.Errorf("not a directory or file line")
	}
	*e = ListEntry{Dir: kind == "d"}
	mode, ok1 := field()
	uid, ok2 := field()
	gid, ok3 := field()
	mtime, ok4 := field()
	if !(ok1 && ok2 && ok3 && ok4) {
		return fmt.Errorf("fields missing")
	}
	var err error
	if e.Mode, err = strconv.ParseInt(mode, 8, 64); err != nil {
		return fmt.Errorf("mode %q", mode)
	}
	u, err1 := strconv.ParseInt(uid, 10, 64)
	g, err2 := strconv.ParseInt(gid, 10, 64)
	if err1 != nil || err2 != nil || u > 1<<31-1 || g > 1<<31-1 {
		return fmt.Errorf("owner %q:%q", uid, gid)
	}
	e.UID, e.GID = int(u), int(g)
	sec, frac, dot := bytes.Cut([]byte(mtime), []byte{'.'})
	s, err := strconv.ParseInt(string(sec), 10, 64)
	if err != nil || (dot && len(frac) != 9) {
		return fmt.Errorf("mtime %q", mtime)
	}
	var ns int64
	if dot {
		if ns, err = strconv.ParseInt(string(frac), 10, 64); err != nil || ns == 0 {
			return fmt.Errorf("mtime %q", mtime)
		}
	}
	e.ModTime = time.Unix(s, ns)
	if !e.Dir {
		size, ok1 := field()
		sum, ok2 := field()
		if !(ok1 && ok2) {
			return fmt.Errorf("size or hash missing")
		}
		if e.Size, err = strconv.ParseInt(size, 10, 64); err != nil {
			return fmt.Errorf("size %q", size)
		}
		e.SHA1 = sum
		if sum == "=" {
			e.SHA1 = lastElem(string(line))
		}
	}
	e.Name = string(line)
	if !Listable(e) {
		return fmt.Errorf("entry %q: out of range", e.Name)
	}
	return nil
}

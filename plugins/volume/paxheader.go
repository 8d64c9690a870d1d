package main

import (
	"archive/tar"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/mbk-backup/mbk/core/spec"
)

// A backup writes a header and no data for every directory (and an
// unchanged pooled night, in the PAX form, for every pooled file: 25,000
// headers on the medium bench site, where tar.Writer's general
// WriteHeader, with which formats it may use, which fields need PAX
// records and a map of them sorted, was the plugin's largest cost after
// the walk). appendPAXHeader writes the same bytes for such headers, and
// writeHeader hands every other header to tar.Writer.
// TestPAXHeaderAsTarWriter and FuzzPAXHeader hold the two to the same
// bytes. In a pooled backup, filedir's and trashdir's directories and the
// pooled files are lines of the pool listing instead (archive.go), unless
// a line cannot hold them.

// writeHeader writes h, an entry of the PAX format, as tar.Writer would.
func (a *archiveWriter) writeHeader(h *tar.Header) error {
	return a.writeHeaderRecs(h, nil)
}

// writeHeaderRecs writes h with recs (key, value) among its PAX records,
// as tar.Writer would write h with them added to h.PAXRecords: a pooled
// entry's records, without a map made for each. h is not kept.
func (a *archiveWriter) writeHeaderRecs(h *tar.Header, recs [][2]string) error {
	if _, area := pooledArea(h.Name); area && a.pool != nil && h.Typeflag == tar.TypeDir && len(recs) == 0 &&
		len(h.PAXRecords) == 0 && plainPAX(h, nil) {
		// A directory of a pooled area: a line of the listing.
		e := spec.ListEntry{Dir: true, Name: h.Name, Mode: h.Mode, UID: h.Uid, GID: h.Gid, ModTime: h.ModTime}
		if listed, err := a.list(&e); listed || err != nil {
			return err
		}
	}
	if !plainPAX(h, recs) {
		full := *h
		if len(recs) > 0 {
			full.PAXRecords = make(map[string]string, len(h.PAXRecords)+len(recs))
			for k, v := range h.PAXRecords {
				full.PAXRecords[k] = v
			}
			for _, r := range recs {
				full.PAXRecords[r[0]] = r[1]
			}
		}
		return a.WriteHeader(&full)
	}
	// The previous entry's padding, which tar.Writer owes; with no data
	// to follow, tar.Writer's own state stays right for the next entry.
	if err := a.Flush(); err != nil {
		return err
	}
	a.hdr = appendPAXHeader(a.hdr[:0], h, recs)
	_, err := a.under.Write(a.hdr)
	return err
}

const blockSize = 512

// Limits of the ustar fields appendPAXHeader fills (octal digits, less the
// terminating NUL).
const (
	maxOctal7  = 1<<21 - 1 // mode, uid, gid: 8-byte fields
	maxOctal11 = 1<<33 - 1 // size, mtime: 12-byte fields
)

// plainPAX says whether h (with recs) is one appendPAXHeader writes: a
// file or a directory with no data, a short ASCII name, small ids, no
// user or group names, no link, a time after 1970 that fits the ustar
// field, and records of mbk's own, each once.
func plainPAX(h *tar.Header, recs [][2]string) bool {
	if h.Format != tar.FormatPAX || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir) ||
		h.Size != 0 || h.Linkname != "" || h.Uname != "" || h.Gname != "" || h.Devmajor != 0 || h.Devminor != 0 ||
		!h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Xattrs != nil ||
		h.Mode < 0 || h.Mode > maxOctal7 || h.Uid < 0 || h.Uid > maxOctal7 || h.Gid < 0 || h.Gid > maxOctal7 {
		return false
	}
	if len(h.Name) == 0 || len(h.Name) > 100 || !plainString(h.Name) ||
		(h.Typeflag == tar.TypeReg && h.Name[len(h.Name)-1] == '/') { // tar.Writer refuses it
		return false
	}
	if sec := h.ModTime.Unix(); h.ModTime.IsZero() || sec < 0 || sec > maxOctal11 {
		return false
	}
	for k, v := range h.PAXRecords {
		if k != paxPoolSHA1 && k != paxPoolSize || !plainString(v) {
			return false
		}
	}
	for i, r := range recs {
		if r[0] != paxPoolSHA1 && r[0] != paxPoolSize || !plainString(r[1]) {
			return false
		}
		if _, dup := h.PAXRecords[r[0]]; dup {
			return false
		}
		for _, o := range recs[:i] {
			if o[0] == r[0] {
				return false
			}
		}
	}
	return true
}

// plainString: printable ASCII, no NUL.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// appendPAXHeader appends h's header, with extra among its records, as
// tar.Writer writes it in the PAX format: an extended header holding the
// records (mbk's and a nanosecond mtime) when there are any, then the
// ustar block. plainPAX(h, extra) must hold.
func appendPAXHeader(b []byte, h *tar.Header, extra [][2]string) []byte {
	var recs [3][2]string
	n := 0
	for k, v := range h.PAXRecords {
		recs[n] = [2]string{k, v}
		n++
	}
	for _, r := range extra {
		recs[n] = r
		n++
	}
	if ns := h.ModTime.Nanosecond(); ns != 0 {
		recs[n] = [2]string{"mtime", paxTime(h.ModTime.Unix(), ns)}
		n++
	}
	if n > 0 {
		slices.SortFunc(recs[:n], func(x, y [2]string) int { return strings.Compare(x[0], y[0]) })
		size := 0
		for _, r := range recs[:n] {
			size += paxRecordLen(r[0], r[1])
		}
		start := len(b)
		b = append(b, make([]byte, blockSize)...)
		blk := b[start:]
		putPAXHeaderName(blk, h.Name)
		octal(blk[100:108], 0)
		octal(blk[108:116], 0)
		octal(blk[116:124], 0)
		octal(blk[124:136], int64(size))
		octal(blk[136:148], 0)
		blk[156] = tar.TypeXHeader
		ustar(blk)
		for _, r := range recs[:n] {
			l := paxRecordLen(r[0], r[1])
			b = strconv.AppendInt(b, int64(l), 10)
			b = append(b, ' ')
			b = append(b, r[0]...)
			b = append(b, '=')
			b = append(b, r[1]...)
			b = append(b, '\n')
		}
		if pad := (blockSize - size%blockSize) % blockSize; pad > 0 {
			b = append(b, make([]byte, pad)...)
		}
	}
	start := len(b)
	b = append(b, make([]byte, blockSize)...)
	blk := b[start:]
	copy(blk, h.Name)
	octal(blk[100:108], h.Mode)
	octal(blk[108:116], int64(h.Uid))
	octal(blk[116:124], int64(h.Gid))
	octal(blk[124:136], 0)
	octal(blk[136:148], h.ModTime.Unix())
	blk[156] = h.Typeflag
	octal(blk[329:337], 0) // devmajor
	octal(blk[337:345], 0) // devminor
	ustar(blk)
	return b
}

// putPAXHeaderName writes into blk the name tar.Writer gives the extended
// header of an entry named name: path.Join(dir, "PaxHeaders.0", file), cut
// to 100 bytes and without a trailing slash. A clean name (what a walk
// makes) is joined in place, without path.Join's copy; any other goes
// through it.
func putPAXHeaderName(blk []byte, name string) {
	dir, file := path.Split(name)
	f := blk[:100]
	n := 0
	if t := strings.TrimSuffix(name, "/"); t != "" && t[0] != '/' && t != "." && t != ".." && !strings.HasSuffix(t, "/..") && path.Clean(t) == t {
		n = copy(f, dir)
		n += copy(f[n:], "PaxHeaders.0")
		if file != "" && n < len(f) {
			f[n] = '/'
			n++
			n += copy(f[n:], file)
		}
	} else {
		n = copy(f, path.Join(dir, "PaxHeaders.0", file))
	}
	for n > 0 && f[n-1] == '/' {
		n--
		f[n] = 0
	}
}

// ustar sets a block's magic and version and then its checksum.
func ustar(blk []byte) {
	copy(blk[257:263], "ustar\x00")
	copy(blk[263:265], "00")
	sum := int64(0)
	for i, c := range blk[:blockSize] {
		if 148 <= i && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	octal(blk[148:155], sum)
	blk[155] = ' '
}

// octal fills a field with x in zero-padded octal and a NUL.
func octal(f []byte, x int64) {
	for i := len(f) - 2; i >= 0; i-- {
		f[i] = byte('0' + x&7)
		x >>= 3
	}
	f[len(f)-1] = 0
}

// paxRecordLen is the length of the record "<len> k=v\n", its own digits
// included.
func paxRecordLen(k, v string) int {
	size := len(k) + len(v) + 3
	size += len(strconv.Itoa(size))
	if l := len(strconv.Itoa(size)) + len(k) + len(v) + 3; l != size {
		size = l
	}
	return size
}

// paxTime is a PAX time of sec and ns > 0, trailing zeros dropped.
func paxTime(sec int64, ns int) string {
	b := strconv.AppendInt(make([]byte, 0, 32), sec, 10)
	b = append(b, '.')
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + ns%10)
		ns /= 10
	}
	end := 9
	for end > 0 && digits[end-1] == '0' {
		end--
	}
	return string(append(b, digits[:end]...))
}

package main

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// viaTarWriter is the stream tar.Writer writes for hs, a file of data
// after each third header.
func viaTarWriter(t testing.TB, hs []*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, h := range hs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar.Writer: %v", err)
		}
		if i%3 == 2 {
			writeDataEntry(t, tw, i)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// viaWriteHeader is the same stream through archiveWriter.writeHeader,
// every other header's pool records given apart (writeHeaderRecs, as
// writePooled does).
func viaWriteHeader(t testing.TB, hs []*tar.Header) []byte {
	var buf bytes.Buffer
	aw := newArchiveWriter(&buf)
	for i, h := range hs {
		var recs [][2]string
		if i%2 == 1 {
			h, recs = splitPoolRecords(h)
		}
		if err := aw.writeHeaderRecs(h, recs); err != nil {
			t.Fatalf("writeHeader: %v", err)
		}
		if i%3 == 2 {
			writeDataEntry(t, aw.Writer, i)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// splitPoolRecords is h without its pool records, and those records.
func splitPoolRecords(h *tar.Header) (*tar.Header, [][2]string) {
	if h.PAXRecords == nil {
		return h, nil
	}
	c := *h
	c.PAXRecords = map[string]string{}
	var recs [][2]string
	for k, v := range h.PAXRecords {
		if k == paxPoolSHA1 || k == paxPoolSize {
			recs = append(recs, [2]string{k, v})
		} else {
			c.PAXRecords[k] = v
		}
	}
	return &c, recs
}

// writeDataEntry writes an entry of i+1 bytes of data, so that the next
// header follows padding tar.Writer owes.
func writeDataEntry(t testing.TB, tw *tar.Writer, i int) {
	data := bytes.Repeat([]byte{'d'}, i+1)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "data/" + strconv.Itoa(i), Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1e9, 5), Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
}

// randomHeader is a header of the kind an unchanged pooled night writes,
// at the edges of what appendPAXHeader takes (names of 100 characters,
// the largest ids and times, records whose length gains a digit, times
// whose nanoseconds end in zeros) and past them (long, non-ASCII and
// control-character names, big ids, old times, links, data).
func randomHeader(r *rand.Rand) *tar.Header {
	const chars = "abcdef0123456789._-/"
	n := []int{1, 2, 40, 57, 99, 100, 101, 150}[r.IntN(8)]
	if r.IntN(2) == 0 {
		n = 1 + r.IntN(100)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	name := strings.TrimLeft(string(b), "/")
	if name == "" {
		name = "x"
	}
	switch r.IntN(20) {
	case 0:
		name += "é"
	case 1:
		name += "\t"
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Format: tar.FormatPAX,
		Mode: int64([]int{0o640, 0o755, 0o7777, 0, r.IntN(1 << 21)}[r.IntN(5)]),
		Uid:  []int{0, 33, 65534, maxOctal7, maxOctal7 + 1, r.IntN(1 << 22)}[r.IntN(6)],
		Gid:  []int{0, 33, 65534, maxOctal7, r.IntN(1 << 21)}[r.IntN(5)],
	}
	if r.IntN(3) == 0 {
		h.Typeflag = tar.TypeDir
		h.Name = strings.TrimRight(h.Name, "/") + "/"
	} else if h.Name = strings.TrimRight(h.Name, "/"); h.Name == "" {
		h.Name = "y"
	}
	sec := []int64{0, 1, 1e9, 1796000000, maxOctal11, maxOctal11 + 1, -1, r.Int64N(maxOctal11)}[r.IntN(8)]
	ns := []int{0, 1, 5000, 100000000, 999999999, r.IntN(1e9)}[r.IntN(6)]
	h.ModTime = time.Unix(sec, int64(ns))
	if h.Typeflag == tar.TypeReg && r.IntN(3) > 0 {
		sha := make([]byte, 40)
		for i := range sha {
			sha[i] = "0123456789abcdef"[r.IntN(16)]
		}
		h.PAXRecords = map[string]string{paxPoolSHA1: string(sha), paxPoolSize: strconv.FormatInt(r.Int64N(1<<r.IntN(63)), 10)}
		if r.IntN(10) == 0 {
			h.PAXRecords["other.key"] = "v"
		}
	}
	switch r.IntN(30) {
	case 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, "target"
	case 1:
		h.Uname = "www-data"
	}
	return h
}

// writeHeader writes what tar.Writer writes, byte for byte, for headers
// it writes itself and for those it hands to tar.Writer, between entries
// with data.
func TestPAXHeaderAsTarWriter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for round := range 200 {
		hs := make([]*tar.Header, 50)
		for i := range hs {
			hs[i] = randomHeader(r)
			if plainPAX(hs[i], nil) {
				fast++
			}
		}
		want, got := viaTarWriter(t, hs), viaWriteHeader(t, hs)
		if !bytes.Equal(got, want) {
			for i := range hs {
				one := []*tar.Header{hs[i]}
				if w, g := viaTarWriter(t, one), viaWriteHeader(t, one); !bytes.Equal(g, w) {
					t.Fatalf("round %d: header %+v:\nwriteHeader %q\ntar.Writer  %q", round, hs[i], g, w)
				}
			}
			t.Fatalf("round %d: the streams differ", round)
		}
	}
	// What tar.Writer refuses, writeHeader refuses.
	bad := &tar.Header{Typeflag: tar.TypeReg, Name: "a/", Format: tar.FormatPAX, ModTime: time.Unix(1, 0)}
	if err := newArchiveWriter(io.Discard).writeHeader(bad); err == nil {
		t.Error("writeHeader wrote a file named with a trailing slash")
	}
	// Most headers take the short way, and some do not.
	if fast < 2000 || fast > 9000 {
		t.Errorf("%d of 10,000 headers written by appendPAXHeader", fast)
	}
}

func FuzzPAXHeader(f *testing.F) {
	f.Add("filedir/ab/cd/0123456789abcdef0123456789abcdef01234567", false, int64(0o640), 33, 33, int64(1796000000), 123456789, "0123456789abcdef0123456789abcdef01234567", "1234")
	f.Add("filedir/ab/", true, int64(0o750), 0, 0, int64(0), 0, "", "")
	f.Add(strings.Repeat("a", 100), false, int64(0o7777), maxOctal7, maxOctal7, int64(maxOctal11), 100, "x", strings.Repeat("9", 56))
	f.Fuzz(func(t *testing.T, name string, dir bool, mode int64, uid, gid int, sec int64, ns int, sha, size string) {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: uid, Gid: gid, ModTime: time.Unix(sec, int64(ns%1e9)), Format: tar.FormatPAX}
		if dir {
			h.Typeflag = tar.TypeDir
		}
		if sha != "" {
			h.PAXRecords = map[string]string{paxPoolSHA1: sha, paxPoolSize: size}
		}
		var want bytes.Buffer
		if tar.NewWriter(&want).WriteHeader(h) != nil {
			return // tar.Writer refuses it: writeHeader hands it to tar.Writer
		}
		if !plainPAX(h, nil) {
			return
		}
		if got := appendPAXHeader(nil, h, nil); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("header %+v:\nappendPAXHeader %q\ntar.Writer      %q", h, got, want.Bytes())
		}
		if bare, recs := splitPoolRecords(h); !plainPAX(bare, recs) {
			t.Fatalf("header %+v: plain with its records, not with them apart", h)
		} else if got := appendPAXHeader(nil, bare, recs); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("header %+v, records apart:\nappendPAXHeader %q\ntar.Writer      %q", h, got, want.Bytes())
		}
	})
}

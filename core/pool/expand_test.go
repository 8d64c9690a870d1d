package pool

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/spec"
)

// entry is a tar entry as a test builds it: data in the stream, or pooled.
type entry struct {
	h      tar.Header
	data   []byte
	pooled bool
}

// archives writes es twice: as the plugin stores it (pooled entries without
// data, their blobs put in p) and whole, as a backup without the pool
// makes it.
func archives(t testing.TB, p *Pool, es []entry, c Codec) (stored, whole []byte) {
	return archivesAs(t, p, es, c, 0)
}

// archivesAs is archives with the stored stream's pooled files and
// filedir's directories as lines of pool listings (spec.PoolPAXListing) of
// about chunk bytes each, as the volume plugin writes them; 0 for the PAX
// form.
func archivesAs(t testing.TB, p *Pool, es []entry, c Codec, chunk int) (stored, whole []byte) {
	t.Helper()
	var sb, wb bytes.Buffer
	st, wt := tar.NewWriter(&sb), tar.NewWriter(&wb)
	var lines []byte
	flush := func() {
		if len(lines) == 0 {
			return
		}
		h := tar.Header{Typeflag: tar.TypeReg, Name: spec.PoolListingName, Size: int64(len(lines)), Format: tar.FormatPAX,
			PAXRecords: map[string]string{spec.PoolPAXListing: spec.PoolListingVersion, spec.PoolPAXSHA1: "listing"}}
		if err := st.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(lines); err != nil {
			t.Fatal(err)
		}
		lines = lines[:0]
	}
	for _, e := range es {
		h := e.h
		h.Format = tar.FormatPAX
		h.Size = int64(len(e.data))
		if err := wt.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Write(e.data); err != nil {
			t.Fatal(err)
		}
		var blob Blob
		if e.pooled {
			w, err := p.Put(bytes.NewReader(e.data), c)
			if err != nil {
				t.Fatal(err)
			}
			blob = w.Blob
			h.Size = 0
			h.PAXRecords = map[string]string{spec.PoolPAXSHA1: w.Blob.SHA1, spec.PoolPAXSize: strconv.FormatInt(w.Blob.Size, 10)}
		}
		if chunk > 0 && (e.pooled || h.Typeflag == tar.TypeDir && strings.HasPrefix(h.Name, "filedir/")) {
			le := spec.ListEntry{Dir: !e.pooled, Name: h.Name, Mode: h.Mode, UID: h.Uid, GID: h.Gid, ModTime: h.ModTime, Size: blob.Size, SHA1: blob.SHA1}
			lines = spec.AppendListEntry(lines, &le)
			if len(lines) >= chunk {
				flush()
			}
			continue
		}
		flush()
		if err := st.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if !e.pooled {
			if _, err := st.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	flush()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wt.Close(); err != nil {
		t.Fatal(err)
	}
	return sb.Bytes(), wb.Bytes()
}

// moodledata is a tree as the volume plugin stores it: directories, a
// symlink, files outside filedir in the stream, and filedir's files in the
// pool, small ones, empty ones and some above expandInMemory.
func moodledata(t testing.TB, files int) []entry {
	t.Helper()
	mt := time.Unix(1700000000, 123456789)
	es := []entry{
		{h: tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o2777, Uid: 33, Gid: 33, ModTime: mt}},
		{h: tar.Header{Typeflag: tar.TypeDir, Name: "lang/", Mode: 0o755, ModTime: mt}},
		{h: tar.Header{Typeflag: tar.TypeReg, Name: "lang/langconfig.php", Mode: 0o640, Uid: 33, ModTime: mt}, data: []byte("<?php $string = [];\n")},
		{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "lang/current", Linkname: "en", ModTime: mt}},
	}
	for i := range files {
		var data []byte
		switch {
		case i%97 == 5:
			data = nil // an empty file
		case i%500 == 7:
			data = make([]byte, expandInMemory+12345)
			rand.Read(data)
		default:
			data = bytes.Repeat([]byte(fmt.Sprintf("file %d ", i)), 1+i%3000)
		}
		dir := fmt.Sprintf("filedir/%02x/%02x/", i%256, i/256)
		es = append(es,
			entry{h: tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o2777, Uid: 33, Gid: 33, ModTime: mt.Add(time.Duration(i))}},
			entry{h: tar.Header{Typeflag: tar.TypeReg, Name: dir + blobOf(data).SHA1, Mode: 0o640, Uid: 33, Gid: 33, ModTime: mt.Add(time.Duration(i))}, data: data, pooled: true})
		if i == files/2 {
			// A file in the stream among the pooled ones.
			es = append(es, entry{h: tar.Header{Typeflag: tar.TypeReg, Name: "muc/config.php", Mode: 0o600, ModTime: mt}, data: bytes.Repeat([]byte("x"), 70000)})
		}
	}
	return es
}

// listing reads a tar stream as header fields and data, for comparison.
func listing(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%c %s -> %s mode %o %d:%d mtime %d size %d pax %v data %x",
			h.Typeflag, h.Name, h.Linkname, h.Mode, h.Uid, h.Gid, h.ModTime.UnixNano(), h.Size, h.PAXRecords, blobOf(data).SHA1))
	}
}

// The expanded stream is, entry for entry, the archive a backup without the
// pool makes; the stored one is read to its end.
// The codecs a blob may be stored with, each read back its own way: zstd
// and uncompressed blobs decoded in memory, gzip and encrypted ones as a
// stream.
func codecs(t testing.TB) map[string]struct {
	c   Codec
	ids []age.Identity
} {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		c   Codec
		ids []age.Identity
	}{
		"zstd":     {c: Codec{Compression: "zstd"}},
		"gzip":     {c: Codec{Compression: "gzip"}},
		"none":     {c: Codec{Compression: "none"}},
		"zstd+age": {c: Codec{Compression: "zstd", Recipients: []age.Recipient{id.Recipient()}}, ids: []age.Identity{id}},
	}
}

func TestExpandRoundTrip(t *testing.T) {
	for name, cc := range codecs(t) {
		for _, chunk := range []int{0, 4 << 10} {
			form := map[int]string{0: "pax", 4 << 10: "listing"}[chunk]
			t.Run(name+"/"+form, func(t *testing.T) { expandRoundTrip(t, name, cc.c, cc.ids, chunk) })
		}
	}
}

func expandRoundTrip(t *testing.T, name string, c Codec, ids []age.Identity, chunk int) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := 3000
	if name != "zstd" {
		files = 600 // each blob put is fsynced
	}
	stored, whole := archivesAs(t, p, moodledata(t, files), c, chunk)
	if n := bytes.Count(stored, []byte(spec.PoolPAXListing+"="+spec.PoolListingVersion)); (n > 10) != (chunk > 0) {
		t.Fatalf("the stored stream holds %d pool listings", n)
	}
	in := &wire.CountingReader{R: bytes.NewReader(append(stored, make([]byte, 10240)...))}
	var out bytes.Buffer
	if err := p.Expand(context.Background(), in, &out, ids); err != nil {
		t.Fatal(err)
	}
	want, got := listing(t, whole), listing(t, out.Bytes())
	if len(got) != len(want) {
		t.Fatalf("%d entries expanded, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if in.N != int64(len(stored))+10240 {
		t.Errorf("read %d of the stored stream's %d bytes", in.N, len(stored)+10240)
	}
	// Through the reader, read in small pieces.
	xr := p.ExpandReader(context.Background(), bytes.NewReader(stored), ids)
	b, err := io.ReadAll(io.LimitReader(iotestHalf{xr}, 1<<40))
	xr.Close()
	if err != nil || !bytes.Equal(b, out.Bytes()) {
		t.Errorf("ExpandReader gave %d bytes (%v), Expand %d", len(b), err, out.Len())
	}
}

// iotestHalf reads at most 1,000 bytes a call.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) { return h.r.Read(p[:min(len(p), 1000)]) }

// A damaged, a missing, a swapped blob and a malformed entry each fail the
// expansion with an error that names the entry (and the blob).
func TestExpandFaults(t *testing.T) {
	es := moodledata(t, 40)
	var small, big string
	for _, e := range es {
		if e.pooled && len(e.data) > 100 && len(e.data) < expandInMemory && small == "" {
			small = e.h.Name
		}
		if e.pooled && len(e.data) > expandInMemory {
			big = e.h.Name
		}
	}
	for _, codec := range []string{"zstd", "gzip", "zstd+age"} {
		cc := codecs(t)[codec]
		for _, chunk := range []int{0, 1 << 10} {
			form := map[int]string{0: "pax", 1 << 10: "listing"}[chunk]
			t.Run(codec+"/"+form, func(t *testing.T) { expandFaults(t, es, cc.c, cc.ids, small, big, chunk) })
		}
	}
}

func expandFaults(t *testing.T, es []entry, codec Codec, ids []age.Identity, small, big string, chunk int) {
	for _, c := range []struct {
		name   string
		entry  string
		damage func(t *testing.T, p *Pool, b Blob)
		want   string
	}{
		{"damaged small", small, flipByte, ErrCorrupt.Error()},
		{"damaged big", big, flipByte, ErrCorrupt.Error()},
		{"missing", small, func(t *testing.T, p *Pool, b Blob) {
			if err := os.Remove(p.Path(b)); err != nil {
				t.Fatal(err)
			}
		}, "missing from the pool"},
		{"another blob's content", small, func(t *testing.T, p *Pool, b Blob) {
			other := bytes.Repeat([]byte("another file, same size"), 1)
			other = append(other, make([]byte, int(b.Size)-len(other))...)
			w, err := p.Put(bytes.NewReader(other), codec)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p.Path(w.Blob), p.Path(b)); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt.Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := archivesAs(t, p, es, codec, chunk)
			var victim Blob
			for _, e := range es {
				if e.h.Name == c.entry {
					victim = blobOf(e.data)
				}
			}
			c.damage(t, p, victim)
			err = p.Expand(context.Background(), bytes.NewReader(stored), io.Discard, ids)
			if err == nil {
				t.Fatal("expanded")
			}
			for _, w := range []string{c.want, c.entry, victim.SHA1} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("malformed", func(t *testing.T) {
		p, _ := Open(t.TempDir())
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "filedir/aa/bb/x", Format: tar.FormatPAX,
			PAXRecords: map[string]string{spec.PoolPAXSHA1: "../../etc/passwd", spec.PoolPAXSize: "12"}})
		tw.Close()
		err := p.Expand(context.Background(), &b, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), "filedir/aa/bb/x") || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("a malformed pooled entry gave %v", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		p, _ := Open(t.TempDir())
		stored, _ := archives(t, p, moodledata(t, 600), Codec{Compression: "zstd"})
		ctx, cancel := context.WithCancel(context.Background())
		xr := p.ExpandReader(ctx, bytes.NewReader(stored), nil)
		defer xr.Close()
		if _, err := io.ReadFull(xr, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := io.Copy(io.Discard, xr); !errors.Is(err, context.Canceled) {
			t.Errorf("after cancel, the stream ended with %v", err)
		}
	})
}

// A pool listing that is not what the plugin writes fails the expansion,
// naming the listing and the line; so does one of a later version. An mbk
// older than listings (entryBlob alone) refuses one as a malformed pooled
// entry rather than restoring it as a file.
func TestExpandListingFaults(t *testing.T) {
	sha := blobOf([]byte("x")).SHA1
	listingEntry := func(version string, typeflag byte, data string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		h := tar.Header{Typeflag: typeflag, Name: spec.PoolListingName, Size: int64(len(data)), Format: tar.FormatPAX,
			PAXRecords: map[string]string{spec.PoolPAXListing: version, spec.PoolPAXSHA1: "listing"}}
		if typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if typeflag == tar.TypeReg {
			tw.Write([]byte(data))
		}
		tw.Close()
		return b.Bytes()
	}
	good := "d 755 0 0 1 filedir/\n"
	for _, c := range []struct {
		name   string
		stream []byte
		want   []string
	}{
		{"later version", listingEntry("2", tar.TypeReg, good), []string{spec.PoolListingName, `version "2"`}},
		{"not a file", listingEntry("1", tar.TypeDir, ""), []string{spec.PoolListingName, "malformed"}},
		{"bad line", listingEntry("1", tar.TypeReg, good+"q 755 0 0 1 x\n"), []string{spec.PoolListingName, "line 2"}},
		{"bad hash", listingEntry("1", tar.TypeReg, "f 640 0 0 1 1 "+strings.ToUpper(sha)+" filedir/x\n"), []string{spec.PoolListingName, "line 1"}},
		{"cut short", listingEntry("1", tar.TypeReg, good)[:512+512+512+10], []string{spec.PoolListingName}},
		{"missing blob", listingEntry("1", tar.TypeReg, good+"f 640 0 0 1 1 "+sha+" filedir/x\n"), []string{"filedir/x", sha, "missing from the pool"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, _ := Open(t.TempDir())
			err := p.Expand(context.Background(), bytes.NewReader(c.stream), io.Discard, nil)
			if err == nil {
				t.Fatal("expanded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	tr := tar.NewReader(bytes.NewReader(listingEntry("1", tar.TypeReg, good)))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := entryBlob(h); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("the PAX form's reading of a listing entry: %v, want it refused as malformed", err)
	}
}

func flipByte(t *testing.T, p *Pool, b Blob) {
	raw, err := os.ReadFile(p.Path(b))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-3] ^= 0xff
	if err := os.WriteFile(p.Path(b), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkExpand expands an archive of 2,000 pooled files of 2-60 KB (and
// a few of a megabyte) from a pool on disk: the restore's cost of the pool.
func BenchmarkExpand(b *testing.B) {
	p, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	stored, whole := archives(b, p, moodledata(b, 2000), Codec{Compression: "zstd"})
	b.SetBytes(int64(len(whole)))
	b.ResetTimer()
	for range b.N {
		if err := p.Expand(context.Background(), bytes.NewReader(stored), io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "files/s")
}

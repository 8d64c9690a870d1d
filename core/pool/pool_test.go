package pool

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/sys/unix"
)

func blobOf(b []byte) Blob {
	h := sha1.Sum(b)
	return Blob{SHA1: hex.EncodeToString(h[:]), Size: int64(len(b))}
}

// Each codec, plain and encrypted: a put blob is found by name and size and
// reads back byte for byte.
func TestPutOpenRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("moodle file content "), 5000)
	for _, comp := range []string{"gzip", "zstd", "none"} {
		for _, enc := range []bool{false, true} {
			root := t.TempDir()
			p, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			c := Codec{Compression: comp}
			var ids []age.Identity
			if enc {
				c.Recipients = []age.Recipient{id.Recipient()}
				ids = []age.Identity{id}
			}
			want := blobOf(data)
			if p.Has(want) {
				t.Fatalf("%s: an empty pool has %s", comp, want)
			}
			w, err := p.Put(bytes.NewReader(data), c)
			if err != nil {
				t.Fatal(err)
			}
			if w.Blob != want || w.Stored == 0 {
				t.Fatalf("%s: put %+v, want %s stored", comp, w, want)
			}
			if !p.Has(want) {
				t.Fatalf("%s: the pool lacks what was put", comp)
			}
			if p.Has(Blob{SHA1: want.SHA1, Size: want.Size + 1}) {
				t.Fatalf("%s: a blob of another size passes for it", comp)
			}
			raw, _ := os.ReadFile(p.Path(want))
			if enc && bytes.Contains(raw, []byte("moodle file")) {
				t.Fatalf("%s: an encrypted blob holds plain text", comp)
			}
			if comp != "none" && int64(len(raw)) >= want.Size {
				t.Fatalf("%s: stored %d bytes for %d", comp, len(raw), want.Size)
			}
			rc, err := p.OpenBlob(want, ids)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s enc=%v: read back %d bytes, err %v", comp, enc, len(got), err)
			}
			if again, _ := p.Put(bytes.NewReader(data), c); again.Stored != 0 {
				t.Fatalf("%s: the same content was stored twice", comp)
			}
			if v, _ := os.ReadFile(filepath.Join(root, Dir, "VERSION")); strings.TrimSpace(string(v)) != "1" {
				t.Fatalf("VERSION holds %q", v)
			}
		}
	}
}

// A blob whose stored bytes were changed fails when read: the hash is
// checked at the end of every read.
func TestCorruptBlobFailsRead(t *testing.T) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("the original content of a file")
	w, err := p.Put(bytes.NewReader(data), Codec{Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p.Path(w.Blob))
	raw[len(raw)-1] ^= 1
	if err := os.WriteFile(p.Path(w.Blob), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := p.OpenBlob(w.Blob, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a changed blob gave %v, want ErrCorrupt", err)
	}
}

// Sweep deletes exactly the blobs not kept, and temporary leftovers.
func TestSweepKeepsReferenced(t *testing.T) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var all []Blob
	for i := range 20 {
		w, err := p.Put(strings.NewReader(strings.Repeat("x", i+1)), Codec{Compression: "gzip"})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, w.Blob)
	}
	os.WriteFile(filepath.Join(p.DirPath(), tmpDir, "blob-leftover"), []byte("half"), 0o600)
	s, err := p.Sweep(func(add func(Blob)) error {
		for _, b := range all[:7] {
			add(b)
		}
		add(Blob{SHA1: strings.Repeat("ab", 20), Size: 3}) // no such blob: nothing to keep
		return nil
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Blobs != 13 || s.Kept != 7 {
		t.Fatalf("swept %+v, want 13 removed and 7 kept", s)
	}
	for i, b := range all {
		if p.Has(b) != (i < 7) {
			t.Fatalf("blob %d: has=%v after the sweep", i, p.Has(b))
		}
	}
	if left, _ := os.ReadDir(filepath.Join(p.DirPath(), tmpDir)); len(left) != 0 {
		t.Fatalf("the sweep left %d temporary files", len(left))
	}
}

// A pool of a later format is refused with the version in the message.
func TestLaterVersionRefused(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, Dir), 0o700)
	os.WriteFile(filepath.Join(root, Dir, "VERSION"), []byte("2\n"), 0o600)
	if _, err := Open(root); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("a format-2 pool opened: %v", err)
	}
}

// RefsParser reads POOL_REFS however the download cuts it, and refuses a
// bad line naming it.
func TestRefsParser(t *testing.T) {
	content := "da39a3ee5e6b4b0d3255bfef95601890afd80709 0\n" + strings.Repeat("a", 40) + " 12\n" + strings.Repeat("b", 40) + " 7"
	for _, step := range []int{1, 3, 17, len(content)} {
		var got []Blob
		rp := NewRefsParser("set/POOL_REFS", func(b Blob) { got = append(got, b) })
		for i := 0; i < len(content); i += step {
			if _, err := rp.Write([]byte(content[i:min(i+step, len(content))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := rp.Close(); err != nil || len(got) != 3 || got[1].Size != 12 || got[2].SHA1 != strings.Repeat("b", 40) {
			t.Fatalf("step %d: %v, %v", step, got, err)
		}
	}
	rp := NewRefsParser("set/POOL_REFS", func(Blob) {})
	rp.Write([]byte("da39a3ee5e6b4b0d3255bfef95601890afd80709 0\nnot a ref\n"))
	if err := rp.Close(); err == nil || !strings.Contains(err.Error(), "set/POOL_REFS line 2") {
		t.Fatalf("a bad line gave %v", err)
	}
}

// A Batch's blobs are in the pool, whole and readable, once it is closed;
// before that they may sit in temporary files, where Has still sees them
// and a second put of the same content stores nothing. Discard leaves no
// temporary file behind.
func TestBatch(t *testing.T) {
	// Both ways of making blobs durable, whatever this machine's file
	// system: one syncfs a batch, or an fsync a file and a directory.
	for _, whole := range []bool{true, false} {
		t.Run(map[bool]string{true: "syncfs", false: "fsync"}[whole], func(t *testing.T) { testBatch(t, whole) })
	}
	// NewBatch takes syncfs where the file system's syncfs writes out all.
	dir := t.TempDir()
	p, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	local := st.Type == unix.EXT4_SUPER_MAGIC || st.Type == unix.TMPFS_MAGIC || st.Type == unix.XFS_SUPER_MAGIC || st.Type == unix.BTRFS_SUPER_MAGIC
	if got := p.NewBatch().wholeFS; got != local {
		t.Errorf("on a file system of type %#x, NewBatch chose syncfs: %v", st.Type, got)
	}
}

func testBatch(t *testing.T, whole bool) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newBatch := func() *Batch {
		b := p.NewBatch()
		b.wholeFS = whole
		return b
	}
	batch := newBatch()
	var blobs []Blob
	for i := range batchBlobs + 10 {
		data := bytes.Repeat([]byte(fmt.Sprintf("blob %d ", i)), 100+i)
		w, err := batch.Put(bytes.NewReader(data), Codec{Compression: "zstd"})
		if err != nil {
			t.Fatal(err)
		}
		if w.Blob != blobOf(data) || w.Stored == 0 {
			t.Fatalf("put %d: %+v", i, w)
		}
		if !batch.Has(w.Blob) {
			t.Fatalf("the batch does not have blob %d it was given", i)
		}
		blobs = append(blobs, w.Blob)
	}
	// The first batchBlobs were flushed when the batch filled; the last 10
	// wait in temporary files.
	if !p.Has(blobs[0]) || p.Has(blobs[len(blobs)-1]) {
		t.Errorf("before Close: first in the pool %v, last %v; want true, false", p.Has(blobs[0]), p.Has(blobs[len(blobs)-1]))
	}
	again := bytes.Repeat([]byte(fmt.Sprintf("blob %d ", batchBlobs+9)), 100+batchBlobs+9)
	if w, err := batch.Put(bytes.NewReader(again), Codec{Compression: "zstd"}); err != nil || w.Stored != 0 {
		t.Errorf("a second put of a pending blob stored %d bytes (%v)", w.Stored, err)
	}
	if err := batch.Close(); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		rc, err := p.OpenBlob(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("blob %s: %v", b, err)
		}
		rc.Close()
	}
	if tmps, _ := os.ReadDir(filepath.Join(p.DirPath(), tmpDir)); len(tmps) != 0 {
		t.Errorf("%d temporary files left after Close", len(tmps))
	}

	failed := newBatch()
	for i := range 5 {
		if _, err := failed.Put(strings.NewReader(fmt.Sprintf("never committed %d", i)), Codec{}); err != nil {
			t.Fatal(err)
		}
	}
	failed.Discard()
	if tmps, _ := os.ReadDir(filepath.Join(p.DirPath(), tmpDir)); len(tmps) != 0 {
		t.Errorf("%d temporary files left after Discard", len(tmps))
	}
	if p.Has(blobOf([]byte("never committed 0"))) {
		t.Error("a discarded blob is in the pool")
	}

	// A flush that fails (here: its temporary file gone before the sync)
	// fails Close, and leaves nothing under the blob's name.
	broken := newBatch()
	w, err := broken.Put(strings.NewReader("lost before its sync"), Codec{})
	if err != nil {
		t.Fatal(err)
	}
	tmps, _ := os.ReadDir(filepath.Join(p.DirPath(), tmpDir))
	for _, e := range tmps {
		os.Remove(filepath.Join(p.DirPath(), tmpDir, e.Name()))
	}
	if err := broken.Close(); err == nil || !strings.Contains(err.Error(), "pool:") {
		t.Errorf("Close after a failed flush: %v", err)
	}
	if p.Has(w.Blob) {
		t.Error("a blob whose flush failed is in the pool")
	}
}

// HasAll answers as Has does, blob by blob: blobs in the pool, blobs a
// batch put and has not flushed, blobs missing, one of another size, and
// a directory where a blob's file would be. With the pool's directory
// gone, every answer is no.
func TestBatchHasAll(t *testing.T) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	batch := p.NewBatch()
	var bls []Blob
	for i := range batchBlobs + 3 { // the last 3 wait in temporary files
		w, err := batch.Put(strings.NewReader(fmt.Sprintf("blob %d", i)), Codec{Compression: "zstd"})
		if err != nil {
			t.Fatal(err)
		}
		bls = append(bls, w.Blob)
	}
	gone := blobOf([]byte("never put"))
	dir := blobOf([]byte("a directory"))
	if err := os.MkdirAll(p.Path(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	bls = append(bls, gone, dir, Blob{SHA1: bls[0].SHA1, Size: bls[0].Size + 1})
	want := []bool{}
	for i, bl := range bls {
		want = append(want, i < batchBlobs+3)
		if string(bl.appendRel(nil)) != bl.Rel() {
			t.Fatalf("appendRel %q, Rel %q", bl.appendRel(nil), bl.Rel())
		}
		if batch.Has(bl) != want[i] {
			t.Fatalf("Has(%s) = %v, want %v", bl, !want[i], want[i])
		}
	}
	for _, workers := range []int{1, 4} {
		out := make([]bool, len(bls))
		batch.HasAll(bls, out, workers)
		for i := range bls {
			if out[i] != want[i] {
				t.Errorf("%d workers: HasAll said %v for blob %d (%s), want %v", workers, out[i], i, bls[i], want[i])
			}
		}
	}
	batch.Discard()
	if err := os.RemoveAll(p.dir); err != nil {
		t.Fatal(err)
	}
	out := make([]bool, len(bls))
	batch.HasAll(bls[:batchBlobs], out, 4)
	for i := range batchBlobs {
		if out[i] {
			t.Fatalf("with the pool's directory gone, HasAll still has blob %d", i)
		}
	}
}

package stream

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteBehind: every byte lands in order, and writeback was started as
// the bytes came: less than 8 MiB is left for the fsync (the filesystem under
// the test's temp dir accepts sync_file_range).
func TestWriteBehind(t *testing.T) {
	data := make([]byte, 2*writeBehindEvery+12345)
	rand.NewChaCha8([32]byte{7}).Read(data)
	path := filepath.Join(t.TempDir(), "a")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &writeBehind{f: f}
	for rest, i := data, 0; len(rest) > 0; i++ {
		n := min(len(rest), 1+(i*104729)%(3<<20))
		if m, err := w.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if w.off {
		t.Fatal("sync_file_range was refused")
	}
	if w.written != int64(len(data)) || w.written-w.started >= writeBehindEvery {
		t.Errorf("writeback started for %d of %d bytes, want all but less than %d", w.started, w.written, writeBehindEvery)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file differs from what was written")
	}
}

// TestWriteBehindRefused: where sync_file_range is refused (here a pipe,
// which it cannot sync), writing goes on as before and it is not asked again.
func TestWriteBehindRefused(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	data := make([]byte, writeBehindEvery+1)
	rand.NewChaCha8([32]byte{8}).Read(data)
	wb := &writeBehind{f: w}
	if n, err := wb.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !wb.off {
		t.Error("sync_file_range on a pipe was not refused, or the refusal was not kept")
	}
	if n, err := wb.Write(data[:10]); err != nil || n != 10 {
		t.Fatalf("Write after the refusal = %d, %v", n, err)
	}
	w.Close()
	if b := <-got; !bytes.Equal(b, append(data, data[:10]...)) {
		t.Error("the bytes differ from what was written")
	}
}

package stream

import (
	"bytes"
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

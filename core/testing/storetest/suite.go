package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Harness is what Conformance needs to know about one store plugin and the
// server behind it.
type Harness struct {
	Storer sdk.Storer
	// Config points at an empty place on the server.
	Config sdk.Config
	// Deleted returns, oldest first, the names of the files the server was
	// asked to delete: "set/file".
	Deleted func(t *testing.T) []string
	// Leftovers returns what unfinished uploads left on the server (pending
	// multipart uploads, temporary files): "set/what".
	Leftovers func(t *testing.T) []string
	// MaxHeap is how far the heap may rise while a LargeFile is uploaded.
	MaxHeap uint64
}

// LargeFile is the size of the file the memory test uploads.
const LargeFile = 50 << 20

// Conformance runs the behaviour every store plugin owes the core against a
// real server: files round-trip byte for byte, a set is complete only with
// its manifest, Delete takes the manifest first, memory stays bounded, and
// an upload that fails or is cancelled leaves no file under its name.
func Conformance(t *testing.T, h Harness) {
	t.Run("round trip", func(t *testing.T) { roundTrip(t, h) })
	t.Run("large file in bounded memory", func(t *testing.T) { largeFile(t, h) })
	t.Run("failed uploads leave nothing", func(t *testing.T) { failedUploads(t, h) })
	t.Run("the pool, listed file by file", func(t *testing.T) { poolFiles(t, h) })
}

type file struct {
	name string
	data []byte
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, h Harness, set string, f file) {
	t.Helper()
	loc, err := h.Storer.Put(context.Background(), h.Config, set, f.name, int64(len(f.data)), bytes.NewReader(f.data))
	if err != nil {
		t.Fatalf("Put %s/%s: %v", set, f.name, err)
	}
	if !strings.Contains(loc, "/"+set+"/") || !strings.HasSuffix(loc, "/"+f.name) {
		t.Errorf("Put %s/%s: location %q does not name the file", set, f.name, loc)
	}
}

func get(t *testing.T, h Harness, set, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := h.Storer.Get(context.Background(), h.Config, set, name, &buf); err != nil {
		t.Fatalf("Get %s/%s: %v", set, name, err)
	}
	return buf.Bytes()
}

// list returns the store's sets sorted, as the SDK hands them to the core.
func list(t *testing.T, h Harness) []sdk.StoredSet {
	t.Helper()
	sets, err := h.Storer.List(context.Background(), h.Config)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	slices.SortFunc(sets, func(a, b sdk.StoredSet) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range sets {
		slices.SortFunc(s.Files, func(a, b sdk.StoredFile) int { return strings.Compare(a.Name, b.Name) })
	}
	return sets
}

func find(sets []sdk.StoredSet, name string) (sdk.StoredSet, bool) {
	for _, s := range sets {
		if s.Name == name {
			return s, true
		}
	}
	return sdk.StoredSet{}, false
}

func roundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	const set, partial = "2024-03-01_03-00-00", "2024-03-02_03-00-00"
	dump, _ := io.ReadAll(NewPayload(1, 3<<20+7))
	files := []file{
		{"moodle_2024-03-01_03-00-00.sql.gz", dump},
		{"DB_INFO.txt", []byte("Database: moodle\n")},
		{"empty.txt", nil},
		{"SHA256SUMS", []byte(sum(dump) + "  moodle_2024-03-01_03-00-00.sql.gz\n")},
		{sdk.ManifestFile, []byte(`{"set":"2024-03-01_03-00-00"}`)}, // last, as the core does
	}
	for _, f := range files {
		put(t, h, set, f)
	}
	put(t, h, partial, file{"moodledata_2024-03-02_03-00-00.tar.gz", []byte("not finished")})

	sets := list(t, h)
	var names []string
	for _, s := range sets {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{set, partial}) {
		t.Fatalf("List: sets %q, want %q", names, []string{set, partial})
	}
	var want []sdk.StoredFile
	for _, f := range files {
		want = append(want, sdk.StoredFile{Name: f.name, Size: int64(len(f.data))})
	}
	slices.SortFunc(want, func(a, b sdk.StoredFile) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(sets[0].Files, want) {
		t.Errorf("List: %s holds %v, want %v", set, sets[0].Files, want)
	}
	if !sets[0].Complete() || sets[1].Complete() {
		t.Errorf("Complete: %v and %v, want true and false", sets[0].Complete(), sets[1].Complete())
	}

	for _, f := range files {
		if got := get(t, h, set, f.name); !bytes.Equal(got, f.data) {
			t.Errorf("Get %s: %d bytes sha256 %s, want %d bytes %s", f.name, len(got), sum(got), len(f.data), sum(f.data))
		}
	}
	err := h.Storer.Get(ctx, h.Config, set, "missing.txt", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("Get of a missing file: %v; want an error naming it", err)
	}

	// A second upload under the same name replaces the first.
	put(t, h, set, file{"DB_INFO.txt", []byte("replaced\n")})
	if got := get(t, h, set, "DB_INFO.txt"); string(got) != "replaced\n" {
		t.Errorf("after a second Put: %q", got)
	}

	before := len(h.Deleted(t))
	if err := h.Storer.Delete(ctx, h.Config, set); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted := h.Deleted(t)[before:]
	if len(deleted) < len(files) || deleted[0] != set+"/"+sdk.ManifestFile {
		t.Errorf("Delete removed %q; want %s first, then the %d other files", deleted, sdk.ManifestFile, len(files)-1)
	}
	if sets := list(t, h); len(sets) != 1 || sets[0].Name != partial {
		t.Errorf("after Delete: %+v", sets)
	}
	if err := h.Storer.Delete(ctx, h.Config, set); err != nil {
		t.Errorf("Delete of a set that is gone: %v", err)
	}
	if err := h.Storer.Delete(ctx, h.Config, partial); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if sets := list(t, h); len(sets) != 0 {
		t.Errorf("after deleting everything: %+v", sets)
	}
}

// listFiles is a set's files through ListFiles, sorted.
func listFiles(t *testing.T, fl sdk.FileLister, h Harness, set string) []sdk.StoredFile {
	t.Helper()
	var out []sdk.StoredFile
	if err := fl.ListFiles(context.Background(), h.Config, set, func(f sdk.StoredFile) error { out = append(out, f); return nil }); err != nil {
		t.Fatalf("ListFiles %s: %v", set, err)
	}
	slices.SortFunc(out, func(a, b sdk.StoredFile) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// poolFiles: the pool's blobs are listed by ListFiles, each once, and never
// by List, whatever sets sort before and after the pool's name; DeleteFiles
// removes some of them and leaves the rest; fn's error stops a listing.
func poolFiles(t *testing.T, h Harness) {
	ctx := context.Background()
	fl, ok := h.Storer.(sdk.FileLister)
	fd, ok2 := h.Storer.(sdk.FileDeleter)
	if !ok || !ok2 {
		t.Fatalf("%T cannot keep a pool: it needs ListFiles and DeleteFiles", h.Storer)
	}
	sets := []string{"2024-05-01_03-00-00", sdk.PoolSet + "0", "x-after"}
	for _, set := range sets {
		put(t, h, set, file{"SHA256SUMS", []byte(set)})
	}
	var blobs []sdk.StoredFile
	for i := range 40 {
		data := bytes.Repeat([]byte{byte(i)}, i)
		name := fmt.Sprintf("%02x%s-%d", i*6, strings.Repeat("0", 38), i) // spread over first digits
		put(t, h, sdk.PoolSet, file{name, data})
		blobs = append(blobs, sdk.StoredFile{Name: name, Size: int64(i)})
	}
	var names []string
	for _, s := range list(t, h) {
		if s.Name == sdk.PoolSet && len(s.Files) == 0 {
			continue // a Storer may show the pool without its files
		}
		names = append(names, s.Name)
	}
	if !slices.Equal(names, sets) {
		t.Errorf("List: sets %q, want %q (the pool's files are ListFiles' to list)", names, sets)
	}
	if got := listFiles(t, fl, h, sdk.PoolSet); !slices.Equal(got, blobs) {
		t.Errorf("ListFiles of the pool: %v, want %v", got, blobs)
	}
	if got := listFiles(t, fl, h, sets[0]); len(got) != 1 || got[0].Name != "SHA256SUMS" {
		t.Errorf("ListFiles of %s: %v", sets[0], got)
	}
	if got := listFiles(t, fl, h, "2099-01-01_00-00-00"); len(got) != 0 {
		t.Errorf("ListFiles of a set not there: %v", got)
	}
	if got := get(t, h, sdk.PoolSet, blobs[7].Name); !bytes.Equal(got, bytes.Repeat([]byte{7}, 7)) {
		t.Errorf("Get of blob %s: %q", blobs[7].Name, got)
	}
	stop := errors.New("enough")
	n := 0
	err := fl.ListFiles(ctx, h.Config, sdk.PoolSet, func(sdk.StoredFile) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("a listing whose fn fails: %v after %d files", err, n)
	}

	var gone []string
	for i := 0; i < len(blobs); i += 2 {
		gone = append(gone, blobs[i].Name)
	}
	if err := fd.DeleteFiles(ctx, h.Config, sdk.PoolSet, append(gone, "ffff-1")); err != nil {
		t.Fatalf("DeleteFiles: %v", err)
	}
	var left []sdk.StoredFile
	for i := 1; i < len(blobs); i += 2 {
		left = append(left, blobs[i])
	}
	if got := listFiles(t, fl, h, sdk.PoolSet); !slices.Equal(got, left) {
		t.Errorf("after DeleteFiles of every other blob: %v, want %v", got, left)
	}
	for _, set := range append(sets, sdk.PoolSet) {
		if err := h.Storer.Delete(ctx, h.Config, set); err != nil {
			t.Fatalf("Delete %s: %v", set, err)
		}
	}
	if got := list(t, h); len(got) != 0 {
		t.Errorf("after deleting everything: %+v", got)
	}
}

func largeFile(t *testing.T, h Harness) {
	const set, name = "2024-04-01_03-00-00", "moodledata_2024-04-01_03-00-00.tar.gz"
	var err error
	rise := PeakHeap(func() {
		_, err = h.Storer.Put(context.Background(), h.Config, set, name, LargeFile, NewPayload(2, LargeFile))
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	t.Logf("heap rose by %.1f MiB while uploading %d MiB", float64(rise)/(1<<20), LargeFile>>20)
	if rise > h.MaxHeap {
		t.Errorf("heap rose by %d bytes while uploading %d; the limit is %d: the upload is not streamed", rise, LargeFile, h.MaxHeap)
	}
	hw := sha256.New()
	if err := h.Storer.Get(context.Background(), h.Config, set, name, hw); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got, want := hex.EncodeToString(hw.Sum(nil)), PayloadSHA256(2, LargeFile); got != want {
		t.Errorf("Get: sha256 %s, want %s", got, want)
	}
	if err := h.Storer.Delete(context.Background(), h.Config, set); err != nil {
		t.Fatal(err)
	}
}

// interrupting is a reader that calls stop after n bytes and then goes on,
// like the core's file does when the run is cancelled mid-upload.
type interrupting struct {
	r    io.Reader
	n    int64
	stop func()
	err  error // returned instead of data after n bytes, when set
}

func (i *interrupting) Read(p []byte) (int, error) {
	if i.n <= 0 {
		if i.stop != nil {
			i.stop()
		}
		if i.err != nil {
			return 0, i.err
		}
	}
	if i.n > 0 && int64(len(p)) > i.n {
		p = p[:i.n]
	}
	n, err := i.r.Read(p)
	i.n -= int64(n)
	return n, err
}

func failedUploads(t *testing.T, h Harness) {
	const size = 40 << 20
	errRead := errors.New("read /backups/moodle.sql.gz: input/output error")
	tests := []struct {
		name string
		set  string
		r    func(cancel func()) io.Reader
	}{
		{"context cancelled", "2024-05-01_03-00-00", func(cancel func()) io.Reader {
			return &interrupting{r: NewPayload(3, size), n: 20 << 20, stop: cancel}
		}},
		{"reader fails", "2024-05-02_03-00-00", func(func()) io.Reader {
			return &interrupting{r: NewPayload(3, size), n: 20 << 20, err: errRead}
		}},
		{"reader ends early", "2024-05-03_03-00-00", func(func()) io.Reader {
			return NewPayload(3, 20<<20)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(t, h, tt.set, file{"SHA256SUMS", []byte("x")})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := h.Storer.Put(ctx, h.Config, tt.set, sdk.ManifestFile, size, tt.r(cancel))
			if err == nil {
				t.Fatal("Put succeeded")
			}
			t.Logf("Put: %v", err)
			set, ok := find(list(t, h), tt.set)
			if !ok {
				t.Fatalf("List lost the set %s", tt.set)
			}
			if set.Complete() {
				t.Errorf("List: the set looks complete after a failed upload of its manifest: %v", set.Files)
			}
			if want := []sdk.StoredFile{{Name: "SHA256SUMS", Size: 1}}; !slices.Equal(set.Files, want) {
				t.Errorf("List: %v, want %v", set.Files, want)
			}
			if left := h.Leftovers(t); len(left) > 0 {
				t.Errorf("the failed upload left %q on the server", left)
			}
			if err := h.Storer.Delete(context.Background(), h.Config, tt.set); err != nil {
				t.Fatal(err)
			}
		})
	}
}

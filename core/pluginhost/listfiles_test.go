package pluginhost_test

import (
	"context"
	"crypto/sha1"
	be "encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// poolLister is a store whose pool holds n blobs that it makes up as it
// lists them, as a bucket of millions of objects would hand them out a
// page at a time: nothing of the listing is held on either side.
type poolLister struct {
	memStore
	n       int
	extra   []string // listed after the blobs
	emitted atomic.Int64
	ended   chan error // what the plugin's listing ended with
}

func blobName(i int) string {
	var b [8]byte
	be.BigEndian.PutUint64(b[:], uint64(i))
	h := sha1.Sum(b[:])
	return fmt.Sprintf("%s-%d", hex.EncodeToString(h[:]), i)
}

func (p *poolLister) ListFiles(ctx context.Context, _ sdk.Config, set string, fn func(sdk.StoredFile) error) (err error) {
	defer func() {
		if p.ended != nil {
			p.ended <- err
		}
	}()
	if set != sdk.PoolSet {
		return nil
	}
	for i := range p.n {
		p.emitted.Add(1)
		if err := fn(sdk.StoredFile{Name: blobName(i), Size: int64(i)}); err != nil {
			return err
		}
	}
	for _, name := range p.extra {
		if err := fn(sdk.StoredFile{Name: name, Size: 1}); err != nil {
			return err
		}
	}
	return nil
}

// ListFiles brings a set's files over page after page (1,000 a message),
// all of them in the plugin's order, and leaves out names no set may hold;
// fn's error stops the listing on both sides; a plugin without ListFiles
// is listed through List.
func TestStoreListFiles(t *testing.T) {
	ctx := context.Background()
	cfg := storeConfig(t)
	p := &poolLister{n: 2500, extra: []string{".upload.part", "a/b", "last"}}
	c := connect(t, p)
	var got []sdk.StoredFile
	if err := c.ListFiles(ctx, cfg, sdk.PoolSet, func(f sdk.StoredFile) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != p.n+1 || got[p.n].Name != "last" {
		t.Fatalf("listed %d files, want %d and then %q", len(got), p.n+1, "last")
	}
	for i := range p.n {
		if got[i].Name != blobName(i) || got[i].Size != int64(i) {
			t.Fatalf("file %d is %+v, want %s of %d bytes", i, got[i], blobName(i), i)
		}
	}

	// Long enough that the pages cannot all sit in gRPC's buffers by the
	// time the core stops.
	p.n, p.extra = 200_000, nil
	p.ended = make(chan error, 1)
	p.emitted.Store(0)
	stop := errors.New("enough")
	n := 0
	err := c.ListFiles(ctx, cfg, sdk.PoolSet, func(sdk.StoredFile) error {
		if n++; n == 1500 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 1500 {
		t.Fatalf("a listing stopped at 1,500: %v after %d files", err, n)
	}
	select {
	case perr := <-p.ended:
		if perr == nil || p.emitted.Load() == int64(p.n) {
			t.Errorf("the plugin listed all %d files after the core stopped (%v)", p.emitted.Load(), perr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the plugin is still listing (%d files) after the core stopped", p.emitted.Load())
	}

	plain := &memStore{}
	c = connect(t, plain)
	const set = "2024-03-01_03-00-00"
	for _, f := range []string{"SHA256SUMS", sdk.ManifestFile} {
		if _, err := c.Put(ctx, cfg, set, f, 0, strings.NewReader("")); err != nil {
			t.Fatal(err)
		}
	}
	got = nil
	if err := c.ListFiles(ctx, cfg, set, func(f sdk.StoredFile) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "SHA256SUMS" || got[1].Name != sdk.ManifestFile {
		t.Errorf("a store without ListFiles listed %+v", got)
	}
}

// BenchmarkListPoolMillion lists a store's pool of a million blobs into
// pool.Marks, as an upload or a store's sweep does, through a real gRPC
// connection. The plugin runs in this process, so the heap's peak counts
// both sides: the figure that, times five, bounds a school of five million
// files. The collector runs at mbk's own target (sdk.LeanGCPercent): the
// peak is what is live plus the garbage of the pages between collections.
func BenchmarkListPoolMillion(b *testing.B) {
	const n = 1_000_000
	defer debug.SetGCPercent(debug.SetGCPercent(sdk.LeanGCPercent))
	p := &poolLister{n: n}
	c := connect(b, p)
	cfg := storeConfig(b)
	var peak uint64
	for range b.N {
		var m pool.Marks
		peak = storetest.PeakHeap(func() {
			err := c.ListFiles(context.Background(), cfg, sdk.PoolSet, func(f sdk.StoredFile) error {
				if bl, ok := pool.ParseName(f.Name); ok {
					m.Add(bl)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			m.Seal()
		})
		if m.Count() != n {
			b.Fatalf("listed %d blobs", m.Count())
		}
	}
	b.ReportMetric(float64(peak)/n, "peak-heap-B/blob")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB/million")
}

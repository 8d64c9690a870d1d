package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// havePool answers that it has every blob: the unchanged night, seen by
// the plugin alone.
type havePool struct{ asked int }

func (h *havePool) Have(_ context.Context, bs []sdk.Blob) ([]bool, error) {
	h.asked += len(bs)
	out := make([]bool, len(bs))
	for i := range out {
		out[i] = true
	}
	return out, nil
}

func (h *havePool) Put(context.Context, sdk.Blob, io.Reader) (sdk.Blob, error) {
	return sdk.Blob{}, fmt.Errorf("an unchanged walk put a blob")
}

// BenchmarkPooledWalk is the plugin's side of an unchanged pooled backup of
// a filedir of n small files: the walk, the batched questions, the tar of
// data-less entries. It reports files per second and how far the heap rose
// (peak-heap-MiB): the same at 5,000 and 50,000 files shows that memory does
// not grow with the number of files (the listing streams into the tar, the
// questions go 512 at a time).
func BenchmarkPooledWalk(b *testing.B) {
	for _, n := range []int{5000, 50000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			for i := range n {
				content := []byte(fmt.Sprintf("file %d", i))
				h := sha1.Sum(content)
				name := hex.EncodeToString(h[:])
				p := filepath.Join(dir, "filedir", name[:2], name[2:4], name)
				if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(p, content, 0o640); err != nil {
					b.Fatal(err)
				}
			}
			p := &plugin{log: newTestPlugin(b).log.ResetNamed("bench")}
			p.log.SetLevel(0)
			cfg := testConfig(b, p, map[string]cty.Value{"path": cty.StringVal(dir), "filedir": cty.StringVal("pool")})
			for _, cached := range []bool{false, true} {
				b.Run(fmt.Sprintf("cache=%v", cached), func(b *testing.B) {
					cache := ""
					if cached {
						// The tree is a second old: every directory counts
						// as unchanged since the first walk.
						defer setVar(&walkCacheMargin, -time.Hour)()
						cache = b.TempDir()
					}
					backup := func(hp *havePool) {
						if _, err := p.Backup(context.Background(), sdk.BackupRequest{Config: cfg, Artifact: artifactID, Pool: hp, CacheDir: cache}, io.Discard); err != nil {
							b.Fatal(err)
						}
					}
					backup(&havePool{}) // fills the cache
					var peak uint64
					b.ResetTimer()
					for range b.N {
						hp := &havePool{}
						peak = max(peak, storetest.PeakHeap(func() { backup(hp) }))
						if hp.asked != n {
							b.Fatalf("asked about %d files, want %d", hp.asked, n)
						}
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
					b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
				})
			}
		})
	}
}

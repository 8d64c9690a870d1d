package pool

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
)

// fileText is the i-th of distinct files of 42 KB of text.
func fileText(i int) []byte {
	data := bytes.Repeat([]byte("a moodle file's text "), 2000)
	copy(data, fmt.Sprintf("%012d", i))
	return data
}

// BenchmarkPut stores distinct blobs of 40 KB (the bench site's mean file
// size) with the stage's default codec: what a first pooled backup pays
// per file, fsync included.
func BenchmarkPut(b *testing.B) {
	for _, comp := range []string{"zstd", "gzip"} {
		b.Run(comp, func(b *testing.B) {
			p, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(42000)
			for i := range b.N {
				if _, err := p.Put(bytes.NewReader(fileText(i)), Codec{Compression: comp}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutParallel is BenchmarkPut with 16 writers at once, each put
// synced on its own (put), and with 4 writers through a Batch, as a backup
// puts, whose syncs run side by side (batch).
func BenchmarkPutParallel(b *testing.B) {
	for _, c := range []struct {
		name string
		par  int
		put  func(*Pool, *Batch, io.Reader) (Written, error)
	}{
		{"put", 8, func(p *Pool, _ *Batch, r io.Reader) (Written, error) { return p.Put(r, Codec{Compression: "zstd"}) }},
		{"batch", 2, func(_ *Pool, bt *Batch, r io.Reader) (Written, error) { return bt.Put(r, Codec{Compression: "zstd"}) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			batch := p.NewBatch()
			var n atomic.Int64
			b.SetBytes(42000)
			b.SetParallelism(c.par) // × GOMAXPROCS
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.put(p, batch, bytes.NewReader(fileText(int(n.Add(1))))); err != nil {
						b.Fatal(err)
					}
				}
			})
			if err := batch.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkMarkMillion fills Marks with a million distinct blobs, as a
// store's sweep does with the store's pool listing, seals it and marks
// them all, and reports the heap it took per blob and for the million: the
// figure that, times five, says what a site of five million files needs.
func BenchmarkMarkMillion(b *testing.B) {
	const n = 1_000_000
	blobs := make([]Blob, n)
	for i := range blobs {
		h := sha1.Sum([]byte(fmt.Sprint(i)))
		blobs[i] = Blob{SHA1: hex.EncodeToString(h[:]), Size: int64(i)}
	}
	var heap uint64
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var m Marks
		for _, bl := range blobs {
			m.Add(bl)
		}
		m.Seal()
		for _, bl := range blobs {
			m.Mark(bl)
		}
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		if m.Count() != n || m.CountMarked() != n {
			b.Fatalf("%d blobs, %d marked", m.Count(), m.CountMarked())
		}
		runtime.KeepAlive(&m)
	}
	b.ReportMetric(float64(heap)/n, "heap-B/blob")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB/million")
}

// BenchmarkOpenBlob reads back blobs of 40 KB, as a restore does.
func BenchmarkOpenBlob(b *testing.B) {
	for _, comp := range []string{"zstd", "gzip"} {
		b.Run(comp, func(b *testing.B) {
			p, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			var blobs []Blob
			for i := range 200 {
				w, err := p.Put(bytes.NewReader(fileText(i)), Codec{Compression: comp})
				if err != nil {
					b.Fatal(err)
				}
				blobs = append(blobs, w.Blob)
			}
			b.SetBytes(42000)
			b.ResetTimer()
			for i := range b.N {
				rc, err := p.OpenBlob(blobs[i%len(blobs)], nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}

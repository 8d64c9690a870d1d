package pool

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
)

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
			data := bytes.Repeat([]byte("a moodle file's text "), 2000)
			b.SetBytes(int64(len(data)))
			for i := range b.N {
				copy(data, fmt.Sprintf("%012d", i))
				if _, err := p.Put(bytes.NewReader(data), Codec{Compression: comp}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutParallel is BenchmarkPut with 16 writers at once, as a
// backup sends new blobs: their fsyncs share the filesystem's journal
// commits.
func BenchmarkPutParallel(b *testing.B) {
	p, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetBytes(42000)
	b.SetParallelism(8) // 8 × GOMAXPROCS
	b.RunParallel(func(pb *testing.PB) {
		data := bytes.Repeat([]byte("a moodle file's text "), 2000)
		for pb.Next() {
			copy(data, fmt.Sprintf("%012d", n.Add(1)))
			if _, err := p.Put(bytes.NewReader(data), Codec{Compression: "zstd"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

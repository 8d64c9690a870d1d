package wire

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"testing"
)

// memPool serves blobs from memory: the benchmarks measure the protocol.
type memPool map[Blob][]byte

func (m memPool) Have([]Blob) ([]bool, error)       { return nil, nil }
func (m memPool) Put(Blob, io.Reader) (Blob, error) { return Blob{}, nil }
func (m memPool) Open(b Blob) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m[b])), nil
}

// benchPool serves 2,000 blobs of 10-40 KB from memory for the benchmark's
// life, and dials it.
func benchPool(b *testing.B) (*PoolClient, []Blob) {
	m := memPool{}
	var blobs []Blob
	for i := range 2000 {
		d := bytes.Repeat([]byte(fmt.Sprint(i)), 10000)
		h := sha1.Sum(d)
		bl := Blob{hex.EncodeToString(h[:]), int64(len(d))}
		m[bl] = d
		blobs = append(blobs, bl)
	}
	ps, err := ServePool(m)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ps.Stop)
	pc, err := DialPool(ps.Socket())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	return pc, blobs
}

// BenchmarkPoolOpen reads 2,000 blobs of 10-40 KB with one Open each, 8
// at a time; BenchmarkPoolOpenMany the same with one OpenMany per 64, 4 at
// a time: what a call costs against a small file's bytes.
func BenchmarkPoolOpen(b *testing.B) {
	pc, blobs := benchPool(b)
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, bl := range blobs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rc, err := pc.Open(context.Background(), bl)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, rc)
				rc.Close()
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(len(blobs)*b.N)/b.Elapsed().Seconds(), "blobs/s")
}

func BenchmarkPoolOpenMany(b *testing.B) {
	pc, blobs := benchPool(b)
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i := 0; i < len(blobs); i += 64 {
			batch := blobs[i:min(i+64, len(blobs))]
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rc, err := pc.OpenMany(context.Background(), batch)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, rc)
				rc.Close()
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(len(blobs)*b.N)/b.Elapsed().Seconds(), "blobs/s")
}

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

// memPool holds what it is given in memory: the benchmarks measure the
// protocol.
type memPool struct {
	mu   sync.Mutex
	have map[Blob]bool
}

func (m *memPool) Have(bs []Blob) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(bs))
	for i, b := range bs {
		out[i] = m.have[b]
	}
	return out, nil
}

func (m *memPool) Put(expect Blob, r io.Reader) (Blob, error) {
	h := sha1.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Blob{}, err
	}
	b := Blob{hex.EncodeToString(h.Sum(nil)), n}
	m.mu.Lock()
	m.have[b] = true
	m.mu.Unlock()
	return b, nil
}

// benchPool serves an empty memPool for the benchmark's life, dials it,
// and makes 2,000 blobs of 10-40 KB.
func benchPool(b *testing.B) (*PoolClient, []Blob, [][]byte) {
	var (
		blobs []Blob
		data  [][]byte
	)
	for i := range 2000 {
		d := bytes.Repeat([]byte(fmt.Sprint(i)), 10000)
		h := sha1.Sum(d)
		blobs = append(blobs, Blob{hex.EncodeToString(h[:]), int64(len(d))})
		data = append(data, d)
	}
	ps, err := ServePool(&memPool{have: map[Blob]bool{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ps.Stop)
	pc, err := DialPool(ps.Socket())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	return pc, blobs, data
}

// BenchmarkPoolPut sends 2,000 blobs of 10-40 KB, 4 at a time as the volume
// plugin does: what a call costs against a small file's bytes.
func BenchmarkPoolPut(b *testing.B) {
	pc, blobs, data := benchPool(b)
	b.ResetTimer()
	for range b.N {
		putAll(b, pc, blobs, data)
	}
	b.ReportMetric(float64(len(blobs)*b.N)/b.Elapsed().Seconds(), "blobs/s")
}

// putAll puts every blob, 4 at a time as the volume plugin does.
func putAll(b *testing.B, pc *PoolClient, blobs []Blob, data [][]byte) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, bl := range blobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := pc.Put(context.Background(), bl, bytes.NewReader(data[i]))
			if err != nil || got != bl {
				b.Errorf("put %v: %v, %v", bl, got, err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkPoolHave asks about 2,000 blobs in questions of 512, as an
// unchanged night does.
func BenchmarkPoolHave(b *testing.B) {
	pc, blobs, _ := benchPool(b)
	b.ResetTimer()
	for range b.N {
		for i := 0; i < len(blobs); i += 512 {
			have, err := pc.Have(context.Background(), blobs[i:min(i+512, len(blobs))])
			if err != nil || len(have) != min(512, len(blobs)-i) {
				b.Fatalf("have: %d answers, %v", len(have), err)
			}
		}
	}
	b.ReportMetric(float64(len(blobs)*b.N)/b.Elapsed().Seconds(), "blobs/s")
}

// largeBlobs are BenchmarkPoolPutLarge's 64 blobs of 4 MiB, made once.
var largeBlobs = sync.OnceValues(func() ([]Blob, [][]byte) {
	var (
		blobs []Blob
		data  [][]byte
	)
	for i := range 64 {
		d := make([]byte, 4<<20)
		for j := range d {
			d[j] = byte(i + j*7)
		}
		h := sha1.Sum(d)
		blobs = append(blobs, Blob{hex.EncodeToString(h[:]), int64(len(d))})
		data = append(data, d)
	}
	return blobs, data
})

// BenchmarkPoolPutLarge sends 64 blobs of 4 MiB, 4 at a time: the chunks'
// cost, where BenchmarkPoolPut measures the calls'.
func BenchmarkPoolPutLarge(b *testing.B) {
	pc, _, _ := benchPool(b)
	blobs, data := largeBlobs()
	b.SetBytes(int64(len(blobs)) << 22)
	b.ResetTimer()
	for range b.N {
		putAll(b, pc, blobs, data)
	}
}

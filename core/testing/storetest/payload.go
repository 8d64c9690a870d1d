package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"runtime"
	"time"
)

// Payload is size bytes of reproducible random data, made as it is read:
// a test can stream a large file without holding it.
type Payload struct {
	rng  *rand.ChaCha8
	left int64
}

// NewPayload returns the size bytes that seed makes.
func NewPayload(seed byte, size int64) *Payload {
	return &Payload{rng: rand.NewChaCha8([32]byte{seed}), left: size}
}

func (p *Payload) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.rng.Read(b)
	p.left -= int64(n)
	return n, nil
}

// PayloadSHA256 is the hex SHA-256 of NewPayload(seed, size).
func PayloadSHA256(seed byte, size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, NewPayload(seed, size))
	return hex.EncodeToString(h.Sum(nil))
}

// PeakHeap runs f and returns how far the Go heap rose above its level
// before f, sampled while f runs. It bounds memory, not time: a sampling
// interval only decides how close to the true peak the answer is.
func PeakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		top := base
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapAlloc)
			select {
			case <-stop:
				peak <- top
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	return <-peak - base
}

package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// A Batch puts a backup's new blobs. Each is written to a temporary file
// at once, but synced and renamed into the pool only with others, batchBlobs
// at a time and syncWorkers side by side: a disk flush for each new file,
// one after the other, made a first pooled backup 6-8 times a whole
// archive's time, while flushes side by side share the file system's
// journal commits. Until Close returns, new blobs may be in temporary files
// only; a run killed meanwhile leaves them in .pool/.tmp, which the next
// run clears, and nothing under a blob's name that is not whole and synced.
type Batch struct {
	p  *Pool
	mu sync.Mutex
	// Blobs written and not yet renamed into the pool; queue is the part
	// no flush has taken yet.
	pending map[Blob]bool
	queue   []tmpBlob
	// The ab/cd directories renames changed, by the number their four hex
	// digits make: a set of constant size however many blobs a first
	// backup puts.
	dirs [1 << 16]bool
}

const (
	batchBlobs  = 256
	syncWorkers = 16
)

// NewBatch starts a batch of puts.
func (p *Pool) NewBatch() *Batch {
	return &Batch{p: p, pending: map[Blob]bool{}}
}

// Has says whether the pool holds b, or this batch put it.
func (b *Batch) Has(bl Blob) bool {
	b.mu.Lock()
	put := b.pending[bl]
	b.mu.Unlock()
	return put || b.p.Has(bl)
}

// Put is Pool.Put, with the sync and the rename left to a later flush:
// when its call fills a batch, it flushes that batch.
func (b *Batch) Put(r io.Reader, c Codec) (Written, error) {
	t, err := b.p.writeTmp(r, c)
	if err != nil {
		return Written{}, err
	}
	b.mu.Lock()
	if b.pending[t.blob] || b.p.Has(t.blob) {
		b.mu.Unlock()
		os.Remove(t.path)
		return Written{Blob: t.blob}, nil
	}
	b.pending[t.blob] = true
	b.queue = append(b.queue, t)
	var full []tmpBlob
	if len(b.queue) >= batchBlobs {
		full, b.queue = b.queue, nil
	}
	b.mu.Unlock()
	if err := b.flush(full); err != nil {
		return Written{}, err
	}
	return Written{Blob: t.blob, Stored: t.stored}, nil
}

// flush syncs and renames ts, syncWorkers at a time.
func (b *Batch) flush(ts []tmpBlob) error {
	return eachParallel(ts, func(t tmpBlob) error {
		if err := b.p.install(t); err != nil {
			os.Remove(t.path)
			return err
		}
		b.mu.Lock()
		b.dirs[dirIndex(t.blob)] = true
		delete(b.pending, t.blob)
		b.mu.Unlock()
		return nil
	})
}

// Close flushes what is left and syncs every directory a rename changed:
// after it, every blob put is durable under its name, and the set that
// references them may be committed.
func (b *Batch) Close() error {
	b.mu.Lock()
	rest := b.queue
	b.queue = nil
	b.mu.Unlock()
	if err := b.flush(rest); err != nil {
		return err
	}
	return b.syncDirs()
}

// dirIndex is the number of a blob's ab/cd directory.
func dirIndex(bl Blob) int {
	n, _ := strconv.ParseUint(bl.SHA1[:4], 16, 16)
	return int(n)
}

// syncDirs makes the renames durable: each ab/cd directory that changed,
// then the ab/ above it (a new cd/) and the pool's own (a new ab/),
// syncWorkers at a time.
func (b *Batch) syncDirs() error {
	var dirs []string
	var parents [256]bool
	for i, changed := range b.dirs {
		if changed {
			dirs = append(dirs, filepath.Join(b.p.dir, fmt.Sprintf("%02x", i>>8), fmt.Sprintf("%02x", i&0xff)))
			parents[i>>8] = true
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	if err := eachParallel(dirs, syncNamed); err != nil {
		return err
	}
	var above []string
	for i, changed := range parents {
		if changed {
			above = append(above, filepath.Join(b.p.dir, fmt.Sprintf("%02x", i)))
		}
	}
	if err := eachParallel(above, syncNamed); err != nil {
		return err
	}
	return syncNamed(b.p.dir)
}

func syncNamed(dir string) error {
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("pool: sync %s: %w", dir, err)
	}
	return nil
}

// eachParallel calls fn for each item, syncWorkers at a time, and joins
// their errors.
func eachParallel[T any](items []T, fn func(T) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan T)
	)
	for range min(syncWorkers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if err := fn(it); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// Discard removes the temporary files of blobs not flushed yet, for a run
// that failed.
func (b *Batch) Discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.queue {
		os.Remove(t.path)
	}
	b.queue = nil
}

package pool

import (
	"errors"
	"io"
	"os"
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
	dirs    map[string]bool
}

const (
	batchBlobs  = 256
	syncWorkers = 16
)

// NewBatch starts a batch of puts.
func (p *Pool) NewBatch() *Batch {
	return &Batch{p: p, pending: map[Blob]bool{}, dirs: map[string]bool{}}
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
	if len(ts) == 0 {
		return nil
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan tmpBlob)
	)
	for range min(syncWorkers, len(ts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				dir, err := b.p.install(t)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					os.Remove(t.path)
				} else {
					b.mu.Lock()
					b.dirs[dir] = true
					delete(b.pending, t.blob)
					b.mu.Unlock()
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range ts {
		next <- t
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
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
	return b.p.SyncDirs(b.dirs)
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

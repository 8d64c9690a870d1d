package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// A Batch puts a backup's new blobs. Each is written to a temporary file
// at once, but made durable and renamed into the pool only with others,
// batchBlobs at a time. A disk flush for each new file, one after the
// other, made a first pooled backup 6-8 times a whole archive's time. On a
// local file system whose syncfs(2) writes out everything (wholeFS: ext4,
// xfs, btrfs, zfs, tmpfs), one syncfs makes a whole batch durable, and one
// more at Close its renames; elsewhere (NFS, FUSE mounts such as sshfs or
// rclone, whose syncfs may do nothing) each file is fsynced, syncWorkers
// side by side, and each changed directory at Close. Until Close returns,
// new blobs may be in temporary files only; a run killed meanwhile leaves
// them in .pool/.tmp, which the next run clears, and nothing under a
// blob's name that is not whole and durable.
type Batch struct {
	p       *Pool
	wholeFS bool
	mu      sync.Mutex
	// Blobs written and not yet renamed into the pool; queue is the part
	// no flush has taken yet.
	pending map[Blob]bool
	queue   []tmpBlob
	// The ab/cd directories renames changed (so they exist), by the number
	// their four hex digits make: a set of constant size however many
	// blobs a first backup puts.
	dirs [1 << 16]bool
}

const (
	batchBlobs  = 256
	syncWorkers = 16
)

// syncFSTypes are the file systems (statfs's f_type) whose syncfs writes
// out every dirty file and directory and waits for it.
var syncFSTypes = map[int64]bool{
	unix.EXT4_SUPER_MAGIC:  true, // ext2, ext3 and ext4 share it
	unix.XFS_SUPER_MAGIC:   true,
	unix.BTRFS_SUPER_MAGIC: true,
	unix.TMPFS_MAGIC:       true,
	0x2fc12fc1:             true, // zfs
}

// NewBatch starts a batch of puts.
func (p *Pool) NewBatch() *Batch {
	var st unix.Statfs_t
	whole := unix.Statfs(p.dir, &st) == nil && syncFSTypes[int64(st.Type)]
	return &Batch{p: p, wholeFS: whole, pending: map[Blob]bool{}}
}

// Has says whether the pool holds b, or this batch put it.
func (b *Batch) Has(bl Blob) bool {
	b.mu.Lock()
	put := b.pending[bl]
	b.mu.Unlock()
	return put || b.p.Has(bl)
}

// HasAll sets out[i] to whether the pool holds bls[i] or this batch put
// it, checking workers blobs at once: one stat each, its path looked up
// from the pool's directory (opened once for the call) rather than from
// /, and built without formatting. Each bls[i] must have passed Check.
func (b *Batch) HasAll(bls []Blob, out []bool, workers int) {
	dir, err := unix.Open(b.p.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		for i, bl := range bls {
			out[i] = b.Has(bl)
		}
		return
	}
	defer unix.Close(dir)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st unix.Stat_t
			path := make([]byte, 0, 80)
			for i := k; i < len(bls); i += workers {
				b.mu.Lock()
				put := b.pending[bls[i]]
				b.mu.Unlock()
				path = bls[i].appendRel(path[:0])
				out[i] = put || unix.Fstatat(dir, string(path), &st, 0) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
			}
		}()
	}
	wg.Wait()
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

// flush makes ts durable and renames them into the pool.
func (b *Batch) flush(ts []tmpBlob) error {
	if len(ts) == 0 {
		return nil
	}
	if b.wholeFS {
		if err := b.syncFS(); err != nil {
			for _, t := range ts {
				os.Remove(t.path)
			}
			return err
		}
		var errs []error
		for _, t := range ts {
			if err := b.rename(t); err != nil {
				os.Remove(t.path)
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return eachParallel(ts, func(t tmpBlob) error {
		err := b.p.syncFile(t.path)
		if err == nil {
			err = b.rename(t)
		}
		if err != nil {
			os.Remove(t.path)
		}
		return err
	})
}

// rename moves a durable temporary file to its blob's name.
func (b *Batch) rename(t tmpBlob) error {
	i := dirIndex(t.blob)
	final := b.p.Path(t.blob)
	b.mu.Lock()
	exists := b.dirs[i]
	b.mu.Unlock()
	if !exists {
		if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
			return fmt.Errorf("pool: %w", err)
		}
	}
	if err := os.Rename(t.path, final); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	b.mu.Lock()
	b.dirs[i] = true
	delete(b.pending, t.blob)
	b.mu.Unlock()
	return nil
}

// syncFS waits until everything written to the pool's file system is on
// its disk.
func (b *Batch) syncFS() error {
	d, err := os.Open(b.p.dir)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("pool: sync the file system of %s: %w", b.p.dir, err)
	}
	return nil
}

// Close flushes what is left and makes every rename durable: after it,
// every blob put is durable under its name, and the set that references
// them may be committed.
func (b *Batch) Close() error {
	b.mu.Lock()
	rest := b.queue
	b.queue = nil
	b.mu.Unlock()
	if err := b.flush(rest); err != nil {
		return err
	}
	if b.wholeFS {
		if !slices.Contains(b.dirs[:], true) {
			return nil // nothing was renamed
		}
		return b.syncFS()
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

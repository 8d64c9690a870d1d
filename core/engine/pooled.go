package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/dustin/go-humanize"
	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
)

// ErrContentMismatch marks the warning of a run that found pooled files
// whose content does not hash to their names.
var ErrContentMismatch = errors.New("files' content did not match their names")

// poolRun is a run's use of its root's pool: opened by the first pooled
// artifact, finished (references written, directories synced) before the
// set's checksums are taken.
type poolRun struct {
	batch *pool.Batch
	refs  *pool.RefsWriter
	done  bool
}

// poolFor opens the root's pool and the set's POOL_REFS on first use.
func (r *run) poolFor() (*poolRun, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pool != nil {
		return r.pool, nil
	}
	p, err := pool.Open(r.p.Root)
	if err != nil {
		return nil, err
	}
	p.CleanTmp() // a killed run's half-written blobs: this run holds the lock
	refs, err := pool.CreateRefs(r.staging)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", pool.RefsFile, err)
	}
	r.pool = &poolRun{batch: p.NewBatch(), refs: refs}
	return r.pool, nil
}

// CacheDir is the directory below a root where the plugins of its pooled
// artifacts keep what they learnt from the last run (the volume plugin:
// the walk of filedir). It holds no backup: removing it costs the next run
// time, nothing else; repo, retention and the stores leave dot-names alone.
const CacheDir = ".cache"

// cacheDir is artifact id's cache directory, created if need be; "" (the
// plugin works without) when it cannot be.
func (r *run) cacheDir(id string) string {
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(r.p.Root, CacheDir, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.log.Warn("no cache for this artifact: the walk reads every directory", "artifact", id, "error", err)
		return ""
	}
	return dir
}

// finishPool makes POOL_REFS and the new blobs durable: after it, the set
// may be committed.
func (r *run) finishPool() error {
	pr := r.pool
	if pr == nil || pr.done {
		return nil
	}
	pr.done = true
	if err := pr.refs.Close(); err != nil {
		return fmt.Errorf("write %s: %w", pool.RefsFile, err)
	}
	return pr.batch.Close()
}

// closePool lets go of what a failed run had open.
func (r *run) closePool() {
	if r.pool != nil && !r.pool.done {
		r.pool.done = true
		r.pool.refs.Close()
		r.pool.batch.Discard()
	}
}

// poolBackup is the pool as one artifact's backup sees it: every blob it
// is told the pool has, or puts, is referenced by the set.
type poolBackup struct {
	pr    *poolRun
	codec pool.Codec
	log   hclog.Logger
	file  string
	mu    sync.Mutex
	use   repo.PoolUse
}

func (b *poolBackup) Have(blobs []pluginhost.Blob) ([]bool, error) {
	out := make([]bool, len(blobs))
	for _, w := range blobs {
		if err := pool.Blob(w).Check(); err != nil {
			return nil, err
		}
	}
	// One stat each, haveWorkers at once: a batch is hundreds of files.
	bls := make([]pool.Blob, len(blobs))
	for i, w := range blobs {
		bls[i] = pool.Blob(w)
	}
	b.pr.batch.HasAll(bls, out, haveWorkers)
	for i, w := range blobs {
		if !out[i] {
			continue
		}
		if err := b.pr.refs.Add(pool.Blob(w)); err != nil {
			return nil, fmt.Errorf("write %s: %w", pool.RefsFile, err)
		}
		b.mu.Lock()
		b.use.Blobs++
		b.use.Bytes += w.Size
		b.mu.Unlock()
	}
	return out, nil
}

// haveWorkers is how many stats of the pool run at once for one question.
const haveWorkers = 4

func (b *poolBackup) Put(expect pluginhost.Blob, r io.Reader) (pluginhost.Blob, error) {
	w, err := b.pr.batch.Put(r, b.codec)
	if err != nil {
		return pluginhost.Blob{}, err
	}
	if err := b.pr.refs.Add(w.Blob); err != nil {
		return pluginhost.Blob{}, fmt.Errorf("write %s: %w", pool.RefsFile, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.use.Blobs++
	b.use.Bytes += w.Blob.Size
	if w.Stored > 0 {
		b.use.NewBlobs++
		b.use.NewBytes += w.Blob.Size
		b.use.StoredBytes += w.Stored
	}
	if w.Blob != pool.Blob(expect) {
		b.use.Mismatched++
		b.log.Warn("a file's content does not match its name: stored under its real hash", "artifact", b.file,
			"named", fmt.Sprintf("%s (%d bytes)", expect.SHA1, expect.Size), "content", fmt.Sprintf("%s (%d bytes)", w.Blob.SHA1, w.Blob.Size))
	}
	return pluginhost.Blob(w.Blob), nil
}

// summary is the line the set's info file gets about the pool.
func (b *poolBackup) summary() string {
	u := b.use
	s := fmt.Sprintf("pool: %d files (%s) in the pool; new in this set: %d blobs, %s (%s stored)",
		u.Blobs, humanize.IBytes(uint64(u.Bytes)), u.NewBlobs, humanize.IBytes(uint64(u.NewBytes)), humanize.IBytes(uint64(u.StoredBytes)))
	if u.Mismatched > 0 {
		s += fmt.Sprintf("\nWARNING: %d files' content did not match their names (corrupt in the site itself); see backup.log", u.Mismatched)
	}
	return s
}

// poolOf opens the pool beside a set's directory for reading.
func poolOf(setDir string) (*pool.Pool, error) {
	root := filepath.Dir(setDir)
	p, err := pool.OpenExisting(root)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("the set's files are in a pool, and %s has none (%s is missing)", root, pool.Dir)
	}
	return p, nil
}

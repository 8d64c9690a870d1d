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
	"sync/atomic"
	"time"

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
	pool  *pool.Pool
	batch *pool.Batch
	refs  *pool.RefsWriter
	done  bool
	// known are the blobs the newest complete set references, taken as
	// in the pool without a stat (nil: every blob is looked up), except
	// those whose name starts with the hex digit slice: each run looks up
	// a sixteenth of them, another each day. recheck says the pool asked
	// for every blob to be looked up (pool.RecheckFile).
	known     *pool.Marks
	knownFrom string
	slice     byte
	recheck   bool
	// knownRead is closed once known and knownFrom are set: they are read
	// while the plugin starts its walk, not before.
	knownRead chan struct{}
	// trusted and looked count the answers given each way.
	trusted, looked atomic.Int64
}

// PoolCheckSlice is the first hex digit of the blobs a run started at t
// looks up even when the newest set references them: one of 16, by day,
// so that in 16 days every blob of an unchanged site was looked up once.
func PoolCheckSlice(t time.Time) byte {
	return "0123456789abcdef"[(t.Unix()/86400)%16]
}

// trusts says whether bl is answered from the newest set's references.
func (pr *poolRun) trusts(bl pool.Blob) bool {
	<-pr.knownRead
	if pr.known == nil || bl.SHA1[0] == pr.slice {
		return false
	}
	in, _ := pr.known.Marked(bl)
	return in
}

// knownBlobs reads the references of the newest complete set under the
// root that has any: blobs a complete set references are never swept, so
// that short of damage outside mbk they are in the pool. nil, and every
// blob looked up, when there is none or they cannot be read.
func (r *run) knownBlobs() (*pool.Marks, string) {
	sets, err := repo.List(r.p.Root, r.p.Location)
	if err != nil {
		r.log.Info("pool: every blob is looked up: the sets cannot be listed", "error", err)
		return nil, ""
	}
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if !s.Complete {
			continue
		}
		if _, err := os.Lstat(filepath.Join(s.Dir, pool.RefsFile)); err != nil {
			continue
		}
		m, err := pool.ReadRefs(s.Dir)
		if err != nil {
			r.log.Info("pool: every blob is looked up: the newest set's references cannot be read", "set", s.Name, "error", err)
			return nil, ""
		}
		return m, s.Name
	}
	return nil, ""
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
	pr := &poolRun{pool: p, batch: p.NewBatch(), refs: refs, slice: PoolCheckSlice(r.res.Report.Started), recheck: p.RecheckWanted(),
		knownRead: make(chan struct{})}
	if pr.recheck {
		close(pr.knownRead)
	} else {
		go func() {
			defer close(pr.knownRead)
			pr.known, pr.knownFrom = r.knownBlobs()
		}()
	}
	r.pool = pr
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
	if err := pr.batch.Close(); err != nil {
		return err
	}
	<-pr.knownRead
	switch {
	case pr.recheck:
		r.log.Info("pool: every blob looked up, as a check asked", "looked_up", pr.looked.Load())
		if err := pr.pool.ClearRecheck(); err != nil {
			r.log.Warn("pool: the next backup looks up every blob again", "error", err)
		}
	case pr.known != nil:
		r.log.Info("pool: blobs the newest set references taken as present", "set", pr.knownFrom,
			"taken", pr.trusted.Load(), "looked_up", pr.looked.Load(), "looked_up_slice", string(pr.slice))
	}
	return nil
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
	// A blob the newest set references is there; the others (and this
	// run's slice) one stat each, haveWorkers at once: a batch is
	// hundreds of files.
	var (
		bls []pool.Blob
		at  []int
	)
	for i, w := range blobs {
		if bl := pool.Blob(w); b.pr.trusts(bl) {
			out[i] = true
		} else {
			bls, at = append(bls, bl), append(at, i)
		}
	}
	b.pr.trusted.Add(int64(len(blobs) - len(bls)))
	b.pr.looked.Add(int64(len(bls)))
	if len(bls) > 0 {
		found := make([]bool, len(bls))
		b.pr.batch.HasAll(bls, found, haveWorkers)
		for k, i := range at {
			out[i] = found[k]
		}
	}
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

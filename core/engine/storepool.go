package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// A root's pool in a store is one more "set", sdk.PoolSet, whose files are
// the blobs as they are on disk (<sha1>-<size>, compressed and encrypted):
// listed page by page (ListFiles, never with the sets) into pool.Marks,
// uploaded only when missing, fetched for a restore from the store, and
// swept by the store's retention.

const (
	// putWorkers is how many blobs go up to a store at once: a store
	// plugin may hold a blob whole while it sends it (the s3 plugin, up
	// to a part of 16 MiB).
	putWorkers = 4
	// getWorkers is how many blobs come down at once, for a restore from
	// a store: a download streams, and the worst day's wait is the
	// store's latency times the blobs, divided by this.
	getWorkers = 16
)

// storedBlobs calls fn for each blob in the store's pool, page by page as
// the store lists them (never one answer of millions of names); files
// that are no blob's are left out.
func storedBlobs(ctx context.Context, s *Stage, fn func(b pool.Blob, f sdk.StoredFile) error) error {
	return s.Client.ListFiles(ctx, s.Wire, sdk.PoolSet, func(f sdk.StoredFile) error {
		if b, ok := pool.ParseName(f.Name); ok {
			return fn(b, f)
		}
		return nil
	})
}

// markStored marks, among m's blobs, those the store's pool holds.
func markStored(ctx context.Context, s *Stage, m *pool.Marks) error {
	return storedBlobs(ctx, s, func(b pool.Blob, _ sdk.StoredFile) error {
		m.Mark(b)
		return nil
	})
}

// unmarked yields m's blobs that are not marked.
func unmarked(m *pool.Marks) iter.Seq[pool.Blob] {
	return func(yield func(pool.Blob) bool) {
		for b, marked := range m.All() {
			if !marked && !yield(b) {
				return
			}
		}
	}
}

// uploadPool copies to the store the blobs the set in dir references and
// the store lacks, after POOL_REFS itself: a sweep by another host that
// runs meanwhile sees the references before the blobs (it keeps what an
// incomplete set's POOL_REFS lists). It reports whether the set has
// POOL_REFS (then sent). The references are held 28 bytes a blob.
func uploadPool(ctx context.Context, s *Stage, dir, set string) (bool, error) {
	refs, err := pool.ReadRefs(dir)
	if err != nil || refs.Count() == 0 {
		return false, err
	}
	pl, err := pool.OpenExisting(filepath.Dir(dir))
	if err != nil {
		return false, err
	}
	if pl == nil {
		return false, fmt.Errorf("set %s references %d pooled blobs and %s has no %s", set, refs.Count(), filepath.Dir(dir), pool.Dir)
	}
	if err := markStored(ctx, s, refs); err != nil {
		return false, err
	}
	if err := putFile(ctx, s, dir, set, pool.RefsFile); err != nil {
		return false, err
	}
	err = parallel(ctx, putWorkers, unmarked(refs), func(b pool.Blob) error {
		return putFile(ctx, s, filepath.Dir(pl.Path(b)), sdk.PoolSet, b.String())
	})
	return true, err
}

// parallel runs fn for each item, workers at a time; the first error stops
// what has not started.
func parallel[T any](ctx context.Context, workers int, items iter.Seq[T], fn func(T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan T)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				if err := fn(it); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		}()
	}
	for it := range items {
		if ctx.Err() != nil {
			break
		}
		jobs <- it
	}
	close(jobs)
	wg.Wait()
	return first
}

// fetchPool downloads the blobs a fetched set references into a pool
// beside it (<download dir>/.pool), where a restore looks for them. The
// store's listing comes first: a blob missing there fails the fetch before
// anything is downloaded.
func fetchPool(ctx context.Context, s *Stage, setDir string) error {
	refs, err := pool.ReadRefs(setDir)
	if err != nil || refs.Count() == 0 {
		return err
	}
	if err := markStored(ctx, s, refs); err != nil {
		return err
	}
	var missing []string
	n := 0
	for b := range unmarked(refs) {
		if n++; len(missing) < 3 {
			missing = append(missing, b.String())
		}
	}
	if n > 0 {
		return fmt.Errorf("the store's pool (%s) lacks %d of the %d blobs the set references, among them %s", sdk.PoolSet, n, refs.Count(), strings.Join(missing, ", "))
	}
	pl, err := pool.Open(filepath.Dir(setDir))
	if err != nil {
		return err
	}
	return parallel(ctx, getWorkers, refs.Blobs(), func(b pool.Blob) error {
		if pl.Has(b) {
			return nil
		}
		tmp, err := pl.TempFile()
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		_, err = s.Client.Get(ctx, s.Wire, sdk.PoolSet, b.String(), tmp)
		cerr := tmp.Close()
		if err != nil {
			return fmt.Errorf("download blob %s: %w", b, err)
		}
		if cerr != nil {
			return cerr
		}
		if err := os.MkdirAll(filepath.Dir(pl.Path(b)), repo.DirMode); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), pl.Path(b))
	})
}

// sweepStore deletes the blobs of a store's pool that no set there
// references. List the pool (28 bytes a blob), then mark from every set's
// POOL_REFS, complete or not, since an upload in progress sends its
// POOL_REFS before its blobs; then list the pool again and delete what was
// listed the first time and is unmarked (a blob uploaded meanwhile is
// not). Nil without a pool in the store.
func sweepStore(ctx context.Context, s *Stage, dryRun bool, gone map[string]bool) (*pool.Swept, error) {
	var blobs pool.Marks
	if err := storedBlobs(ctx, s, func(b pool.Blob, _ sdk.StoredFile) error {
		blobs.Add(b)
		return nil
	}); err != nil {
		return nil, err
	}
	blobs.Seal()
	if blobs.Count() == 0 {
		return nil, nil
	}
	stored, err := s.Client.List(ctx, s.Wire)
	if err != nil {
		return nil, err
	}
	for _, st := range stored {
		if st.Name == sdk.PoolSet || gone[st.Name] {
			continue
		}
		for _, f := range st.Files {
			if f.Name != pool.RefsFile {
				continue
			}
			rp := pool.NewRefsParser(st.Name+"/"+pool.RefsFile, func(b pool.Blob) { blobs.Mark(b) })
			if _, err := s.Client.Get(ctx, s.Wire, st.Name, pool.RefsFile, rp); err != nil {
				return nil, fmt.Errorf("pool not swept: read %s/%s: %w", st.Name, pool.RefsFile, err)
			}
			if err := rp.Close(); err != nil {
				return nil, fmt.Errorf("pool not swept: %w", err)
			}
		}
	}
	sw := &pool.Swept{Kept: blobs.CountMarked()}
	if sw.Kept == blobs.Count() {
		return sw, nil
	}
	if sweepStoreMarked != nil {
		sweepStoreMarked()
	}
	var batch []string
	flush := func() error {
		err := s.Client.DeleteFiles(ctx, s.Wire, sdk.PoolSet, batch)
		batch = batch[:0]
		if errors.Is(err, pluginhost.ErrUnsupported) {
			return fmt.Errorf("pool not swept: store %q cannot delete single files", s.Name)
		}
		if err != nil {
			return fmt.Errorf("sweep the store's pool: %w", err)
		}
		return nil
	}
	err = storedBlobs(ctx, s, func(b pool.Blob, f sdk.StoredFile) error {
		if in, marked := blobs.Marked(b); !in || marked {
			return nil // kept, or uploaded since the first listing
		}
		sw.Blobs++
		sw.Bytes += f.Size
		if dryRun {
			return nil
		}
		if batch = append(batch, f.Name); len(batch) == sweepBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	return sw, err
}

// sweepStoreMarked, when set (by a test), runs between the sweep's marking
// and its second listing: where another upload may land meanwhile.
var sweepStoreMarked func()

// sweepBatch is how many blobs one DeleteFiles call names.
const sweepBatch = 1000

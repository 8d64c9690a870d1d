package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// A root's pool in a store is one more "set", sdk.PoolSet, whose files are
// the blobs as they are on disk (<sha1>-<size>, compressed and encrypted):
// listed with the sets in one request, uploaded only when missing, fetched
// for a restore from the store, and swept by the store's retention.

// storeWorkers is how many blobs move to or from a store at once.
const storeWorkers = 4

// remoteBlobs are the blob names a store's listing shows in its pool.
func remoteBlobs(stored []sdk.StoredSet) map[string]int64 {
	out := map[string]int64{}
	for _, st := range stored {
		if st.Name == sdk.PoolSet {
			for _, f := range st.Files {
				out[f.Name] = f.Size
			}
		}
	}
	return out
}

// uploadPool copies to the store the blobs the set in dir references and
// the store lacks, after POOL_REFS itself: a sweep by another host that
// runs meanwhile sees the references before the blobs (it keeps what an
// incomplete set's POOL_REFS lists). It returns how many blobs it sent.
func uploadPool(ctx context.Context, s *Stage, dir, set string) (bool, error) {
	refs, err := pool.ReadRefs(dir)
	if err != nil || len(refs) == 0 {
		return false, err
	}
	pl, err := pool.OpenExisting(filepath.Dir(dir))
	if err != nil {
		return false, err
	}
	if pl == nil {
		return false, fmt.Errorf("set %s references %d pooled blobs and %s has no %s", set, len(refs), filepath.Dir(dir), pool.Dir)
	}
	stored, err := s.Client.List(ctx, s.Wire)
	if err != nil {
		return false, err
	}
	have := remoteBlobs(stored)
	if err := putFile(ctx, s, dir, set, pool.RefsFile); err != nil {
		return false, err
	}
	var missing []pool.Blob
	for _, b := range refs {
		if _, ok := have[b.String()]; !ok {
			missing = append(missing, b)
			have[b.String()] = -1 // once, should it be listed twice
		}
	}
	err = parallel(ctx, len(missing), func(i int) error {
		b := missing[i]
		return putFile(ctx, s, filepath.Dir(pl.Path(b)), sdk.PoolSet, b.String())
	})
	return true, err
}

// parallel runs fn(0..n-1), storeWorkers at a time; the first error stops
// what has not started.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range storeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return first
}

// fetchPool downloads the blobs a fetched set references into a pool
// beside it (<download dir>/.pool), where a restore looks for them.
func fetchPool(ctx context.Context, s *Stage, setDir string) error {
	refs, err := pool.ReadRefs(setDir)
	if err != nil || len(refs) == 0 {
		return err
	}
	stored, err := s.Client.List(ctx, s.Wire)
	if err != nil {
		return err
	}
	have := remoteBlobs(stored)
	pl, err := pool.Open(filepath.Dir(setDir))
	if err != nil {
		return err
	}
	return parallel(ctx, len(refs), func(i int) error {
		b := refs[i]
		size, ok := have[b.String()]
		if !ok {
			return fmt.Errorf("blob %s is missing from the store's pool (%s)", b, sdk.PoolSet)
		}
		if pl.Has(b) {
			return nil
		}
		tmp, err := pl.TempFile()
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		n, err := s.Client.Get(ctx, s.Wire, sdk.PoolSet, b.String(), tmp)
		cerr := tmp.Close()
		if err != nil {
			return fmt.Errorf("download blob %s: %w", b, err)
		}
		if cerr != nil {
			return cerr
		}
		if n != size {
			return fmt.Errorf("download blob %s: %d bytes, the store lists %d", b, n, size)
		}
		if err := os.MkdirAll(filepath.Dir(pl.Path(b)), repo.DirMode); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), pl.Path(b))
	})
}

// sweepStore deletes the blobs of a store's pool that no set there
// references: mark (every set's POOL_REFS, complete or not, since an
// upload in progress sends its POOL_REFS before its blobs), then sweep.
// Nil without a pool in the store.
func sweepStore(ctx context.Context, s *Stage, dryRun bool, gone map[string]bool) (*pool.Swept, error) {
	stored, err := s.Client.List(ctx, s.Wire)
	if err != nil {
		return nil, err
	}
	blobs := remoteBlobs(stored)
	if len(blobs) == 0 {
		return nil, nil
	}
	keep := pool.Refs{}
	for _, st := range stored {
		if st.Name == sdk.PoolSet || gone[st.Name] {
			continue
		}
		for _, f := range st.Files {
			if f.Name != pool.RefsFile {
				continue
			}
			rp := pool.NewRefsParser(st.Name+"/"+pool.RefsFile, keep.Add)
			if _, err := s.Client.Get(ctx, s.Wire, st.Name, pool.RefsFile, rp); err != nil {
				return nil, fmt.Errorf("pool not swept: read %s/%s: %w", st.Name, pool.RefsFile, err)
			}
			if err := rp.Close(); err != nil {
				return nil, fmt.Errorf("pool not swept: %w", err)
			}
		}
	}
	sw := &pool.Swept{}
	var unref []string
	for name, size := range blobs {
		if b, ok := pool.ParseName(name); ok && keep.Has(b) {
			sw.Kept++
			continue
		}
		unref = append(unref, name)
		sw.Blobs++
		sw.Bytes += size
	}
	if dryRun || len(unref) == 0 {
		return sw, nil
	}
	for len(unref) > 0 {
		n := min(len(unref), 1000)
		if err := s.Client.DeleteFiles(ctx, s.Wire, sdk.PoolSet, unref[:n]); err != nil {
			if errors.Is(err, pluginhost.ErrUnsupported) {
				return sw, fmt.Errorf("pool not swept: store %q cannot delete single files", s.Name)
			}
			return sw, fmt.Errorf("sweep the store's pool: %w", err)
		}
		unref = unref[n:]
	}
	return sw, nil
}

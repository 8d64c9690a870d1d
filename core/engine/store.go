package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// store copies the committed set to each store stage, then applies the
// pipeline's retention there too. A store that fails leaves the local set
// committed; the run's outcome says which copy is missing.
func (r *run) store(ctx context.Context, stages []*Stage) {
	retains := stagesOf(stages, sdk.KindRetain)
	for _, s := range stagesOf(stages, sdk.KindStore) {
		err := r.stage(ctx, s, func(ctx context.Context) error {
			err := CheckStoreOwner(ctx, r.p, s, r.name)
			if err == nil {
				err = UploadSet(ctx, s, r.final, r.name)
			}
			if err != nil {
				return fmt.Errorf("the copy of set %s is missing from store %q: %w", r.name, s.Name, err)
			}
			r.log.Info("set copied", "store", s.Name, "set", r.name)
			for _, rs := range retains {
				client, _, err := r.e.Host.Get(ctx, rs.Plugin)
				if err != nil {
					return err
				}
				rs.Client = client
				pr, err := RetainStore(ctx, rs, s, r.p.Location, r.name, r.e.now(), false)
				for _, d := range pr.Decisions {
					if !d.Keep && !s.Delete {
						r.log.Info("set not deleted from store (delete = false): another host or the store's own rules expire it", "store", s.Name, "set", d.Set, "why", d.Reasons)
					}
				}
				for _, set := range pr.Deleted {
					r.log.Info("set deleted from store", "store", s.Name, "set", set)
				}
				for _, set := range pr.Future {
					r.warnFuture(fmt.Sprintf("store %q holds set %s", s.Name, set), set)
				}
				if err != nil {
					return fmt.Errorf("retention on store %q: %w", s.Name, err)
				}
			}
			return nil
		})
		r.stores[s.Name] = nil
		if err != nil {
			r.res.Later = append(r.res.Later, err)
			r.res.Report.Warnings = append(r.res.Report.Warnings, r.e.Redact.String(err.Error()))
			r.stores[s.Name] = errors.New(r.e.Redact.String(err.Error()))
		}
	}
}

// UploadSet copies a committed set to a store: every file, manifest.json
// last, as on disk, so that a half-uploaded set never looks complete.
//
// A set that references pooled blobs sends its POOL_REFS, then the blobs the
// store's pool lacks (the store is listed once), then the rest.
func UploadSet(ctx context.Context, s *Stage, dir, set string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	refsSent, err := uploadPool(ctx, s, dir, set)
	if err != nil {
		return fmt.Errorf("the pool's blobs: %w", err)
	}
	var names []string
	for _, e := range entries {
		if refsSent && e.Name() == pool.RefsFile {
			continue
		}
		if e.Type().IsRegular() && e.Name() != repo.ManifestFile {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	names = append(names, repo.ManifestFile)
	for _, name := range names {
		if err := putFile(ctx, s, dir, set, name); err != nil {
			return err
		}
	}
	return nil
}

func putFile(ctx context.Context, s *Stage, dir, set, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// backup.log may still grow (this run logs on): copy what is there now.
	reply, err := s.Client.Put(ctx, s.Wire, set, name, st.Size(), io.LimitReader(f, st.Size()))
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if reply.Bytes != st.Size() {
		return fmt.Errorf("upload %s: %d of %d bytes stored", name, reply.Bytes, st.Size())
	}
	return nil
}

// RemoteSets lists a store's sets as retention sees them: complete when
// manifest.json is there.
func RemoteSets(ctx context.Context, s *Stage, loc *time.Location) ([]sdk.SetInfo, []sdk.StoredSet, error) {
	all, err := s.Client.List(ctx, s.Wire)
	if err != nil {
		return nil, nil, err
	}
	// The pool is no set (storepool.go).
	stored := slices.DeleteFunc(all, func(st sdk.StoredSet) bool { return st.Name == sdk.PoolSet })
	var out []sdk.SetInfo
	for _, st := range stored {
		t, ok := repo.ParseSetName(st.Name, loc)
		if !ok {
			continue
		}
		complete := false
		for _, f := range st.Files {
			if f.Name == repo.ManifestFile {
				complete = true
			}
		}
		out = append(out, sdk.SetInfo{Name: st.Name, Time: t, Complete: complete})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, stored, nil
}

// RetainStore applies a retain stage's verdict to a store's sets, with the
// same guarantees as on disk (now is the clock, for the sets dated ahead of
// it), and deletes what it may: nothing on a dry run, nor in a store whose
// stage says delete = false, where the verdict is only reported.
func RetainStore(ctx context.Context, retain, store *Stage, loc *time.Location, current string, now time.Time, dryRun bool) (Pruned, error) {
	sets, _, err := RemoteSets(ctx, store, loc)
	if err != nil {
		return Pruned{Stage: retain}, err
	}
	pr, err := prune(ctx, retain, sets, loc, current, now, dryRun || !store.Delete, func(set string) error {
		return store.Client.DeleteSet(ctx, store.Wire, set)
	})
	if err != nil || !store.Delete {
		return pr, err
	}
	pr.Swept, err = sweepStore(ctx, store, dryRun, gone(pr, dryRun))
	return pr, err
}

// gone are the sets a dry run would delete: a dry run's sweep counts as if
// they were.
func gone(pr Pruned, dryRun bool) map[string]bool {
	out := map[string]bool{}
	if dryRun {
		for _, d := range pr.Decisions {
			if !d.Keep {
				out[d.Set] = true
			}
		}
	}
	return out
}

// PruneStore applies a pipeline's retain stages to one store's sets outside
// a run: what a trusted host with its own credentials runs (mbk prune FILE
// --store NAME) when the backup host's store stage says delete = false.
func PruneStore(ctx context.Context, p *config.Pipeline, stages []*Stage, store *Stage, now time.Time, dryRun bool) ([]Pruned, error) {
	retains := stagesOf(stages, sdk.KindRetain)
	if len(retains) == 0 {
		return nil, &NoStageError{Pipeline: p.Name, Kind: sdk.KindRetain}
	}
	if err := CheckStoreOwner(ctx, p, store, ""); err != nil {
		return nil, err
	}
	var out []Pruned
	for _, s := range retains {
		pr, err := RetainStore(ctx, s, store, p.Location, "", now, dryRun)
		out = append(out, pr)
		if err != nil {
			return out, fmt.Errorf("%s on store %q: %w", s.ID(), store.Name, err)
		}
	}
	return out, nil
}

// Copied is what Sync did about one set and one store.
type Copied struct {
	Store *Stage
	// Set is empty when the store could not be listed.
	Set string
	Err error
}

// Sync copies every complete local set that a store lacks, or holds
// incomplete, to each of the pipeline's store stages: the repair after a
// run whose store failed. It goes on past a store or a set that fails, and
// says per copy what came of it.
func Sync(ctx context.Context, p *config.Pipeline, stages []*Stage) ([]Copied, error) {
	stores := stagesOf(stages, sdk.KindStore)
	if len(stores) == 0 {
		return nil, &NoStageError{Pipeline: p.Name, Kind: sdk.KindStore}
	}
	var out []Copied
	for _, s := range stores {
		c, err := SyncStore(ctx, p, s)
		if err != nil {
			return out, err
		}
		out = append(out, c...)
	}
	return out, nil
}

// SyncStore is Sync for one store stage. The error is for local sets that
// cannot be listed; a store that cannot be listed is a Copied without a set.
func SyncStore(ctx context.Context, p *config.Pipeline, s *Stage) ([]Copied, error) {
	local, err := repo.List(p.Root, p.Location)
	if err != nil {
		return nil, err
	}
	remote, _, err := RemoteSets(ctx, s, p.Location)
	if err != nil {
		return []Copied{{Store: s, Err: err}}, nil
	}
	if err := foreignRemote(ctx, p, s, remote); err != nil {
		return []Copied{{Store: s, Err: err}}, nil
	}
	have := map[string]bool{}
	for _, r := range remote {
		have[r.Name] = r.Complete
	}
	var out []Copied
	for _, l := range local {
		if l.Complete && !have[l.Name] {
			out = append(out, Copied{Store: s, Set: l.Name, Err: UploadSet(ctx, s, l.Dir, l.Name)})
		}
	}
	return out, nil
}

// FindStore returns the pipeline's store stage called name (its label).
func FindStore(p *config.Pipeline, stages []*Stage, name string) (*Stage, error) {
	var names []string
	for _, s := range stagesOf(stages, sdk.KindStore) {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, &NoStageError{Pipeline: p.Name, Kind: sdk.KindStore, Name: name, Have: names}
}

// RemoteSet finds a set in a store: the one called name, or when name is
// empty the newest complete one not dated ahead of the clock (as
// repo.Latest picks a local set).
func RemoteSet(ctx context.Context, s *Stage, loc *time.Location, name string) (sdk.StoredSet, error) {
	infos, stored, err := RemoteSets(ctx, s, loc)
	if err != nil {
		return sdk.StoredSet{}, fmt.Errorf("store %q: %w", s.Name, err)
	}
	want := name
	if want == "" {
		now := time.Now()
		ahead := 0
		for i := len(infos) - 1; i >= 0 && want == ""; i-- {
			switch {
			case !infos[i].Complete:
			case repo.Future(infos[i].Time, now):
				ahead++
			default:
				want = infos[i].Name
			}
		}
		if want == "" && ahead > 0 {
			return sdk.StoredSet{}, fmt.Errorf("store %q holds no complete set but %d dated ahead of this machine's clock: name the set", s.Name, ahead)
		}
		if want == "" {
			return sdk.StoredSet{}, fmt.Errorf("store %q holds no complete set", s.Name)
		}
	}
	for _, st := range stored {
		if st.Name == want {
			return st, nil
		}
	}
	return sdk.StoredSet{}, fmt.Errorf("store %q holds no set %q", s.Name, want)
}

// download copies a stored set's files into dir, refusing a file name that
// is not a plain name and a file whose size is not what the store lists.
func download(ctx context.Context, s *Stage, st sdk.StoredSet, dir string) error {
	for _, f := range st.Files {
		if f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." {
			return fmt.Errorf("store %q lists a file %q that is not a plain name", s.Name, f.Name)
		}
		out, err := os.OpenFile(filepath.Join(dir, f.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, repo.FileMode)
		if err != nil {
			return err
		}
		n, err := s.Client.Get(ctx, s.Wire, st.Name, f.Name, out)
		cerr := out.Close()
		if err != nil {
			return fmt.Errorf("download %s/%s: %w", st.Name, f.Name, err)
		}
		if cerr != nil {
			return cerr
		}
		if n != f.Size {
			return fmt.Errorf("download %s/%s: %d bytes, the store lists %d", st.Name, f.Name, n, f.Size)
		}
	}
	return nil
}

// Fetch downloads a stored set into a fresh private directory under under,
// named .mbk-download-* so that it is never taken for a set and the next
// run removes it if this process dies. It returns the set's directory
// within it (<that>/<set>); the caller removes filepath.Dir of it. Nothing
// is left behind when the download fails.
func Fetch(ctx context.Context, s *Stage, st sdk.StoredSet, under string) (string, error) {
	if err := os.MkdirAll(under, repo.DirMode); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(under, repo.DownloadPrefix)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, st.Name)
	if err := os.Mkdir(final, repo.DirMode); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := download(ctx, s, st, final); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := fetchPool(ctx, s, final); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("the pool's blobs: %w", err)
	}
	return final, nil
}

// FetchForRestore downloads a set from a store (the one called name, or the
// newest complete one) under the pipeline's root and reads it as a local
// set, to restore from it as from one on disk. It refuses a set whose
// manifest.json is not in the store. The caller removes filepath.Dir of the
// set's directory when done.
func FetchForRestore(ctx context.Context, p *config.Pipeline, s *Stage, name string) (repo.Set, error) {
	return FetchSet(ctx, p, s, name, p.Root)
}

// FetchSet is FetchForRestore into a download directory under the given
// directory.
func FetchSet(ctx context.Context, p *config.Pipeline, s *Stage, name, under string) (repo.Set, error) {
	st, err := RemoteSet(ctx, s, p.Location, name)
	if err != nil {
		return repo.Set{}, err
	}
	if !st.Complete() {
		return repo.Set{}, fmt.Errorf("set %s in store %q is not complete (no manifest.json): refusing to restore from it", st.Name, s.Name)
	}
	dir, err := Fetch(ctx, s, st, under)
	if err != nil {
		return repo.Set{}, fmt.Errorf("download set %s from store %q: %w", st.Name, s.Name, err)
	}
	out := repo.Set{Name: st.Name, Dir: dir}
	out.Time, _ = repo.ParseSetName(st.Name, p.Location)
	if m, err := repo.ReadManifest(dir); err != nil {
		out.Problem = err.Error()
	} else {
		out.Manifest = m
		out.Complete = m.Status == repo.StatusComplete && m.Set == st.Name
		if !out.Complete {
			out.Problem = "its manifest does not say complete for this set"
		}
	}
	return out, nil
}

// StoreVerdict is what verifying one stored set found: nothing when it is
// good.
type StoreVerdict struct {
	Set string
	// Err is set when the set could not be downloaded; Problems are what
	// verifying the download found.
	Err      error
	Problems []repo.Problem
}

// OK says whether the stored set verified.
func (v StoreVerdict) OK() bool { return v.Err == nil && len(v.Problems) == 0 }

// VerifyStore downloads stored sets one at a time into a temporary
// directory and verifies each as mbk verify does a local set (VerifySet:
// the signature, then every file; identities decrypt encrypted artifacts);
// each download is removed after. It verifies every set in the store when
// all is set, else the one called name, or the newest complete one. The
// error is for a store that cannot be listed or lacks the set; a set that
// is bad is a verdict.
func VerifyStore(ctx context.Context, s *Stage, p *config.Pipeline, name string, all bool, identities []age.Identity, skipSignature bool) ([]StoreVerdict, error) {
	var targets []sdk.StoredSet
	if all {
		_, stored, err := RemoteSets(ctx, s, p.Location)
		if err != nil {
			return nil, fmt.Errorf("store %q: %w", s.Name, err)
		}
		targets = stored
	} else {
		st, err := RemoteSet(ctx, s, p.Location, name)
		if err != nil {
			return nil, err
		}
		targets = []sdk.StoredSet{st}
	}
	return verifyStored(ctx, s, p, targets, identities, skipSignature), nil
}

// SubsetRead is what one verify of part of a store read.
type SubsetRead struct {
	// Turn counts the verifies of this store before this one: it picks
	// the part read.
	Turn int
	// Of is how many complete sets the store holds; Verdicts are those
	// read. Incomplete counts the sets without manifest.json, which are
	// not read: an upload or a delete in progress, or one that stopped
	// (mbk sync copies such a set again while the local one exists).
	Of, Incomplete int
	Verdicts       []StoreVerdict
}

// VerifyStoreSubset downloads and verifies, as VerifyStore does, the part
// of the store's sets that this turn of the rotation picks: sub.N of sub.T
// parts, a set's part fixed by its name (so that it keeps its part while
// sets come and go), the parts read turning with a counter kept in the
// pipeline's root. Every part is read in sub.T/sub.N turns: the whole
// store every t runs of 1/t.
func VerifyStoreSubset(ctx context.Context, s *Stage, p *config.Pipeline, sub config.Subset, identities []age.Identity, skipSignature bool) (SubsetRead, error) {
	_, stored, err := RemoteSets(ctx, s, p.Location)
	if err != nil {
		return SubsetRead{}, fmt.Errorf("store %q: %w", s.Name, err)
	}
	turn, err := repo.NextVerify(p.Root, s.Name)
	if err != nil {
		return SubsetRead{}, fmt.Errorf("count the verifies of store %q: %w", s.Name, err)
	}
	out := SubsetRead{Turn: turn}
	var picked []sdk.StoredSet
	for _, st := range stored {
		switch {
		case !st.Complete():
			out.Incomplete++
		case inTurn(st.Name, sub, turn):
			picked = append(picked, st)
			out.Of++
		default:
			out.Of++
		}
	}
	out.Verdicts = verifyStored(ctx, s, p, picked, identities, skipSignature)
	return out, nil
}

// inTurn says whether a set's part is among those turn reads.
func inTurn(set string, sub config.Subset, turn int) bool {
	h := fnv.New32a()
	h.Write([]byte(set))
	part := int(h.Sum32() % uint32(sub.T))
	first := turn * sub.N % sub.T
	return (part-first+sub.T)%sub.T < sub.N
}

func verifyStored(ctx context.Context, s *Stage, p *config.Pipeline, targets []sdk.StoredSet, identities []age.Identity, skipSignature bool) []StoreVerdict {
	var out []StoreVerdict
	for _, st := range targets {
		v := StoreVerdict{Set: st.Name}
		dir, err := Fetch(ctx, s, st, os.TempDir())
		if err != nil {
			v.Err = err
		} else {
			v.Problems = VerifySet(ctx, p, dir, identities, nil, skipSignature)
			os.RemoveAll(filepath.Dir(dir))
		}
		out = append(out, v)
	}
	return out
}

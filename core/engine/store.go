package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

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
			if err := UploadSet(ctx, s, r.final, r.name); err != nil {
				return fmt.Errorf("the copy of set %s is missing from store %q: %w", r.name, s.Name, err)
			}
			r.log.Info("set copied", "store", s.Name, "set", r.name)
			for _, rs := range retains {
				client, _, err := r.e.Host.Get(ctx, rs.Plugin)
				if err != nil {
					return err
				}
				rs.Client = client
				decisions, err := RetainStore(ctx, rs, s, r.p.Location, r.name)
				for _, d := range decisions {
					if !d.Keep {
						r.log.Info("set deleted from store", "store", s.Name, "set", d.Set, "why", d.Reasons)
					}
				}
				if err != nil {
					return fmt.Errorf("retention on store %q: %w", s.Name, err)
				}
			}
			return nil
		})
		if err != nil {
			r.res.Later = append(r.res.Later, err)
			r.res.Report.Warnings = append(r.res.Report.Warnings, r.e.Redact.String(err.Error()))
		}
	}
}

// UploadSet copies a committed set to a store: every file, manifest.json
// last, as on disk, so that a half-uploaded set never looks complete.
func UploadSet(ctx context.Context, s *Stage, dir, set string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
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
	stored, err := s.Client.List(ctx, s.Wire)
	if err != nil {
		return nil, nil, err
	}
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
// same guarantees as on disk, and deletes what it may.
func RetainStore(ctx context.Context, retain, store *Stage, loc *time.Location, current string) ([]sdk.Decision, error) {
	sets, _, err := RemoteSets(ctx, store, loc)
	if err != nil {
		return nil, err
	}
	decisions, err := decide(ctx, retain, sets, loc, current)
	if err != nil {
		return decisions, err
	}
	for _, d := range decisions {
		if d.Keep {
			continue
		}
		if err := store.Client.DeleteSet(ctx, store.Wire, d.Set); err != nil {
			return decisions, fmt.Errorf("delete set %s: %w", d.Set, err)
		}
	}
	return decisions, nil
}

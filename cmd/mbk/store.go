package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// prepared loads FILE, picks a pipeline and starts its plugins.
type prepared struct {
	loader *config.Loader
	p      *config.Pipeline
	stages []*engine.Stage
	host   *pluginhost.Host
	close  func()
}

func (a *app) prepare(ctx context.Context, path, name string) (*prepared, error) {
	loader, p, err := a.loadPipeline(path, name)
	if err != nil {
		return nil, err
	}
	h := a.host(p.File.PluginDir)
	stages, diags := engine.Prepare(ctx, h, p)
	a.redact.Add(engine.Secrets(p, stages)...)
	if diags.HasErrors() {
		h.Close()
		writeDiags(os.Stderr, loader, diags)
		return nil, exitf(2, "pipeline %q is not valid", p.Name)
	}
	return &prepared{loader: loader, p: p, stages: stages, host: h, close: h.Close}, nil
}

// store finds the store stage called name (its label, or the plugin name).
func (pr *prepared) store(name string) (*engine.Stage, error) {
	var names []string
	for _, s := range pr.stages {
		if s.Kind != sdk.KindStore {
			continue
		}
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return nil, exitf(2, "pipeline %q has no store stage", pr.p.Name)
	}
	return nil, exitf(2, "pipeline %q has no store %q (it has %v)", pr.p.Name, name, names)
}

// remoteSet finds a set in a store: by name, or the newest complete one.
func remoteSet(ctx context.Context, s *engine.Stage, loc *time.Location, name string) (sdk.StoredSet, error) {
	infos, stored, err := engine.RemoteSets(ctx, s, loc)
	if err != nil {
		return sdk.StoredSet{}, err
	}
	want := name
	if want == "" {
		for i := len(infos) - 1; i >= 0; i-- {
			if infos[i].Complete {
				want = infos[i].Name
				break
			}
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

// download copies a stored set into dir.
func download(ctx context.Context, s *engine.Stage, st sdk.StoredSet, dir string) error {
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

func (a *app) syncCmd() *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "sync FILE",
		Short: "Copy every complete local set that a store lacks (after a store failed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pr, err := a.prepare(ctx, args[0], pipeline)
			if err != nil {
				return err
			}
			defer pr.close()
			local, err := repo.List(pr.p.Root, pr.p.Location)
			if err != nil {
				return exitf(1, "%v", err)
			}
			out := cmd.OutOrStdout()
			failed, stores := 0, 0
			for _, s := range pr.stages {
				if s.Kind != sdk.KindStore {
					continue
				}
				stores++
				remote, _, err := engine.RemoteSets(ctx, s, pr.p.Location)
				if err != nil {
					failed++
					fmt.Fprintf(out, "%s: cannot list: %s\n", s.Name, a.redact.String(err.Error()))
					continue
				}
				have := map[string]bool{}
				for _, r := range remote {
					have[r.Name] = r.Complete
				}
				for _, l := range local {
					if !l.Complete || have[l.Name] {
						continue
					}
					if err := engine.UploadSet(ctx, s, l.Dir, l.Name); err != nil {
						failed++
						fmt.Fprintf(out, "%s: %s: FAILED: %s\n", s.Name, l.Name, a.redact.String(err.Error()))
						continue
					}
					fmt.Fprintf(out, "%s: %s: copied\n", s.Name, l.Name)
				}
			}
			if stores == 0 {
				return exitf(2, "pipeline %q has no store stage", pr.p.Name)
			}
			if failed > 0 {
				return exitf(1, "%d copy(ies) failed", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "the pipeline, when the file has several")
	a.varFlag(cmd)
	return cmd
}

// openStore prepares FILE's pipeline and finds its store stage called name;
// the caller closes the returned pipeline.
func (a *app) openStore(ctx context.Context, file, pipeline, name string) (*prepared, *engine.Stage, error) {
	pr, err := a.prepare(ctx, file, pipeline)
	if err != nil {
		return nil, nil, err
	}
	s, err := pr.store(name)
	if err != nil {
		pr.close()
		return nil, nil, err
	}
	return pr, s, nil
}

func (a *app) listStore(cmd *cobra.Command, file, pipeline, name string, asJSON bool) error {
	ctx := cmd.Context()
	pr, s, err := a.openStore(ctx, file, pipeline, name)
	if err != nil {
		return err
	}
	defer pr.close()
	infos, stored, err := engine.RemoteSets(ctx, s, pr.p.Location)
	if err != nil {
		return exitf(1, "store %q: %s", name, a.redact.String(err.Error()))
	}
	size := map[string]int64{}
	for _, st := range stored {
		for _, f := range st.Files {
			size[st.Name] += f.Size
		}
	}
	var out []setSummary
	for i := len(infos) - 1; i >= 0; i-- {
		in := infos[i]
		sum := setSummary{Set: in.Name, Status: "complete", Bytes: size[in.Name], Dir: name + ":" + in.Name}
		if !in.Complete {
			sum.Status, sum.Problem = "incomplete", "no manifest.json in the store"
		}
		out = append(out, sum)
	}
	return printSets(cmd.OutOrStdout(), pr.p, out, asJSON)
}

// fetch downloads a stored set into a fresh private temporary directory.
func fetch(ctx context.Context, s *engine.Stage, st sdk.StoredSet, under string) (string, error) {
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
	return final, nil
}

func (a *app) verifyStore(cmd *cobra.Command, file, pipeline, name, set string, all bool, identities []string) error {
	ctx := cmd.Context()
	ids, err := loadIdentities(identities)
	if err != nil {
		return err
	}
	pr, s, err := a.openStore(ctx, file, pipeline, name)
	if err != nil {
		return err
	}
	defer pr.close()
	var targets []sdk.StoredSet
	if all {
		_, stored, err := engine.RemoteSets(ctx, s, pr.p.Location)
		if err != nil {
			return exitf(1, "store %q: %s", name, a.redact.String(err.Error()))
		}
		targets = stored
	} else {
		st, err := remoteSet(ctx, s, pr.p.Location, set)
		if err != nil {
			return exitf(1, "%s", a.redact.String(err.Error()))
		}
		targets = []sdk.StoredSet{st}
	}
	w := cmd.OutOrStdout()
	bad := 0
	for _, st := range targets {
		dir, err := fetch(ctx, s, st, os.TempDir())
		if err != nil {
			bad++
			fmt.Fprintf(w, "%s:%s: BAD: %s\n", name, st.Name, a.redact.String(err.Error()))
			continue
		}
		probs := repo.Verify(ctx, dir, ids, nil)
		os.RemoveAll(filepath.Dir(dir))
		if len(probs) == 0 {
			fmt.Fprintf(w, "%s:%s: OK\n", name, st.Name)
			continue
		}
		bad++
		for _, p := range probs {
			fmt.Fprintf(w, "%s:%s: BAD: %s\n", name, st.Name, p)
		}
	}
	if bad > 0 {
		return exitf(1, "%d of %d stored set(s) failed verification", bad, len(targets))
	}
	return nil
}

// fetchForRestore downloads a stored set under the pipeline's root and reads
// it as a local set.
func (a *app) fetchForRestore(ctx context.Context, pr *prepared, name, set string) (repo.Set, error) {
	s, err := pr.store(name)
	if err != nil {
		return repo.Set{}, err
	}
	st, err := remoteSet(ctx, s, pr.p.Location, set)
	if err != nil {
		return repo.Set{}, exitf(1, "%s", a.redact.String(err.Error()))
	}
	if !st.Complete() {
		return repo.Set{}, exitf(1, "set %s in store %q is not complete (no manifest.json): refusing to restore from it", st.Name, name)
	}
	dir, err := fetch(ctx, s, st, pr.p.Root)
	if err != nil {
		return repo.Set{}, exitf(1, "download set %s from store %q: %s", st.Name, name, a.redact.String(err.Error()))
	}
	out := repo.Set{Name: st.Name, Dir: dir}
	out.Time, _ = repo.ParseSetName(st.Name, pr.p.Location)
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

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/repo"
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
	return a.preparePipeline(ctx, loader, p)
}

// preparePipeline starts a loaded pipeline's plugins; with bad settings it
// writes the diagnostics and fails with exit 2.
func (a *app) preparePipeline(ctx context.Context, loader *config.Loader, p *config.Pipeline) (*prepared, error) {
	h := a.host(p.File)
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
	s, err := engine.FindStore(pr.p, pr.stages, name)
	if err != nil {
		return nil, stageExit(err)
	}
	return s, nil
}

func (a *app) syncCmd() *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "sync FILE",
		Short: tr.T("Copy every complete local set that a store lacks (after a store failed)"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pr, err := a.prepare(ctx, args[0], pipeline)
			if err != nil {
				return err
			}
			defer pr.close()
			copies, err := engine.Sync(ctx, pr.p, pr.stages)
			if err != nil {
				return stageExit(err)
			}
			if err := engine.RecordSync(pr.p, copies); err != nil {
				a.log.Warn("the copies are not in the run record: mbk status and the metrics see them after the next run", "error", err)
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, c := range copies {
				switch {
				case c.Set == "":
					fmt.Fprintf(out, "%s: cannot list: %s\n", c.Store.Name, a.redact.String(c.Err.Error()))
				case c.Err != nil:
					fmt.Fprintf(out, "%s: %s: FAILED: %s\n", c.Store.Name, c.Set, a.redact.String(c.Err.Error()))
				default:
					fmt.Fprintf(out, "%s: %s: copied\n", c.Store.Name, c.Set)
				}
				if c.Err != nil {
					failed++
				}
			}
			if failed > 0 {
				return exitf(1, "%d copy(ies) failed", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
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
	now := time.Now()
	for i := len(infos) - 1; i >= 0; i-- {
		in := infos[i]
		sum := setSummary{Set: in.Name, Status: "complete", Bytes: size[in.Name], Dir: name + ":" + in.Name}
		sum.markFuture(in.Time, now)
		if !in.Complete {
			sum.Status, sum.Problem = "incomplete", "no manifest.json in the store"
		} else if m, err := engine.RemoteManifest(ctx, s, in.Name); err != nil {
			sum.Problem = a.redact.String(err.Error())
		} else {
			sum.Kind = "backup"
			if m.Kind != "" {
				sum.Kind = m.Kind
			}
			sum.describe(m)
		}
		out = append(out, sum)
	}
	return printSets(cmd.OutOrStdout(), pr.p, out, asJSON)
}

func (a *app) verifyStore(cmd *cobra.Command, file, pipeline, name, set string, all bool, identities []string, skipSig bool, subset string) error {
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
	warnSkipSignature(pr.p, skipSig)
	var verdicts []engine.StoreVerdict
	bad := 0
	if subset != "" {
		sub, err := config.ParseSubset(subset)
		if err != nil {
			return exitf(2, "--read-subset %v", err)
		}
		read, err := engine.VerifyStoreSubset(ctx, s, pr.p, sub, ids, skipSig)
		if err != nil {
			return exitf(1, "%s", a.redact.String(err.Error()))
		}
		verdicts = read.Verdicts
		bad = a.printSubset(cmd.OutOrStdout(), name, sub, read)
	} else {
		verdicts, err = engine.VerifyStore(ctx, s, pr.p, set, all, ids, skipSig)
		if err != nil {
			return exitf(1, "%s", a.redact.String(err.Error()))
		}
		bad = a.printVerdicts(cmd.OutOrStdout(), name, verdicts)
	}
	if bad > 0 {
		return exitf(1, "%d of %d stored set(s) failed verification", bad, len(verdicts))
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
	out, err := engine.FetchForRestore(ctx, pr.p, s, set)
	if err != nil {
		return repo.Set{}, exitf(1, "%s", a.redact.String(err.Error()))
	}
	return out, nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// drillOpts are what a drill is asked: from the command line, or from the
// pipeline's drill block when the daemon or cron runs it.
type drillOpts struct {
	set        string // a set's name, or "" for the drill block's choice
	which      string // newest, oldest, random
	from       string // "local" or a store stage's name
	identities []string
	sample     float64
	sampleMin  int
	record     bool
	asJSON     bool
	// skipSignature drills a set whose signature does not verify.
	skipSignature bool
}

// drillOptsOf is what the pipeline's drill block says (its defaults
// without one).
func drillOptsOf(p *config.Pipeline) drillOpts {
	o := drillOpts{which: "newest", from: "local", sample: p.Drill.SamplePercent(), sampleMin: p.Drill.SampleFloor(), record: true}
	if d := p.Drill; d != nil {
		o.which, o.from = d.Set, d.From
		if d.Identity != "" {
			o.identities = []string{d.Identity}
		}
	}
	return o
}

func (a *app) drillCmd() *cobra.Command {
	var pipeline, from, which string
	var identities []string
	var sample float64
	var sampleMin int
	var asJSON, noRecord, skipSig bool
	cmd := &cobra.Command{
		Use:   "drill FILE [SET] [--from STORE] [--identity KEY]",
		Short: tr.T("Restore a set into throwaway containers and volumes and check that the site comes back"),
		Long: tr.T(`drill proves that a set brings the site back, without touching the site: the
dump and archive plugins make throwaway targets (a database server from the
same image with the same settings, a fresh volume), the set (the newest
complete one by default) is verified and restored into them, and each
plugin checks what came back with Moodle's own invariants: every table's
rows and every routine, trigger, view and event as the backup recorded;
Moodle's version, release and plugins; every file the database references
present in filedir or trashdir; and a rotating sample of the files re-hashed
against their names (1%% per drill by default, so that every file is read
over a hundred drills). Then everything made is removed (a drill that is
killed is cleaned up by the next drill or run).

The restore time is measured (the recovery time objective to report), and
the result is kept beside the sets: mbk list and mbk info show it. The
notify stages get a drill event (a failed drill also reaches those that
report failures).

--from STORE drills the copy in a store stage instead of the local one: with
--identity on a machine that has only the pipeline file, it proves the
off-site copy.

Exit 0 when every check passed, 1 when one failed or the drill could not
run, 2 for bad input.`),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			loader, p, err := a.loadPipeline(args[0], pipeline)
			if err != nil {
				return err
			}
			o := drillOptsOf(p)
			o.set, o.asJSON, o.record, o.skipSignature = argAt(args, 1), asJSON, !noRecord, skipSig
			if cmd.Flags().Changed("from") {
				o.from = from
			}
			if cmd.Flags().Changed("set") {
				o.which = which
			}
			if cmd.Flags().Changed("identity") {
				o.identities = identities
			}
			if cmd.Flags().Changed("sample") {
				if sample < 0 || sample > 100 {
					return exitf(2, "--sample is a percentage from 0 to 100, not %v", sample)
				}
				o.sample = sample
			}
			if cmd.Flags().Changed("sample-min") {
				o.sampleMin = sampleMin
			}
			if code := a.drillPipeline(ctx, cmd.OutOrStdout(), loader, p, o); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
	cmd.Flags().StringVar(&from, "from", "local", tr.T("drill the copy in this store stage (downloaded and verified first)"))
	cmd.Flags().StringVar(&which, "set", "newest", tr.T("without SET: newest, oldest or random complete set"))
	cmd.Flags().StringArrayVar(&identities, "identity", nil, tr.T("age identity file, for an encrypted set"))
	cmd.Flags().Float64Var(&sample, "sample", config.DefaultDrillSample, tr.T("percentage of the content-addressed files re-hashed (100 reads every file)"))
	cmd.Flags().IntVar(&sampleMin, "sample-min", config.DefaultDrillSampleMin, tr.T("re-hash at least this many files"))
	cmd.Flags().BoolVar(&asJSON, "json", false, tr.T("print the result as JSON"))
	cmd.Flags().BoolVar(&noRecord, "no-record", false, tr.T("do not keep the result beside the sets"))
	skipSignatureFlag(cmd, &skipSig)
	a.varFlag(cmd)
	return cmd
}

// drillPipeline runs one drill and reports it; it returns the exit code.
func (a *app) drillPipeline(ctx context.Context, out io.Writer, loader *config.Loader, p *config.Pipeline, o drillOpts) int {
	pr, err := a.preparePipeline(ctx, loader, p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mbk: %v: no drill\n", err)
		return 2
	}
	defer pr.close()
	h, stages := pr.host, pr.stages
	var store *engine.Stage
	if o.from != "local" {
		s, err := engine.FindStore(p, stages, o.from)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mbk: %v\n", err)
			return 2
		}
		store = s
	}
	ids, err := loadIdentities(o.identities)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mbk: %v\n", err)
		return 2
	}
	warnSkipSignature(p, o.skipSignature)
	timeout := config.DefaultDrillTimeout
	if p.Drill != nil {
		timeout = p.Drill.TimeoutSeconds
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	e := &engine.Engine{Host: h, Log: a.log, Redact: a.redact, Version: version, Identities: ids}
	job := engine.DrillJob{Pipeline: p, Stages: stages, From: o.from, Sample: o.sample, SampleMin: o.sampleMin, Record: o.record}
	job.Set = func(ctx context.Context, under string) (repo.Set, error) {
		var set repo.Set
		var err error
		if store != nil {
			if set, err = engine.FetchSet(ctx, p, store, o.set, under); err != nil {
				return set, err
			}
		} else if o.set != "" {
			if set, err = findSet(p, o.set); err != nil {
				return set, err
			}
		} else {
			sets, err := repo.List(p.Root, p.Location)
			if err != nil {
				return set, err
			}
			if set, err = engine.PickDrillSet(sets, o.which, time.Now(), rand.IntN); err != nil {
				return set, fmt.Errorf("%w in %s", err, p.Root)
			}
		}
		if !set.Complete {
			return set, fmt.Errorf("set %s is not complete (%s)", set.Name, set.Problem)
		}
		if encrypted(set.Manifest) && len(ids) == 0 {
			return set, fmt.Errorf("set %s is encrypted: give its age identity with --identity FILE (or identity in the drill block)", set.Name)
		}
		if probs := engine.VerifySet(ctx, p, set.Dir, ids, nil, o.skipSignature); len(probs) > 0 {
			var lines []string
			for _, pr := range probs {
				lines = append(lines, pr.String())
			}
			return set, fmt.Errorf("set %s failed verification: %s", set.Name, strings.Join(lines, "; "))
		}
		return set, nil
	}
	rep, err := e.Drill(ctx, job)
	if err != nil {
		// Not even begun (another drill runs, the root cannot be written):
		// nothing to record, but the administrator must hear of it.
		rep.Error = a.redact.String(err.Error())
	}
	if nerr := e.FinishDrill(ctx, job, rep); nerr != nil {
		a.log.Error("after the drill", "error", a.redact.String(nerr.Error()))
	}
	if o.record {
		a.writeTextfiles(p)
	}
	if o.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printDrill(out, p, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// printDrill writes a drill's result for a person.
func printDrill(w io.Writer, p *config.Pipeline, r sdk.DrillReport) {
	verdict := tr.T("PASSED")
	if !r.OK {
		verdict = tr.T("FAILED")
	}
	set := r.Set
	if set == "" {
		set = tr.T("(none)")
	}
	fmt.Fprintln(w, tr.T("Drill of set %s (%s) of pipeline %q: %s", set, r.From, p.Name, verdict))
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", r.Error)
	}
	for _, s := range r.Sandboxes {
		fmt.Fprintln(w, "  "+tr.T("sandbox: %s", s))
	}
	if r.Restore > 0 {
		fmt.Fprintln(w, tr.T("Restore time: %s (the recovery time to report); whole drill %s", r.Restore.Round(time.Millisecond), r.Duration.Round(time.Millisecond)))
	}
	if len(r.Checks) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		mark := tr.T("ok")
		if !c.OK {
			mark = tr.T("FAIL")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", mark, c.Stage, c.Name, c.Summary)
	}
	tw.Flush()
	for _, c := range r.Failed() {
		for _, pr := range c.Problems {
			fmt.Fprintf(w, "    %s %s: %s\n", c.Stage, c.Name, pr)
		}
	}
}

// drillLine says, for mbk list, how a set's newest drill went.
func drillLine(r *sdk.DrillReport) string {
	if r == nil {
		return "-"
	}
	v := tr.T("passed")
	if !r.OK {
		v = tr.T("FAILED")
	}
	return tr.T("%s %s (restore %s)", v, r.Started.Local().Format("2006-01-02"), r.Restore.Round(time.Second))
}

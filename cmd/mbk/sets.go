package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/dustin/go-humanize"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// loadPipeline loads FILE and picks one pipeline (--pipeline, or the only one).
func (a *app) loadPipeline(path, name string) (*config.Loader, *config.Pipeline, error) {
	loader, err := a.loader()
	if err != nil {
		return nil, nil, err
	}
	f, diags := loader.Load(path)
	if diags.HasErrors() {
		writeDiags(os.Stderr, loader, diags)
		return nil, nil, exitf(2, "%s is not valid", path)
	}
	p, err := f.Pipeline(name)
	if err != nil {
		return nil, nil, exitf(2, "%v", err)
	}
	return loader, p, nil
}

// setSummary is one line of `mbk list`.
type setSummary struct {
	Set     string `json:"set"`
	Status  string `json:"status"` // complete, incomplete
	Problem string `json:"problem,omitempty"`
	// Kind is "backup", or "pre-restore" for a restore's safety copy;
	// empty for a stored set without a readable manifest.
	Kind string `json:"kind,omitempty"`
	// Host is the machine the set was made on.
	Host string `json:"host,omitempty"`
	// HostID is that machine's id (repo.MachineID).
	HostID   string    `json:"host_id,omitempty"`
	Bytes    int64     `json:"bytes"`
	Started  time.Time `json:"started,omitzero"`
	Duration string    `json:"duration,omitempty"`
	Dir      string    `json:"dir"`
	// Drill is the set's newest drill (mbk drill), when it had one.
	Drill *sdk.DrillReport `json:"drill,omitempty"`
	// Future marks a set dated more than an hour ahead of this machine's
	// clock (repo.Future): not counted by retention, not restored by
	// default. Ahead says by how much.
	Future bool   `json:"future,omitempty"`
	Ahead  string `json:"ahead,omitempty"`
}

// markFuture marks the summary of a set dated t when it lies ahead of now.
func (s *setSummary) markFuture(t, now time.Time) {
	if repo.Future(t, now) {
		s.Future, s.Ahead = true, repo.Ahead(t, now)
	}
}

func summarize(s repo.Set, now time.Time) setSummary {
	out := setSummary{Set: s.Name, Status: "complete", Kind: "backup", Dir: s.Dir, Bytes: s.Size()}
	out.Drill, _ = repo.ReadDrillRecord(filepath.Dir(s.Dir), s.Name)
	out.markFuture(s.Time, now)
	if s.PreRestore() {
		out.Kind = repo.KindPreRestore
	}
	if !s.Complete {
		out.Status, out.Problem = "incomplete", s.Problem
	}
	if m := s.Manifest; m != nil {
		out.describe(m)
	}
	return out
}

// describe fills in what a set's manifest says.
func (s *setSummary) describe(m *repo.Manifest) {
	s.Host, s.HostID = m.Host, m.HostID
	if !m.Finished.IsZero() {
		s.Started = m.Started
		s.Duration = m.Finished.Sub(m.Started).Round(time.Second).String()
	}
}

func (a *app) listCmd() *cobra.Command {
	var pipeline, store string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list FILE [--store NAME]",
		Short: tr.T("List a pipeline's backup sets, newest first, with status, size and duration"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if store != "" {
				return a.listStore(cmd, args[0], pipeline, store, asJSON)
			}
			_, p, err := a.loadPipeline(args[0], pipeline)
			if err != nil {
				return err
			}
			sets, err := repo.List(p.Root, p.Location)
			if err != nil {
				return exitf(1, "list %s: %v", p.Root, err)
			}
			var out []setSummary
			now := time.Now()
			for i := len(sets) - 1; i >= 0; i-- {
				out = append(out, summarize(sets[i], now))
			}
			return printSets(cmd.OutOrStdout(), p, out, asJSON)
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
	cmd.Flags().BoolVar(&asJSON, "json", false, tr.T("print JSON"))
	cmd.Flags().StringVar(&store, "store", "", tr.T("list the copies in this store stage instead of the local sets"))
	a.varFlag(cmd)
	return cmd
}

func printSets(w io.Writer, p *config.Pipeline, sets []setSummary, asJSON bool) error {
	if asJSON {
		if sets == nil {
			sets = []setSummary{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(sets)
	}
	if len(sets) == 0 {
		fmt.Fprintln(w, tr.T("no sets in %s", p.Root))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, tr.T("SET\tKIND\tSTATUS\tSIZE\tDURATION\tDRILL\tNOTE"))
	future := 0
	me := thisMachine()
	for _, s := range sets {
		status := s.Status
		if s.Problem != "" {
			status += " (" + s.Problem + ")"
		}
		kind := s.Kind
		if kind == "" {
			kind = "-"
		}
		drill := "-"
		if s.Kind != "" {
			drill = drillLine(s.Drill)
		}
		var notes []string
		if s.Future {
			notes = append(notes, tr.T("FUTURE: dated %s ahead of the clock", s.Ahead))
			future++
		}
		if note := me.madeOn(s.Host, s.HostID); note != "" {
			notes = append(notes, note)
		}
		note := strings.Join(notes, "; ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Set, kind, status, tr.IBytes(uint64(s.Bytes)), s.Duration, drill, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, tr.T("%d set(s)", len(sets)))
	if future > 0 {
		fmt.Fprint(w, "\n"+tr.T("%d set(s) FUTURE: dated more than an hour ahead of this machine's clock, made while it was wrong\n"+
			"(or it is wrong now). Retention neither counts nor deletes them and restore takes them only by name.\n"+
			"Check the clock (timedatectl), then delete such a set by hand if it is not wanted.\n", future))
	}
	return nil
}

// findSet resolves SET, or when it is empty the set a restore takes by
// default (repo.Latest: the newest complete backup not dated ahead of the
// clock).
func findSet(p *config.Pipeline, name string) (repo.Set, error) {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return repo.Set{}, err
	}
	if name == "" {
		now := time.Now()
		if s, ok := repo.Latest(sets, now); ok {
			return s, nil
		}
		ahead := 0
		for _, s := range sets {
			if s.Complete && !s.PreRestore() && s.Future(now) {
				ahead++
			}
		}
		if ahead > 0 {
			return repo.Set{}, fmt.Errorf("no complete backup set in %s but %d dated ahead of this machine's clock (mbk list marks them FUTURE): name the set", p.Root, ahead)
		}
		return repo.Set{}, fmt.Errorf("no complete backup set in %s", p.Root)
	}
	for _, s := range sets {
		if s.Name == name {
			return s, nil
		}
	}
	return repo.Set{}, fmt.Errorf("no set %q in %s", name, p.Root)
}

func (a *app) infoCmd() *cobra.Command {
	var pipeline string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info FILE [SET]",
		Short: tr.T("Show a set's manifest in human form (the newest complete set by default)"),
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, p, err := a.loadPipeline(args[0], pipeline)
			if err != nil {
				return err
			}
			s, err := findSet(p, argAt(args, 1))
			if err != nil {
				return exitf(1, "%v", err)
			}
			if s.Manifest == nil {
				return exitf(1, "set %s: %s", s.Name, s.Problem)
			}
			w := cmd.OutOrStdout()
			drill, err := repo.ReadDrillRecord(p.Root, s.Name)
			if err != nil {
				a.log.Warn("cannot read the set's drill record", "error", err)
			}
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					*repo.Manifest
					Drill *sdk.DrillReport `json:"drill,omitempty"`
				}{s.Manifest, drill})
			}
			printInfo(w, s)
			if drill != nil {
				fmt.Fprintln(w, "\n--- "+tr.T("last drill"))
				printDrill(w, p, *drill)
			} else {
				fmt.Fprintln(w, "\n--- "+tr.T("never drilled: %s", engine.Command(p, "drill", s.Name)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
	cmd.Flags().BoolVar(&asJSON, "json", false, tr.T("print the manifest (and the last drill) as JSON"))
	a.varFlag(cmd)
	return cmd
}

func argAt(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func printInfo(w io.Writer, s repo.Set) {
	m := s.Manifest
	status := m.Status
	if !s.Complete {
		status += " — " + s.Problem
	}
	for _, row := range [][2]string{
		{tr.T("Set:"), m.Set + " (" + s.Dir + ")"},
		{tr.T("Pipeline:"), m.Pipeline},
		{tr.T("Status:"), status},
		{tr.T("Host:"), m.Host},
		{tr.T("Started:"), m.Started.Local().Format(time.RFC3339)},
		{tr.T("Finished:"), m.Finished.Local().Format(time.RFC3339) + " (" + m.Finished.Sub(m.Started).Round(time.Millisecond).String() + ")"},
		{"mbk:", m.MBKVersion},
	} {
		fmt.Fprintf(w, "%-10s %s\n", row[0], row[1])
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, tr.T("STAGE\tPLUGIN\tVERSION\tSTATUS\tDURATION"))
	for _, st := range m.Stages {
		fmt.Fprintf(tw, "%s %q\t%s\t%s\t%s\t%s\n", st.Kind, st.Name, st.Plugin, st.PluginVersion, st.Status, time.Duration(st.DurationMS)*time.Millisecond)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, a := range m.Artifacts {
		fmt.Fprintf(w, "%s\n  %s\n  sha256 %s\n", a.File, tr.T("%s stored (%s raw, %s), %s %q, %s", tr.IBytes(uint64(a.Size)), tr.IBytes(uint64(a.RawSize)),
			a.Compression, a.Stage, a.Name, time.Duration(a.DurationMS)*time.Millisecond), a.SHA256)
	}
	for _, name := range []string{"DB_INFO.txt", "MOODLEDATA_INFO.txt"} {
		if b, err := os.ReadFile(filepath.Join(s.Dir, name)); err == nil {
			fmt.Fprintf(w, "\n--- %s\n%s", name, b)
		}
	}
}

func (a *app) verifyCmd() *cobra.Command {
	var pipeline, store, subset string
	var all, deep, skipSig, scheduled, readData bool
	var identities []string
	var sample float64
	cmd := &cobra.Command{
		Use:   "verify FILE [SET | --all] [--deep]",
		Short: tr.T("Re-hash every file against SHA256SUMS and read each artifact to its end"),
		Long: tr.T(`verify re-hashes every file of a set (the newest complete one by default,
every set with --all) against SHA256SUMS and reads each artifact to its end.

--deep then drills each set that verified (see mbk drill): restored into
throwaway containers and volumes, and checked with Moodle's own invariants.

With a signing block, each set's signature is checked first against the
pipeline's public key: a set that is unsigned, signed by another key or
changed since is refused (--insecure-skip-signature accepts it).

--store NAME verifies the copies in a store stage instead, downloaded to a
temporary directory; --read-subset n/t reads n t-ths of them, a different
part each time (the part turns with a counter kept in the root), so that
1/7 reads the whole store every 7 runs. --scheduled runs the pipeline's
verify block, as mbk daemon and mbk cron install do: it first copies to the
block's store every local set it lacks (as mbk sync), then reads the
block's read_subset of it, and tells the notify stages of any failure.`),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case scheduled && (store != "" || subset != "" || all || deep || len(args) > 1):
				return exitf(2, "--scheduled runs the pipeline's verify block as it is: give no set, --store, --read-subset, --all or --deep")
			case subset != "" && (store == "" || all || len(args) > 1):
				return exitf(2, "--read-subset goes with --store, without a set or --all: it picks the sets itself")
			case scheduled:
				loader, p, err := a.loadPipeline(args[0], pipeline)
				if err != nil {
					return err
				}
				ctx, stop := signalContext(cmd.Context())
				defer stop()
				if code := a.scheduledVerify(ctx, cmd.OutOrStdout(), loader, p); code != 0 {
					return &exitError{code: code}
				}
				return nil
			case store != "":
				return a.verifyStore(cmd, args[0], pipeline, store, argAt(args, 1), all, identities, skipSig, subset)
			}
			loader, p, err := a.loadPipeline(args[0], pipeline)
			if err != nil {
				return err
			}
			var targets []repo.Set
			if all {
				if targets, err = repo.List(p.Root, p.Location); err != nil {
					return exitf(1, "%v", err)
				}
			} else {
				s, err := findSet(p, argAt(args, 1))
				if err != nil {
					return exitf(1, "%v", err)
				}
				targets = []repo.Set{s}
			}
			ids, err := loadIdentities(identities)
			if err != nil {
				return err
			}
			warnSkipSignature(p, skipSig)
			w := cmd.OutOrStdout()
			bad := 0
			for _, s := range targets {
				progress, stop := a.verifyProgress(s.Dir)
				probs := engine.VerifySet(cmd.Context(), p, s.Dir, ids, progress, skipSig)
				stop()
				if readData && len(probs) == 0 {
					probs = engine.VerifyPool(cmd.Context(), s.Dir, true, ids)
				}
				if len(probs) == 0 {
					fmt.Fprintf(w, "%s: OK\n", s.Name)
					if deep && s.Complete {
						o := drillOptsOf(p)
						o.set, o.identities, o.from, o.skipSignature = s.Name, identities, "local", skipSig
						if cmd.Flags().Changed("sample") {
							o.sample = sample
						}
						if a.drillPipeline(cmd.Context(), w, loader, p, o) != 0 {
							bad++
						}
					}
					continue
				}
				bad++
				for _, pr := range probs {
					fmt.Fprintf(w, "%s: BAD: %s\n", s.Name, pr)
				}
			}
			if bad > 0 {
				return exitf(1, "%d of %d set(s) failed verification", bad, len(targets))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
	cmd.Flags().BoolVar(&all, "all", false, tr.T("verify every set"))
	cmd.Flags().StringArrayVar(&identities, "identity", nil, tr.T("age identity file: also decrypt encrypted artifacts and read them to their end"))
	cmd.Flags().StringVar(&store, "store", "", tr.T("verify the copies in this store stage (downloaded to a temporary directory)"))
	cmd.Flags().StringVar(&subset, "read-subset", "", tr.T("with --store: read n/t of the stored sets, a different part each time (1/7: all of them every 7 runs)"))
	cmd.Flags().BoolVar(&scheduled, "scheduled", false, tr.T("run the pipeline's verify block (as daemon and cron do): copy what its store lacks, read its read_subset, notify a failure"))
	skipSignatureFlag(cmd, &skipSig)
	cmd.Flags().BoolVar(&readData, "read-data", false, tr.T("also read every pooled blob the set references (filedir = \"pool\") and check it still hashes to its name; without it, each is only checked to be there"))
	cmd.Flags().BoolVar(&deep, "deep", false, tr.T("also drill each set that verified: restore it into throwaway targets and check it (see mbk drill)"))
	cmd.Flags().Float64Var(&sample, "sample", config.DefaultDrillSample, tr.T("with --deep: percentage of content-addressed files re-hashed"))
	a.varFlag(cmd)
	return cmd
}

func (a *app) pruneCmd() *cobra.Command {
	var pipeline, store string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune FILE [--store NAME] [--dry-run]",
		Short: tr.T("Apply the pipeline's retention on its own, explaining each keep and delete"),
		Long: tr.T(`prune applies the pipeline's retain stages to its local sets, as a run does
after its commit, and says why each set is kept or deleted.

--store NAME applies them to the sets in that store stage instead: the job
of a trusted host that holds credentials allowed to delete there, when the
backup host's store stage says delete = false (and so never deletes).`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pr, err := a.prepare(cmd.Context(), args[0], pipeline)
			if err != nil {
				return err
			}
			defer pr.close()
			if store == "" {
				pruned, err := engine.Prune(cmd.Context(), pr.p, pr.stages, time.Now(), dryRun)
				return a.printPruned(cmd.OutOrStdout(), pruned, err, dryRun)
			}
			s, err := pr.store(store)
			if err != nil {
				return err
			}
			if !s.Delete && !dryRun {
				fmt.Fprintf(cmd.ErrOrStderr(), "mbk: store %q says delete = false: nothing is deleted there, only what would be is shown\n", s.Name)
				dryRun = true
			}
			pruned, err := engine.PruneStore(cmd.Context(), pr.p, pr.stages, s, time.Now(), dryRun)
			return a.printPruned(cmd.OutOrStdout(), pruned, err, dryRun)
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
	cmd.Flags().StringVar(&store, "store", "", tr.T("apply retention to the sets in this store stage"))
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, tr.T("say what would be deleted, delete nothing"))
	a.varFlag(cmd)
	return cmd
}

// printPruned says what retention decided and deleted; err is what stopped it.
func (a *app) printPruned(w io.Writer, pruned []engine.Pruned, err error, dryRun bool) error {
	deleted := 0
	for _, pr := range pruned {
		for _, d := range pr.Decisions {
			verdict := "keep  "
			if !d.Keep {
				verdict = "delete"
				if dryRun {
					verdict = "would delete"
				}
			}
			fmt.Fprintf(w, "%s  %s  %s\n", verdict, d.Set, strings.Join(d.Reasons, "; "))
		}
		deleted += len(pr.Deleted)
		if pr.Swept != nil {
			what := "swept"
			if dryRun {
				what = "would sweep"
			}
			fmt.Fprintf(w, "pool: %s %d unreferenced blob(s), %s; %d kept\n", what, pr.Swept.Blobs, humanize.IBytes(uint64(pr.Swept.Bytes)), pr.Swept.Kept)
		}
	}
	var ns *engine.NoStageError
	switch {
	case errors.As(err, &ns):
		return exitf(2, "%v", err)
	case err != nil:
		return exitf(1, "%s", a.redact.String(err.Error()))
	}
	if !dryRun {
		fmt.Fprintf(w, "%d set(s) deleted\n", deleted)
	}
	return nil
}

// stageExit maps an engine error to mbk's exit code: a pipeline that lacks
// the stage a command needs is a configuration mistake (2), anything else
// a failure (1).
func stageExit(err error) error {
	var ns *engine.NoStageError
	if errors.As(err, &ns) {
		return exitf(2, "%v", err)
	}
	return exitf(1, "%v", err)
}

// loadIdentities reads age identity files (private keys).
func loadIdentities(paths []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, exitf(2, "--identity: %v", err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return nil, exitf(2, "--identity %s: %v", p, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// machine is this one: its host name and id (repo.MachineID).
type machine struct{ name, id string }

func thisMachine() machine {
	name, _ := os.Hostname()
	return machine{name, repo.MachineID()}
}

// other says whether a set made on host under machine id hostID was made
// on another machine, and whether that one has this one's name (a clone
// of it: the same name, another id). Nothing said counts as this one.
func (me machine) other(host, hostID string) (other, sameName bool) {
	switch {
	case host != "" && host != me.name:
		return true, false
	case hostID != "" && me.id != "" && hostID != me.id:
		return true, true
	}
	return false, false
}

// madeOn is mbk list's note on which other machine made a set; "" for
// this one.
func (me machine) madeOn(host, hostID string) string {
	switch other, sameName := me.other(host, hostID); {
	case !other:
		return ""
	case sameName:
		return tr.T("made on another machine named %q", host)
	}
	return tr.T("made on host %q", host)
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// DrillJob is one drill: a set restored into throwaway targets and checked.
type DrillJob struct {
	Pipeline *config.Pipeline
	Stages   []*Stage
	// Set finds the set to drill, complete and verified, once the drill
	// holds the root's drill lock; a download from a store goes under
	// the directory it is given, which the drill empties when it ends.
	Set  func(ctx context.Context, under string) (repo.Set, error)
	From string // "local", or the store the set came from
	// Sample is the percentage of content-addressed files re-read
	// (0-100) and SampleMin the fewest.
	Sample    float64
	SampleMin int
	// Record keeps the result beside the sets (mbk list, mbk info).
	Record bool
}

// drillTeardownTimeout bounds removing a drill's sandboxes, which runs with
// a fresh context: the drill's own may have ended (timeout, Ctrl-C).
const drillTeardownTimeout = 5 * time.Minute

// Drill restores a set into sandboxes the dump and archive plugins make (a
// database server like the live one, a fresh volume), never into the site,
// times the restore, runs every plugin's checks (passing the references the
// database makes to the files' checker), removes the sandboxes and, with
// job.Record, keeps the result beside the sets. The report says whether
// every check passed; the error is for a drill that could not run at all.
//
// A marker in the root names the sandboxes before they exist, so that a
// drill that is killed is cleaned up by the next drill or run
// (SweepDrill).
func (e *Engine) Drill(ctx context.Context, job DrillJob) (sdk.DrillReport, error) {
	p := job.Pipeline
	rep := sdk.DrillReport{From: job.From, Started: time.Now().UTC()}
	if err := os.MkdirAll(p.Root, repo.DirMode); err != nil {
		return rep, err
	}
	lock, err := repo.AcquireDrill(p.Root)
	if err != nil {
		return rep, err
	}
	defer lock.Release()
	e.Redact.Add(Secrets(p, job.Stages)...)
	if err := e.sweepDrill(ctx, p, job.Stages); err != nil {
		return rep, err
	}
	downloads := filepath.Join(p.Root, repo.DrillDir)
	defer e.removeDownloads(downloads)
	fail := func(err error) (sdk.DrillReport, error) {
		rep.Error = e.Redact.String(err.Error())
		rep.OK = false
		rep.Duration = time.Since(rep.Started)
		return rep, nil
	}
	if err := os.MkdirAll(downloads, repo.DirMode); err != nil {
		return rep, err
	}
	set, err := job.Set(ctx, downloads)
	rep.Set = set.Name
	if err != nil {
		return fail(err)
	}
	steps, err := PlanRestore(job.Stages, set.Manifest, "")
	if err != nil {
		return fail(err)
	}
	label := drillLabel(p.Name)
	log := e.Log.Named(p.Name).With("drill", label)
	marker := repo.DrillMarker{Pipeline: p.Name, Set: set.Name, Label: label, Started: rep.Started, PID: os.Getpid()}
	for _, st := range steps {
		if id := st.Stage.Kind + "/" + st.Stage.Name; !slices.Contains(marker.Stages, id) {
			marker.Stages = append(marker.Stages, id)
		}
	}
	if err := repo.WriteDrillMarker(p.Root, marker); err != nil {
		return rep, err
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drillTeardownTimeout)
		defer cancel()
		if err := e.teardown(tctx, p, job.Stages, marker); err != nil {
			log.Error("the drill's sandboxes were not all removed: the next drill or run tries again", "error", e.Redact.String(err.Error()))
			return
		}
		if err := repo.ClearDrillMarker(p.Root); err != nil {
			log.Error("cannot remove the drill marker", "error", err)
		}
	}()

	// Sandboxes, one per stage, each asked for with the first artifact it
	// restores.
	req := RestoreRequest{Flags: map[string]string{}}
	made := map[*Stage]bool{}
	for _, st := range steps {
		if made[st.Stage] {
			continue
		}
		made[st.Stage] = true
		client, _, err := e.Host.Get(ctx, st.Stage.Plugin)
		if err != nil {
			return fail(err)
		}
		st.Stage.Client = client
		box, err := client.Sandbox(ctx, st.Stage.Wire, st.Artifact.ArtifactID, label, st.Artifact.Details)
		if errors.Is(err, pluginhost.ErrUnsupported) {
			return fail(fmt.Errorf("stage %s: plugin %q cannot make a drill sandbox, so the set cannot be restored away from the site", st.Stage.ID(), st.Stage.Plugin))
		}
		if err != nil {
			return fail(fmt.Errorf("stage %s: make the drill's sandbox: %w", st.Stage.ID(), err))
		}
		if len(box.Options) == 0 {
			return fail(fmt.Errorf("stage %s: plugin %q made a sandbox but named no restore option pointing at it: refusing to restore over the site", st.Stage.ID(), st.Stage.Plugin))
		}
		log.Info("sandbox made", "stage", st.Stage.ID(), "sandbox", box.Summary)
		rep.Sandboxes = append(rep.Sandboxes, st.Stage.ID()+": "+box.Summary)
		keys := make([]string, 0, len(box.Options))
		for k := range box.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			req.Opts = append(req.Opts, st.Stage.Name+"."+k+"="+box.Options[k])
		}
	}
	options, diags := BindRestore(steps, req)
	if diags.HasErrors() {
		return fail(fmt.Errorf("the sandboxes' restore options: %s", diags.Error()))
	}

	log.Info("drill restore started", "set", set.Name, "from", job.From)
	t0 := time.Now()
	if err := e.restore(ctx, set.Dir, steps, options, p.Parallel, nil); err != nil {
		rep.Restore = time.Since(t0)
		return fail(fmt.Errorf("the restore failed: %w", err))
	}
	rep.Restore = time.Since(t0)
	log.Info("drill restore finished", "duration", rep.Restore.Round(time.Millisecond))

	count, err := repo.NextDrill(p.Root)
	if err != nil {
		return fail(err)
	}
	sample := drillSample(job.Sample, job.SampleMin, count)
	checks, err := e.drillChecks(ctx, steps, options, sample)
	rep.Checks = checks
	if err != nil {
		return fail(err)
	}
	rep.OK = len(rep.Failed()) == 0
	rep.Duration = time.Since(rep.Started)
	return rep, nil
}

// FinishDrill keeps a drill's record (when the job asks) and tells the
// notify stages: every one whose `on` lists "drill", and for a failed drill
// those listing "failure" too.
func (e *Engine) FinishDrill(ctx context.Context, job DrillJob, rep sdk.DrillReport) error {
	var errs []error
	if job.Record && rep.Set != "" {
		if err := repo.WriteDrillRecord(job.Pipeline.Root, rep); err != nil {
			errs = append(errs, fmt.Errorf("keep the drill's record: %w", err))
		}
	}
	status := sdk.EventSuccess
	if !rep.OK {
		status = sdk.EventFailure
	}
	r := instantReport(job.Pipeline, status)
	r.Set, r.Started, r.Drill = rep.Set, rep.Started, &rep
	r.Error = rep.Error
	if r.Error == "" && !rep.OK {
		var names []string
		for _, c := range rep.Failed() {
			names = append(names, c.Stage+" "+c.Name)
		}
		r.Error = "checks failed: " + strings.Join(names, ", ")
	}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, s := range stagesOf(job.Stages, sdk.KindNotify) {
		if !slices.Contains(s.On, sdk.EventDrill) && !(status == sdk.EventFailure && slices.Contains(s.On, sdk.EventFailure)) {
			continue
		}
		client, _, err := e.Host.Get(nctx, s.Plugin)
		if err == nil {
			var summary string
			summary, err = client.Notify(nctx, s.Wire, sdk.EventDrill, r)
			if err == nil {
				e.Log.Info("drill notification sent", "stage", s.ID(), "summary", summary)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("notify stage %s: %s", s.ID(), e.Redact.String(err.Error())))
		}
	}
	return errors.Join(errs...)
}

// drillChecks asks each step's plugin to check what it restored, in the
// order of the set (database first): the references one writes are handed
// to the checks after it.
func (e *Engine) drillChecks(ctx context.Context, steps []RestoreStep, options map[*Stage]BoundOptions, sample sdk.Sample) ([]sdk.DrillCheck, error) {
	work, err := os.MkdirTemp("", "mbk-drill-refs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	all := filepath.Join(work, "refs")
	var haveRefs bool
	var out []sdk.DrillCheck
	for i, st := range steps {
		client, _, err := e.Host.Get(ctx, st.Stage.Plugin)
		if err != nil {
			return out, err
		}
		refsIn := ""
		if haveRefs {
			refsIn = all
		}
		refsOut := filepath.Join(work, fmt.Sprintf("refs-%d", i))
		checks, err := client.Check(ctx, st.Stage.Wire, pluginhost.CheckArgs{
			ArtifactID: st.Artifact.ArtifactID, Options: options[st.Stage].Wire, Details: st.Artifact.Details,
			RefsIn: refsIn, RefsOut: refsOut, Sample: sample,
		})
		if errors.Is(err, pluginhost.ErrUnsupported) {
			out = append(out, sdk.DrillCheck{Stage: st.Stage.ID(), Check: sdk.Check{Name: "restore", OK: true,
				Summary: fmt.Sprintf("%s restored in full (%d bytes); plugin %q has no further checks", st.Artifact.File, st.Artifact.RawSize, st.Stage.Plugin)}})
			continue
		}
		if err != nil {
			return out, fmt.Errorf("check %s with %s: %w", st.Artifact.File, st.Stage.ID(), err)
		}
		for _, c := range checks {
			c.Summary = e.Redact.String(c.Summary)
			for j := range c.Problems {
				c.Problems[j] = e.Redact.String(c.Problems[j])
			}
			out = append(out, sdk.DrillCheck{Stage: st.Stage.ID(), Check: c})
		}
		if n, err := appendFile(all, refsOut); err != nil {
			return out, err
		} else if n > 0 {
			haveRefs = true
		}
	}
	return out, nil
}

// appendFile adds src (when it exists) to the end of dst.
func appendFile(dst, src string) (int64, error) {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// drillSample turns a percentage into the rotating part this drill reads:
// 1% is part (count mod 100)+1 of 100, so 100 drills read every file once.
func drillSample(percent float64, floor, count int) sdk.Sample {
	if percent <= 0 {
		return sdk.Sample{}
	}
	of := int(math.Round(100 / percent))
	if of < 1 {
		of = 1
	}
	return sdk.Sample{Part: count%of + 1, Of: of, Min: floor}
}

// drillLabel names a drill's sandboxes: unique, and a valid container and
// volume name.
func drillLabel(pipeline string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, pipeline)
	return fmt.Sprintf("mbk-drill-%s-%s", clean, time.Now().UTC().Format("20060102t150405.000000000")[:22])
}

// SweepDrill removes what a killed drill left (its marker names it), when no
// drill is running. Runs call it under the root's lock; it needs the
// pipeline's prepared stages to reach the plugins that made the sandboxes.
func (e *Engine) SweepDrill(ctx context.Context, p *config.Pipeline, stages []*Stage) error {
	if repo.DrillRunning(p.Root) {
		return nil
	}
	return e.sweepDrill(ctx, p, stages)
}

// removeDownloads removes the downloads of drills from a store under dir.
func (e *Engine) removeDownloads(dir string) {
	left, err := repo.Leftovers(dir)
	if err != nil {
		return
	}
	for _, l := range left {
		if err := os.RemoveAll(l.Dir); err != nil {
			e.Log.Warn("cannot remove a drill's download", "dir", l.Dir, "error", err)
		}
	}
}

func (e *Engine) sweepDrill(ctx context.Context, p *config.Pipeline, stages []*Stage) error {
	// Downloads of drills from a store, which a killed drill leaves.
	e.removeDownloads(filepath.Join(p.Root, repo.DrillDir))
	m, err := repo.ReadDrillMarker(p.Root)
	if err != nil || m == nil {
		return err
	}
	e.Log.Warn("removing what an interrupted drill left", "drill", m.Label, "set", m.Set, "started", m.Started.Format(time.RFC3339))
	if err := e.teardown(ctx, p, stages, *m); err != nil {
		return fmt.Errorf("the sandboxes of interrupted drill %s were not all removed: %w", m.Label, err)
	}
	return repo.ClearDrillMarker(p.Root)
}

// teardown asks each stage the marker names to remove its sandboxes.
func (e *Engine) teardown(ctx context.Context, p *config.Pipeline, stages []*Stage, m repo.DrillMarker) error {
	var errs []error
	for _, id := range m.Stages {
		var s *Stage
		for _, st := range stages {
			if st.Kind+"/"+st.Name == id {
				s = st
			}
		}
		if s == nil {
			errs = append(errs, fmt.Errorf("stage %s, which made a sandbox of drill %s, is no longer in pipeline %q: remove what is labelled mbk.drill=%s by hand", id, m.Label, p.Name, m.Label))
			continue
		}
		client, _, err := e.Host.Get(ctx, s.Plugin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		summary, err := client.Teardown(ctx, s.Wire, m.Label)
		if errors.Is(err, pluginhost.ErrUnsupported) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stage %s: %w", s.ID(), err))
			continue
		}
		if summary != "" {
			e.Log.Info("sandbox removed", "stage", s.ID(), "removed", summary)
		}
	}
	return errors.Join(errs...)
}

// PickDrillSet chooses the set a drill restores: the newest, oldest or a
// random complete backup (never a restore's safety copy, nor a set dated
// ahead of the clock, which is taken only by name).
func PickDrillSet(sets []repo.Set, which string, now time.Time, rnd func(n int) int) (repo.Set, error) {
	var ok []repo.Set
	for _, s := range sets {
		if s.Complete && !s.PreRestore() && !s.Future(now) {
			ok = append(ok, s)
		}
	}
	if len(ok) == 0 {
		return repo.Set{}, errors.New("no complete set to drill")
	}
	switch which {
	case "oldest":
		return ok[0], nil
	case "random":
		return ok[rnd(len(ok))], nil
	}
	return ok[len(ok)-1], nil
}

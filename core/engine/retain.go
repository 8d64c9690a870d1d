package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// Pruned is what one retain stage decided and what was deleted.
type Pruned struct {
	Stage *Stage
	// Decisions is the verdict on every set, oldest first, as the engine
	// holds it (see decide): also when it refused the verdict whole.
	Decisions []sdk.Decision
	// Deleted are the sets deleted, in order: none on a dry run, and those
	// before the one that failed when a deletion did.
	Deleted []string
	// Future are the sets dated more than an hour ahead of the clock
	// (repo.Future): kept, and never shown to the policy.
	Future []string
	// Swept is what the sweep of the root's pool removed (or, on a dry
	// run, would remove) after the deletions; nil without a pool.
	Swept *pool.Swept
}

// retain applies each retain stage once the new set is committed.
func (r *run) retain(ctx context.Context, stages []*Stage) {
	for _, s := range stagesOf(stages, sdk.KindRetain) {
		err := r.stage(ctx, s, func(ctx context.Context) error {
			pr, err := pruneLocal(ctx, s, r.p, r.name, r.e.now(), false)
			r.res.Report.Retention = append(r.res.Report.Retention, pr.Decisions...)
			for _, d := range pr.Decisions {
				verdict := "keep"
				if !d.Keep {
					verdict = "delete"
				}
				r.log.Info("retention", "set", d.Set, "verdict", verdict, "why", d.Reasons)
			}
			for _, set := range pr.Deleted {
				r.log.Info("set deleted", "set", set)
			}
			if pr.Swept != nil {
				r.log.Info("pool swept", "blobs", pr.Swept.Blobs, "bytes", pr.Swept.Bytes, "kept", pr.Swept.Kept)
			}
			return err
		})
		if err != nil {
			r.res.Later = append(r.res.Later, err)
		}
	}
}

// Prune applies a pipeline's retain stages to its local sets outside a run,
// as a run would after its commit: each stage's verdict is held to the
// engine's guarantees before anything is deleted, and with dryRun nothing
// is. It holds the root's lock while it works, so no run commits or prunes
// meanwhile. It stops at the first stage that fails, returning what each
// stage so far decided and deleted. now is the clock, for the sets dated
// ahead of it (repo.Future).
func Prune(ctx context.Context, p *config.Pipeline, stages []*Stage, now time.Time, dryRun bool) ([]Pruned, error) {
	retains := stagesOf(stages, sdk.KindRetain)
	if len(retains) == 0 {
		return nil, &NoStageError{Pipeline: p.Name, Kind: sdk.KindRetain}
	}
	lock, err := repo.Acquire(p.Root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	var out []Pruned
	for _, s := range retains {
		pr, err := pruneLocal(ctx, s, p, "", now, dryRun)
		out = append(out, pr)
		if err != nil {
			return out, fmt.Errorf("%s: %w", s.ID(), err)
		}
	}
	return out, nil
}

// pruneLocal applies one retain stage to the sets under the pipeline's
// root; the caller holds the root's lock. current is the set a run just
// committed, if any. The safety copies restores took are not the policy's
// to judge (they are no backups, and must not take a backup's place in its
// counts): each is kept for the pipeline's safety_copy_days, counted from
// the newest set not dated ahead of the clock (as the policy counts its
// days, so a stopped schedule or a clock jump never deletes one early), and
// deleted after.
func pruneLocal(ctx context.Context, s *Stage, p *config.Pipeline, current string, now time.Time, dryRun bool) (Pruned, error) {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return Pruned{Stage: s}, fmt.Errorf("list sets: %w", err)
	}
	if err := foreignSet(p, sets); err != nil {
		return Pruned{Stage: s}, err
	}
	del := func(set string) error {
		if err := repo.Delete(p.Root, set); err != nil {
			return err
		}
		return repo.DeleteDrillRecord(p.Root, set)
	}
	// A drill reads its set for a while without the root's lock: that set
	// is left out of this round, kept, and judged next time.
	drilled := ""
	if m, _ := repo.ReadDrillMarker(p.Root); m != nil && repo.DrillRunning(p.Root) {
		drilled = m.Set
	}
	var infos []sdk.SetInfo
	var safety []repo.Set
	var newest time.Time
	var held []sdk.Decision
	for _, st := range sets {
		if st.Time.After(newest) && !st.Future(now) {
			newest = st.Time
		}
		if st.Name == drilled {
			held = append(held, sdk.Decision{Set: st.Name, Keep: true, Reasons: []string{"a drill is restoring it now"}})
			continue
		}
		if st.PreRestore() {
			safety = append(safety, st)
			continue
		}
		infos = append(infos, sdk.SetInfo{Name: st.Name, Time: st.Time, Complete: st.Complete})
	}
	pr, err := prune(ctx, s, infos, p.Location, current, now, dryRun, del)
	if err != nil {
		return pr, err
	}
	pr.Decisions = append(pr.Decisions, held...)
	keep := time.Duration(p.SafetyCopyDays) * 24 * time.Hour
	for _, st := range safety {
		until := st.Time.Add(keep)
		d := sdk.Decision{Set: st.Name, Keep: !newest.After(until)}
		if st.Future(now) {
			pr.Future = append(pr.Future, st.Name)
			d.Keep, d.Reasons = true, []string{futureReason(st.Time, now)}
		} else if d.Keep {
			d.Reasons = []string{fmt.Sprintf("safety copy taken before restoring %s: kept until %s (safety_copy_days = %d)", st.Manifest.Restoring, until.Format(repo.SetNameLayout), p.SafetyCopyDays)}
		} else {
			d.Reasons = []string{fmt.Sprintf("safety copy older than %d days (safety_copy_days)", p.SafetyCopyDays)}
		}
		pr.Decisions = append(pr.Decisions, d)
		if d.Keep || dryRun {
			continue
		}
		if err := del(st.Name); err != nil {
			return pr, fmt.Errorf("delete set %s: %w", st.Name, err)
		}
		pr.Deleted = append(pr.Deleted, st.Name)
	}
	// On a dry run the sets that would go are not there to be kept.
	gone := map[string]bool{}
	if dryRun {
		for _, d := range pr.Decisions {
			if !d.Keep {
				gone[d.Set] = true
			}
		}
	}
	sw, err := SweepPool(p.Root, p.Location, gone, dryRun)
	pr.Swept = sw
	return pr, err
}

// SweepPool deletes the blobs of root's pool that no complete set
// references (the sets in gone left out), and what interrupted writes left;
// nil, and nothing done, when the root has no pool. The caller holds the
// root's lock. Mark, then sweep: every complete set's POOL_REFS is read
// before the first blob goes, so a sweep that is killed leaves only
// unreferenced blobs behind. A set whose references cannot be read stops
// the sweep: its blobs might be among those deleted.
func SweepPool(root string, loc *time.Location, gone map[string]bool, dryRun bool) (*pool.Swept, error) {
	pl, err := pool.OpenExisting(root)
	if err != nil || pl == nil {
		return nil, err
	}
	sets, err := repo.List(root, loc)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	var marks []string
	for _, st := range sets {
		if st.Complete && !gone[st.Name] {
			marks = append(marks, st.Dir)
		}
	}
	mark := func(add func(pool.Blob)) error {
		for _, dir := range marks {
			if err := pool.EachRef(dir, add); err != nil {
				return fmt.Errorf("pool not swept: set %s: %w", filepath.Base(dir), err)
			}
		}
		return nil
	}
	sw, err := pl.Sweep(mark, dryRun)
	if err != nil {
		return &sw, fmt.Errorf("sweep the pool: %w", err)
	}
	return &sw, nil
}

// prune gets a retain stage's verdict on sets (oldest first), checked by
// decide, and deletes with del what it may, unless dryRun: the one loop
// behind a run's retention, on disk and in each store, and mbk prune.
func prune(ctx context.Context, s *Stage, sets []sdk.SetInfo, loc *time.Location, current string, now time.Time, dryRun bool, del func(set string) error) (Pruned, error) {
	out := Pruned{Stage: s}
	decisions, future, err := decide(ctx, s, sets, loc, current, now)
	out.Decisions, out.Future = decisions, future
	if err != nil || dryRun {
		return out, err
	}
	for _, d := range decisions {
		if d.Keep {
			continue
		}
		if err := del(d.Set); err != nil {
			return out, fmt.Errorf("delete set %s: %w", d.Set, err)
		}
		out.Deleted = append(out.Deleted, d.Set)
	}
	return out, nil
}

// decide gets a retain stage's verdict on sets (oldest first) and holds it to
// the engine's own guarantees, whatever the plugin says: the newest complete
// set and the current one are never deleted, nor anything incomplete, and a
// verdict deleting every complete set is refused whole.
//
// A set dated more than an hour ahead of now (repo.Future) is kept and not
// shown to the policy at all, so it is neither counted nor the newest set
// ages are measured from: after a jump forward the real sets keep their
// ages, and after a jump back (which makes every older set look ahead) the
// new sets are the newest, not the first to go. Those sets are returned.
func decide(ctx context.Context, s *Stage, sets []sdk.SetInfo, loc *time.Location, current string, now time.Time) ([]sdk.Decision, []string, error) {
	var counted []sdk.SetInfo
	var future []string
	order := map[string]int{}
	for i, st := range sets {
		order[st.Name] = i
		if st.Name != current && repo.Future(st.Time, now) {
			future = append(future, st.Name)
			continue
		}
		counted = append(counted, st)
	}
	var decisions []sdk.Decision
	var err error
	if len(counted) > 0 {
		decisions, err = checkVerdict(ctx, s, counted, loc, current)
		if decisions == nil && err != nil {
			return nil, future, err
		}
	}
	for _, name := range future {
		t := sets[order[name]].Time
		decisions = append(decisions, sdk.Decision{Set: name, Keep: true, Reasons: []string{futureReason(t, now)}})
	}
	// Oldest first, as the sets came: the plugin's names are known sets.
	slices.SortStableFunc(decisions, func(a, b sdk.Decision) int { return order[a.Set] - order[b.Set] })
	return decisions, future, err
}

// futureReason says why a set dated ahead of the clock is kept.
func futureReason(t, now time.Time) string {
	return aheadOf(t, now) + ": not counted by retention and never deleted by it"
}

// aheadOf says how far a set's date t lies ahead of the clock.
func aheadOf(t, now time.Time) string {
	return fmt.Sprintf("dated %s ahead of this machine's clock (now %s)", repo.Ahead(t, now), now.In(t.Location()).Format(repo.SetNameLayout))
}

// checkClock warns of every local set dated ahead of the clock: the clock
// jumped forward when it was made, or has jumped back since. Retention and
// restore leave such sets aside (repo.Future); the administrator must hear
// of it, in the log and in the report every notifier receives.
func (r *run) checkClock() {
	sets, err := repo.List(r.p.Root, r.p.Location)
	if err != nil {
		return // the retain stage reports a root it cannot list
	}
	now := r.e.now()
	for _, s := range sets {
		if s.Future(now) {
			r.warnFuture("set "+s.Name, s.Name)
		}
	}
}

// warnFuture warns, once per run, that what (a set, named set) is dated
// ahead of the clock.
func (r *run) warnFuture(what, set string) {
	t, ok := repo.ParseSetName(set, r.p.Location)
	if !ok || r.warnedFuture[what] {
		return
	}
	if r.warnedFuture == nil {
		r.warnedFuture = map[string]bool{}
	}
	r.warnedFuture[what] = true
	r.warn(fmt.Sprintf("%s is %s: retention neither counts nor deletes it, and mbk restore takes it only by name. Check the clock (timedatectl), and delete the set by hand if it is not wanted",
		what, aheadOf(t, r.e.now())))
}

// checkVerdict gets the policy's verdict on sets and holds it to the
// guarantees (see decide).
func checkVerdict(ctx context.Context, s *Stage, sets []sdk.SetInfo, loc *time.Location, current string) ([]sdk.Decision, error) {
	complete := map[string]bool{}
	known := map[string]bool{}
	newest := ""
	for _, st := range sets {
		known[st.Name] = true
		if st.Complete {
			complete[st.Name] = true
			newest = st.Name
		}
	}
	decisions, err := s.Client.Retain(ctx, s.Wire, sdk.RetainInput{Sets: sets, Current: current, Location: loc})
	if err != nil {
		return nil, err
	}
	deleting := 0
	for i, d := range decisions {
		if !known[d.Set] {
			return decisions, fmt.Errorf("the policy named a set that does not exist: %q", d.Set)
		}
		if d.Keep {
			continue
		}
		switch {
		case d.Set == newest || d.Set == current:
			return decisions, fmt.Errorf("refusing the policy's verdict: it would delete %s, the newest set", d.Set)
		case !complete[d.Set]:
			decisions[i].Keep = true
			decisions[i].Reasons = append(d.Reasons, "not deleted: only complete sets are subject to retention")
		default:
			deleting++
		}
	}
	if deleting > 0 && deleting >= len(complete) {
		return decisions, fmt.Errorf("refusing the policy's verdict: it would delete all %d complete sets", deleting)
	}
	return decisions, nil
}

// NoStageError says that a pipeline lacks the stage a command needs: a
// mistake in its configuration, not a failure.
type NoStageError struct {
	Pipeline string
	Kind     string
	// Name is the stage asked for, if one was; Have the names of the
	// stages of that kind the pipeline has.
	Name string
	Have []string
}

func (e *NoStageError) Error() string {
	if e.Name == "" || len(e.Have) == 0 {
		return fmt.Sprintf("pipeline %q has no %s stage", e.Pipeline, e.Kind)
	}
	return fmt.Sprintf("pipeline %q has no %s %q (it has %v)", e.Pipeline, e.Kind, e.Name, e.Have)
}

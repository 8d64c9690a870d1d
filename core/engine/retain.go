package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/mbk-backup/mbk/core/config"
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
}

// retain applies each retain stage once the new set is committed.
func (r *run) retain(ctx context.Context, stages []*Stage) {
	for _, s := range stagesOf(stages, sdk.KindRetain) {
		err := r.stage(ctx, s, func(ctx context.Context) error {
			pr, err := pruneLocal(ctx, s, r.p, r.name, false)
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
// stage so far decided and deleted.
func Prune(ctx context.Context, p *config.Pipeline, stages []*Stage, dryRun bool) ([]Pruned, error) {
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
		pr, err := pruneLocal(ctx, s, p, "", dryRun)
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
// the newest set (as the policy counts its days, so a stopped schedule or a
// clock jump never deletes one early), and deleted after.
func pruneLocal(ctx context.Context, s *Stage, p *config.Pipeline, current string, dryRun bool) (Pruned, error) {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return Pruned{Stage: s}, fmt.Errorf("list sets: %w", err)
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
		if st.Time.After(newest) {
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
	pr, err := prune(ctx, s, infos, p.Location, current, dryRun, del)
	if err != nil {
		return pr, err
	}
	pr.Decisions = append(pr.Decisions, held...)
	keep := time.Duration(p.SafetyCopyDays) * 24 * time.Hour
	for _, st := range safety {
		until := st.Time.Add(keep)
		d := sdk.Decision{Set: st.Name, Keep: !newest.After(until)}
		if d.Keep {
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
	return pr, nil
}

// prune gets a retain stage's verdict on sets (oldest first), checked by
// decide, and deletes with del what it may, unless dryRun: the one loop
// behind a run's retention, on disk and in each store, and mbk prune.
func prune(ctx context.Context, s *Stage, sets []sdk.SetInfo, loc *time.Location, current string, dryRun bool, del func(set string) error) (Pruned, error) {
	out := Pruned{Stage: s}
	decisions, err := decide(ctx, s, sets, loc, current)
	out.Decisions = decisions
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
func decide(ctx context.Context, s *Stage, sets []sdk.SetInfo, loc *time.Location, current string) ([]sdk.Decision, error) {
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

package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// retain applies each retain stage once the new set is committed. The
// plugin decides; the engine checks the verdict against its own guarantees
// before deleting anything.
func (r *run) retain(ctx context.Context, stages []*Stage) {
	for _, s := range stagesOf(stages, sdk.KindRetain) {
		err := r.stage(ctx, s, func(ctx context.Context) error {
			decisions, err := Retain(ctx, s, r.p.Root, r.p.Location, r.name)
			r.res.Report.Retention = append(r.res.Report.Retention, decisions...)
			for _, d := range decisions {
				verdict := "keep"
				if !d.Keep {
					verdict = "delete"
				}
				r.log.Info("retention", "set", d.Set, "verdict", verdict, "why", d.Reasons)
			}
			if err != nil {
				return err
			}
			for _, d := range decisions {
				if d.Keep {
					continue
				}
				if err := repo.Delete(r.p.Root, d.Set); err != nil {
					return fmt.Errorf("delete set %s: %w", d.Set, err)
				}
				r.log.Info("set deleted", "set", d.Set)
			}
			return nil
		})
		if err != nil {
			r.res.Later = append(r.res.Later, err)
		}
	}
}

// Retain asks a retain stage for its verdict on every set under root and
// checks it (see decide). It deletes nothing itself.
func Retain(ctx context.Context, s *Stage, root string, loc *time.Location, current string) ([]sdk.Decision, error) {
	sets, err := repo.List(root, loc)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	var infos []sdk.SetInfo
	for _, st := range sets {
		infos = append(infos, sdk.SetInfo{Name: st.Name, Time: st.Time, Complete: st.Complete})
	}
	return decide(ctx, s, infos, loc, current)
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

// finish notifies, releases the lock and closes the log. A run that failed
// before commit loses its staging directory, but its log is kept beside the
// sets as <set>.failed.log.
func (r *run) finish(ctx context.Context, stages []*Stage, now func() time.Time) {
	rep := &r.res.Report
	switch {
	case !r.res.Committed:
		rep.Status = sdk.EventFailure
		if r.res.Err != nil {
			rep.Error = r.e.Redact.String(r.res.Err.Error())
		}
	case len(r.res.Later) > 0:
		rep.Status = sdk.EventWarning
		rep.Error = r.e.Redact.String(r.res.Later[0].Error())
	default:
		rep.Status = sdk.EventSuccess
	}
	// Notify even when ctx was cancelled (Ctrl-C, timeout): that is when
	// the administrator most needs to hear.
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, s := range stagesOf(stages, sdk.KindNotify) {
		if !slices.Contains(s.On, rep.Status) {
			continue
		}
		rep.Finished = now().UTC()
		if r.tail != nil {
			rep.LogTail = r.tail.get()
		}
		err := r.stage(nctx, s, func(ctx context.Context) error {
			summary, err := s.Client.Notify(ctx, s.Wire, rep.Status, *rep)
			if err == nil {
				r.log.Info("notification sent", "stage", s.ID(), "summary", summary)
			}
			return err
		})
		if err != nil && r.res.Committed {
			r.res.Later = append(r.res.Later, err)
		}
	}
	rep.Finished = now().UTC()
	if r.res.Committed {
		r.log.Info("backup finished", "set", r.name, "duration", rep.Duration().Round(time.Millisecond), "problems after commit", len(r.res.Later))
	}
	if r.sink != nil {
		r.e.Log.DeregisterSink(r.sink)
	}
	if r.logFile != nil {
		r.logFile.Sync()
		r.logFile.Close()
	}
	if !r.res.Committed && r.staging != "" {
		failedLog := filepath.Join(r.p.Root, r.name+".failed.log")
		for i := 2; exists(failedLog); i++ {
			failedLog = filepath.Join(r.p.Root, fmt.Sprintf("%s.failed.%d.log", r.name, i))
		}
		if err := os.Rename(filepath.Join(r.staging, repo.LogFile), failedLog); err == nil {
			r.log.Info("the failed run's log is kept", "file", failedLog)
		}
		if err := os.RemoveAll(r.staging); err != nil {
			r.log.Error("cannot remove the staging directory; the next run will", "dir", r.staging, "error", err)
		}
	}
	if r.release != nil {
		r.release()
	}
}

// NotifyFailure tells the notify stages that were prepared that a pipeline
// could not even start (bad settings, a missing plugin): bad input must not
// fail silently at 3 a.m.
func (e *Engine) NotifyFailure(ctx context.Context, p *config.Pipeline, stages []*Stage, cause string) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	rep := sdk.Report{Pipeline: p.Name, File: p.File.Path, Host: host, Status: sdk.EventFailure,
		Started: now, Finished: now, Error: e.Redact.String(cause)}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, s := range stagesOf(stages, sdk.KindNotify) {
		if !slices.Contains(s.On, sdk.EventFailure) {
			continue
		}
		if _, err := s.Client.Notify(nctx, s.Wire, sdk.EventFailure, rep); err != nil {
			e.Log.Error("failure notification not sent", "stage", s.ID(), "error", e.Redact.String(err.Error()))
		}
	}
}

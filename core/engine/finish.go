package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// notifyTimeout bounds the notifications of a run whose notify stage sets
// no timeout of its own.
const notifyTimeout = 2 * time.Minute

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
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
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
		if err != nil {
			r.notifyFailed[s.Name]++
			if r.res.Committed {
				r.res.Later = append(r.res.Later, err)
			}
		}
	}
	rep.Finished = now().UTC()
	if r.release != nil {
		// Only under the root's lock: a run refused by the lock did not
		// run, and its record would race the holder's.
		r.record()
	}
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
	e.notifyInstant(ctx, p, stages, sdk.EventFailure, cause)
}

// NotifyWarning tells the notify stages whose `on` lists "warning" of
// something amiss that is not a run's outcome: the daemon's scheduled runs
// skipped, again and again, because another run holds the root's lock.
func (e *Engine) NotifyWarning(ctx context.Context, p *config.Pipeline, stages []*Stage, what string) {
	e.notifyInstant(ctx, p, stages, sdk.EventWarning, what)
}

func (e *Engine) notifyInstant(ctx context.Context, p *config.Pipeline, stages []*Stage, event, what string) {
	rep := instantReport(p, event)
	rep.Error = e.Redact.String(what)
	if event == sdk.EventWarning {
		rep.Warnings = []string{rep.Error}
	}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	for _, s := range stagesOf(stages, sdk.KindNotify) {
		if !slices.Contains(s.On, event) {
			continue
		}
		if _, err := s.Client.Notify(nctx, s.Wire, event, rep); err != nil {
			e.Log.Error(event+" notification not sent", "stage", s.ID(), "error", e.Redact.String(err.Error()))
		}
	}
}

// instantReport is the report of an event that is not a run: it starts and
// ends now.
func instantReport(p *config.Pipeline, status string) sdk.Report {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	return sdk.Report{Pipeline: p.Name, File: p.File.Path, Host: host, Status: status, Started: now, Finished: now, Language: p.Language}
}

// Sent is what one notify stage made of a test message.
type Sent struct {
	Stage *Stage
	// Summary is the plugin's word on what the server said; Err why the
	// message was not sent.
	Summary string
	Err     error
}

// NotifyTest sends a test event through every notify stage of a pipeline,
// whatever events each is set to report, and says per stage what came of
// it: nothing for a pipeline without a notify stage.
func NotifyTest(ctx context.Context, p *config.Pipeline, stages []*Stage) []Sent {
	rep := instantReport(p, sdk.EventTest)
	var out []Sent
	for _, s := range stagesOf(stages, sdk.KindNotify) {
		summary, err := s.Client.Notify(ctx, s.Wire, sdk.EventTest, rep)
		out = append(out, Sent{Stage: s, Summary: summary, Err: err})
	}
	return out
}

// notifyStart tells the notify stages whose `on` lists "start" that the run
// has begun, before its first stage. A notification that fails does not
// stop the run; it makes the run a warning once the set is committed.
func (r *run) notifyStart(ctx context.Context, stages []*Stage) {
	rep := r.res.Report
	rep.Status = sdk.EventStart
	rep.Finished = rep.Started
	for _, s := range stagesOf(stages, sdk.KindNotify) {
		if !slices.Contains(s.On, sdk.EventStart) {
			continue
		}
		timeout := s.Timeout
		if timeout == 0 {
			timeout = notifyTimeout
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		client, _, err := r.e.Host.Get(sctx, s.Plugin)
		var summary string
		if err == nil {
			s.Client = client
			summary, err = client.Notify(sctx, s.Wire, sdk.EventStart, rep)
		}
		if sctx.Err() != nil {
			// Past its deadline a plugin may not stop by itself; the
			// run's last notification starts it again.
			r.e.Host.Kill(s.Plugin)
		}
		cancel()
		if err != nil {
			err = fmt.Errorf("%s stage (plugin %s): the start notification: %w", s.ID(), s.Plugin, err)
			r.notifyFailed[s.Name]++
			r.warn(err.Error())
			r.afterCommit = append(r.afterCommit, errors.New(r.e.Redact.String(err.Error())))
			continue
		}
		r.log.Info("start notification sent", "stage", s.ID(), "summary", summary)
	}
}

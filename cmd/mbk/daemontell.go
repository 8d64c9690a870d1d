package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/health"
	"github.com/mbk-backup/mbk/core/schedule"
	"github.com/mbk-backup/mbk/core/sdk"
)

// skipped counts a tick skipped because another run (pid) holds p's lock;
// the second in a row is notified, not only logged: a run that never ends,
// or a cron line left beside the daemon, would silently take every backup's
// place. The count starts again once a run of the daemon goes ahead.
func (d *daemon) skipped(ctx context.Context, p *config.Pipeline, pid int) {
	if d.metrics != nil {
		d.metrics.skipped.WithLabelValues(p.Name).Inc()
	}
	key := jobKey(p)
	d.skipMu.Lock()
	d.skips[key]++
	n := d.skips[key]
	d.skipMu.Unlock()
	if n != skipsToTell {
		return
	}
	what := fmt.Sprintf("the daemon skipped %d scheduled runs of pipeline %q in a row: another run (pid %d) holds the lock of %s. "+
		"If that run never ends, no backup is made until it is stopped.", n, p.Name, pid, p.Root)
	d.log.Error("telling the notify stages: runs skipped in a row", "pipeline", p.Name, "skipped", n, "pid", pid)
	d.notifyWarning(ctx, p, what)
}

// notifyWarning sends a warning to p's notify stages, starting only their
// plugins.
func (d *daemon) notifyWarning(ctx context.Context, p *config.Pipeline, what string) {
	only := *p
	only.Stages = p.StagesOf(sdk.KindNotify)
	h := d.a.host(p.File)
	defer h.Close()
	stages, diags := engine.Prepare(ctx, h, &only)
	d.a.redact.Add(engine.Secrets(&only, stages)...)
	if diags.HasErrors() {
		d.log.Error("the warning was not sent: the notify stages are not valid", "pipeline", p.Name, "error", diags.Errs()[0])
		return
	}
	e := &engine.Engine{Host: h, Log: d.a.log, Redact: d.a.redact, Version: version}
	e.NotifyWarning(ctx, &only, stages, what)
}

// catchUp runs once, now, each pipeline with catch_up whose schedule came
// while the daemon was not running: its last run (or its newest set, for a
// root whose runs were not recorded) is older than the schedule's time
// after it. A root with no run at all counts as missed, as anacron runs a
// job it has no timestamp for.
func (d *daemon) catchUp(ps []*config.Pipeline) {
	now := d.sched.Now()
	for _, p := range ps {
		if !p.CatchUp || p.Cron == nil {
			continue
		}
		log := d.log.With("pipeline", p.Name)
		last, err := lastRun(p)
		if err != nil {
			log.Error("catch-up: cannot tell when the pipeline last ran: not caught up", "error", err)
			continue
		}
		var why string
		if last.IsZero() {
			why = fmt.Sprintf("catch-up: no run recorded in %s: running one now", p.Root)
		} else if due := schedule.NextIn(p.Cron, p.Location, last); due.After(now) {
			log.Info("catch-up: no scheduled run was missed", "last", last.In(p.Location).Format(schedule.TimeLayout))
			continue
		} else {
			why = fmt.Sprintf("catch-up: the run due %s was missed while the daemon was not running (the last began %s): running it now",
				due.Format(schedule.TimeLayout), last.In(p.Location).Format(schedule.TimeLayout))
		}
		log.Warn(why)
		if !d.sched.RunNow(jobKey(p)) {
			log.Error("catch-up: the pipeline is not scheduled")
		}
	}
}

// lastRun is when p's last run began, or when its newest set was made;
// zero when neither is known.
func lastRun(p *config.Pipeline) (time.Time, error) {
	s, err := health.Read(p)
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	if s.Runs.Last != nil {
		last = s.Runs.Last.Started
	}
	if s.Newest != nil && s.Newest.Time.After(last) {
		last = s.Newest.Time
	}
	return last, nil
}

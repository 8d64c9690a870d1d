package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/schedule"
)

func (a *app) daemonCmd() *cobra.Command {
	var grace time.Duration
	var timeScale int
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "daemon PATH...",
		Short: tr.T("Run every pipeline on its schedule until stopped"),
		Long: tr.T(`daemon runs each pipeline of the files (and directories of them) on its
schedule, read in the pipeline's timezone. Each run is what
"mbk run FILE --pipeline NAME" does. A run never overlaps another run of
the same pipeline, nor any run holding the root's lock (a cron-started or
hand-started "mbk run"): that tick is skipped and logged, and when it
happens twice in a row the notify stages hear of it (a warning): a run
that never ends holds the lock for good.

A pipeline with catch_up = true whose schedule came while the daemon was
not running (the machine was off) runs once at start, as anacron does, and
the log says which run was missed.

--metrics-listen ADDR serves Prometheus metrics at http://ADDR/metrics:
every pipeline's (read from its root at each scrape, so runs cron or a
person started count too) and the daemon's own (next runs, skipped ticks).

The files are read and checked at start and on SIGHUP, not before each
run: an edit takes effect on "kill -HUP", and a file broken by an edit
keeps the schedule it had (the reload is refused and the log says why).

SIGTERM or SIGINT stops scheduling; a running backup may finish within
--grace, then it is cancelled (its staging directory is removed and its
notify stages hear of the failure). Exit 0, or 1 when a run was cancelled;
2 when the files are invalid at start or nothing is scheduled.`),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := &daemon{a: a, paths: args, log: a.log.Named("daemon"), out: cmd.OutOrStdout(), skips: map[string]int{}}
			clock := schedule.Clock{}
			if timeScale > 1 {
				clock = schedule.FastClock(time.Now(), timeScale)
			}
			if metricsAddr != "" {
				d.metrics = newDaemonMetrics()
			}
			return d.serve(cmd.Context(), clock, grace, metricsAddr)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Minute, tr.T("on SIGTERM, how long a running backup may take to finish before it is cancelled"))
	cmd.Flags().StringVar(&metricsAddr, "metrics-listen", "", tr.T("serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9861"))
	// Tests only: the schedule clock runs this many times faster than the
	// wall clock, so "* * * * *" fires every second through the real
	// scheduler.
	cmd.Flags().IntVar(&timeScale, "time-scale", 1, "")
	_ = cmd.Flags().MarkHidden("time-scale")
	a.varFlag(cmd)
	return cmd
}

type daemon struct {
	a     *app
	paths []string
	log   hclog.Logger
	sched *schedule.Scheduler
	outMu sync.Mutex
	out   io.Writer
	// metrics is nil without --metrics-listen.
	metrics *daemonMetrics
	// skips counts, per job, the ticks skipped in a row because another
	// run held the root's lock.
	skipMu sync.Mutex
	skips  map[string]int
}

// skipsToTell is how many ticks in a row another run may take before the
// notify stages hear of it: one is a cron-started run at the same hour.
const skipsToTell = 2

func (d *daemon) serve(ctx context.Context, clock schedule.Clock, grace time.Duration, metricsAddr string) error {
	// Signals first: a SIGHUP during the first load must not kill the daemon.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	d.sched = schedule.New(schedule.Options{Clock: clock, Log: d.log})
	jobs, ps, err := d.load(ctx)
	if err != nil {
		return exitf(2, "%v: nothing was scheduled", err)
	}
	if len(jobs) == 0 {
		return exitf(2, "no pipeline in %s has a schedule: nothing to do", strings.Join(d.paths, ", "))
	}
	if err := d.sched.Set(jobs); err != nil {
		return exitf(2, "%v", err)
	}
	if d.metrics != nil {
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		d.setMetrics(jobs, ps)
		addr, err := d.metrics.serve(mctx, metricsAddr, func(err error) { d.log.Error("the metrics server stopped", "error", err) })
		if err != nil {
			return exitf(2, "%v", err)
		}
		d.log.Info("serving metrics", "url", "http://"+addr.String()+"/metrics")
	}
	d.sched.Start()
	d.logSchedule(jobs)
	d.log.Info("daemon started", "pid", os.Getpid(), "scheduled", len(jobs))
	d.catchUp(ps)

	for sig := range sigs {
		if sig != syscall.SIGHUP {
			d.log.Info("stopping: no new runs", "signal", sig.String(), "running", d.sched.Running(), "grace", grace.String())
			break
		}
		d.reload(ctx)
	}
	abort := make(chan struct{})
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGHUP {
				d.log.Warn("second signal: cancelling the running backups now", "signal", sig.String())
				close(abort)
				return
			}
		}
	}()
	if d.sched.Stop(grace, abort) {
		d.log.Error("stopped: a running backup was cancelled, nothing of it was committed")
		return &exitError{code: 1}
	}
	d.log.Info("stopped")
	return nil
}

// load reads and checks every file, as validate does, and makes a job of
// each scheduled pipeline; it also returns every pipeline, scheduled or not,
// for the metrics. Any error refuses the whole load.
func (d *daemon) load(ctx context.Context) ([]schedule.Job, []*config.Pipeline, error) {
	files, err := config.Expand(d.paths)
	if err != nil {
		return nil, nil, err
	}
	// A fresh loader each time: it caches parsed files by name.
	loader, err := d.a.loader()
	if err != nil {
		return nil, nil, err
	}
	var all hcl.Diagnostics
	var jobs []schedule.Job
	var ps []*config.Pipeline
	for _, path := range files {
		f, diags := loader.Load(path)
		all = append(all, diags...)
		if f == nil {
			continue
		}
		h := d.a.host(f)
		for _, p := range f.Pipelines {
			ps = append(ps, p)
			_, pd := engine.Prepare(ctx, h, p)
			all = append(all, pd...)
			for _, j := range d.a.blockJobs(loader, p, path) {
				jobs = append(jobs, schedule.Job{Key: path + "\x00" + p.Name + "\x00" + j.kind, Name: p.Name + " (" + j.kind + ")", Schedule: j.cron, Location: p.Location,
					Run: func(ctx context.Context) { d.block(ctx, p, j) }})
			}
			if p.Cron == nil {
				d.log.Info("not scheduled: the pipeline has no schedule", "pipeline", p.Name, "file", path)
				continue
			}
			jobs = append(jobs, schedule.Job{Key: jobKey(p), Name: p.Name, Schedule: p.Cron, Location: p.Location,
				Run: func(ctx context.Context) { d.run(ctx, loader, p) }})
		}
		h.Close()
	}
	if all.HasErrors() {
		writeDiags(os.Stderr, loader, all)
		return nil, nil, fmt.Errorf("%d error(s) in %s: %s", countErrors(all), strings.Join(files, ", "), all.Errs()[0])
	}
	return jobs, ps, nil
}

// jobKey names a pipeline's backup job across reloads.
func jobKey(p *config.Pipeline) string { return p.File.Path + "\x00" + p.Name }

// setMetrics points the metrics at what was loaded.
func (d *daemon) setMetrics(jobs []schedule.Job, ps []*config.Pipeline) {
	if d.metrics == nil {
		return
	}
	var next []nextRun
	for _, j := range jobs {
		kind := "backup"
		if strings.HasSuffix(j.Key, "\x00drill") {
			kind = "drill"
		}
		key := j.Key
		_, name, _ := strings.Cut(j.Key, "\x00")
		name, _, _ = strings.Cut(name, "\x00")
		next = append(next, nextRun{pipeline: name, job: kind, next: func() time.Time { return d.sched.Next(key) }})
	}
	d.metrics.set(ps, next)
}

func (d *daemon) reload(ctx context.Context) {
	d.log.Info("SIGHUP: reloading", "paths", strings.Join(d.paths, " "))
	jobs, ps, err := d.load(ctx)
	if err == nil && len(jobs) == 0 {
		err = errors.New("no pipeline has a schedule")
	}
	if err != nil {
		d.log.Error("reload refused: keeping the previous schedule", "error", err)
		return
	}
	if err := d.sched.Set(jobs); err != nil {
		d.log.Error("reload refused: keeping the previous schedule", "error", err)
		return
	}
	d.setMetrics(jobs, ps)
	d.logSchedule(jobs)
	d.log.Info("reloaded: the new schedule is in effect; runs in progress continue", "scheduled", len(jobs))
}

func (d *daemon) logSchedule(jobs []schedule.Job) {
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Key < jobs[j].Key })
	for _, j := range jobs {
		d.log.Info("scheduled", "pipeline", j.Name, "timezone", j.Location.String(), "next", d.next(j.Key))
	}
}

func (d *daemon) next(key string) string {
	n := d.sched.Next(key)
	if n.IsZero() {
		return "none"
	}
	return n.Format(schedule.TimeLayout)
}

// run is one scheduled run: exactly what `mbk run FILE --pipeline NAME`
// does, unless another run holds the root's lock.
func (d *daemon) run(ctx context.Context, loader *config.Loader, p *config.Pipeline) {
	key := jobKey(p)
	log := d.log.With("pipeline", p.Name)
	// Looking first spares a failure report (and its e-mail) for what is
	// no failure: a cron-started or hand-started run of this root. A run
	// that takes the lock between this look and the engine's still fails
	// cleanly, as a second `mbk run` does.
	if _, err := os.Stat(p.Root); err == nil {
		l, err := repo.Acquire(p.Root)
		var locked *repo.LockedError
		switch {
		case errors.As(err, &locked):
			log.Warn(fmt.Sprintf("skipped: another run holds the lock (pid %d)", locked.PID), "root", p.Root, "next", d.next(key))
			d.skipped(ctx, p, locked.PID)
			return
		case err == nil:
			l.Release()
		}
	}
	d.skipMu.Lock()
	d.skips[key] = 0
	d.skipMu.Unlock()
	log.Info("run started", "file", p.File.Path, "next", d.next(key))
	// Its own logger: the engine copies the run's log lines into the set's
	// backup.log through a sink on the logger, which must not see the lines
	// of another pipeline running at the same time.
	ra := *d.a
	if err := ra.setupLog(); err != nil {
		log.Error("run not started", "error", err)
		return
	}
	var out bytes.Buffer
	code := ra.runPipeline(ctx, &out, loader, p, nil)
	d.outMu.Lock()
	d.out.Write(out.Bytes())
	d.outMu.Unlock()
	level := hclog.Info
	if code != engine.ExitOK {
		level = hclog.Error
	}
	log.Log(level, "run finished", "exit", code, "next", d.next(key))
}

// block is one scheduled job of a pipeline's block: what its crontab line
// runs (`mbk drill FILE --pipeline NAME`, `mbk verify FILE --pipeline NAME
// --scheduled`). A drill does not take the root's lock, so it never makes
// a backup skip its tick; a verify takes it only while it copies what the
// store lacks, and leaves that to the next turn when a run holds it.
func (d *daemon) block(ctx context.Context, p *config.Pipeline, j blockJob) {
	key := p.File.Path + "\x00" + p.Name + "\x00" + j.kind
	log := d.log.With("pipeline", p.Name)
	log.Info(j.kind+" started", "file", p.File.Path, "next", d.next(key))
	var out bytes.Buffer
	code := j.run(ctx, &out)
	d.outMu.Lock()
	d.out.Write(out.Bytes())
	d.outMu.Unlock()
	level := hclog.Info
	if code != 0 {
		level = hclog.Error
	}
	log.Log(level, j.kind+" finished", "exit", code, "next", d.next(key))
}

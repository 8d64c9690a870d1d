// Package schedule runs jobs on cron schedules, each read in its own
// timezone, never two runs of one job at once, and stops with a grace
// period. It keeps robfig/cron (stable, unmaintained) behind this small API,
// and it manages crontab entries for those who let cron(8) run mbk instead.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"
)

// Job is one thing to run on a schedule.
type Job struct {
	// Key names the job across Set calls: a job whose key stays keeps its
	// "still running" guard, so a reload never lets two runs overlap.
	Key string
	// Name is what the logs call it.
	Name     string
	Schedule cron.Schedule
	// Location is the timezone the schedule is read in.
	Location *time.Location
	// Run does the work. ctx ends when Stop gives up waiting.
	Run func(ctx context.Context)
}

// Options configures a Scheduler.
type Options struct {
	Clock Clock
	Log   hclog.Logger
}

// Scheduler runs jobs on their schedules.
type Scheduler struct {
	cron    *cron.Cron
	clock   Clock
	log     hclog.Logger
	ctx     context.Context
	cancel  context.CancelCauseFunc
	active  atomic.Int64 // runs in progress
	stopped atomic.Bool
	// now are the runs RunNow started, which cron does not wait for.
	now sync.WaitGroup

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	id      cron.EntryID
	current atomic.Pointer[Job]
	guarded cron.Job // the job behind its guards, kept while the key lives
}

// New makes a stopped scheduler with no jobs.
func New(opts Options) *Scheduler {
	log := opts.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Scheduler{clock: opts.Clock, log: log, ctx: ctx, cancel: cancel, entries: map[string]*entry{}}
	// robfig/cron's own chatter (wake, run, schedule) is for tracing only.
	s.cron = cron.New(cron.WithLogger(cronLogger{log: log, info: hclog.Trace}))
	return s
}

// Set replaces every job. Runs in progress continue; a key that is in both
// the old and the new set keeps its guard, so its next tick is skipped while
// the old definition is still running.
func (s *Scheduler) Set(jobs []Job) error {
	seen := map[string]bool{}
	for _, j := range jobs {
		if j.Key == "" || j.Schedule == nil || j.Location == nil || j.Run == nil {
			return fmt.Errorf("job %q: key, schedule, location and run are required", j.Name)
		}
		if seen[j.Key] {
			return fmt.Errorf("job %q: key %q is used twice", j.Name, j.Key)
		}
		seen[j.Key] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.entries {
		s.cron.Remove(e.id)
		if !seen[key] {
			delete(s.entries, key)
		}
	}
	for _, j := range jobs {
		e := s.entries[j.Key]
		if e == nil {
			e = s.newEntry(j)
			s.entries[j.Key] = e
		}
		e.current.Store(&j)
		// Every entry is added again, so a changed schedule or timezone
		// takes effect: its next time is computed from now.
		e.id = s.cron.Schedule(zoned{sched: j.Schedule, loc: j.Location, clock: s.clock}, e.guarded)
	}
	return nil
}

// newEntry wraps the job in its guards. The order matters: Recover sits
// inside SkipIfStillRunning, so a panicking run still gives the guard back;
// the other way round, one panic would skip every later run.
func (s *Scheduler) newEntry(j Job) *entry {
	e := &entry{}
	log := s.log.With("job", j.Name)
	run := cron.FuncJob(func() {
		cur := e.current.Load()
		s.active.Add(1)
		defer s.active.Add(-1)
		cur.Run(s.ctx)
	})
	e.guarded = cron.NewChain(
		cron.SkipIfStillRunning(cronLogger{log: log, info: hclog.Warn, next: func() time.Time { return s.Next(j.Key) }}),
		cron.Recover(cronLogger{log: log, info: hclog.Info}),
	).Then(run)
	return e
}

// RunNow runs the job with this key once, now, in the background, behind
// the same guard as its ticks: a tick while it runs is skipped, and it is
// skipped while a tick's run is going. Stop waits for it as for the others.
// It reports whether the key names a job.
func (s *Scheduler) RunNow(key string) bool {
	s.mu.Lock()
	e := s.entries[key]
	if e != nil && !s.stopped.Load() {
		s.now.Add(1)
	}
	s.mu.Unlock()
	if e == nil || s.stopped.Load() {
		return false
	}
	go func() {
		defer s.now.Done()
		e.guarded.Run()
	}()
	return true
}

// Start starts scheduling.
func (s *Scheduler) Start() { s.cron.Start() }

// Now reads the scheduler's clock.
func (s *Scheduler) Now() time.Time { return s.clock.Now() }

// Next is when the job with this key runs next, in its timezone; zero for
// an unknown key, a schedule that never fires, or once Stop was called.
func (s *Scheduler) Next(key string) time.Time {
	if s.stopped.Load() {
		return time.Time{}
	}
	s.mu.Lock()
	e := s.entries[key]
	s.mu.Unlock()
	if e == nil {
		return time.Time{}
	}
	j := e.current.Load()
	return NextIn(j.Schedule, j.Location, s.clock.Now())
}

// NextIn is the schedule's next time after t, read in loc.
func NextIn(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	// robfig/cron reads a schedule without TZ= in the timezone of the time
	// it is given.
	return sched.Next(t.In(loc))
}

// Running is the number of runs in progress.
func (s *Scheduler) Running() int { return int(s.active.Load()) }

// Stop stops scheduling and waits for the runs in progress. When grace
// passes, or abort is closed, it cancels their context and waits for them
// to return. It reports whether any run was still going when cancelled.
func (s *Scheduler) Stop(grace time.Duration, abort <-chan struct{}) (aborted bool) {
	s.mu.Lock()
	s.stopped.Store(true)
	s.mu.Unlock()
	ticks := s.cron.Stop()
	done := make(chan struct{})
	go func() {
		<-ticks.Done()
		s.now.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	var cause error
	select {
	case <-done:
		s.cancel(nil)
		return false
	case <-t.C:
		cause = fmt.Errorf("cancelled: the scheduler was stopped and the %s grace period ran out", grace)
	case <-abort:
		cause = errors.New("cancelled: the scheduler was stopped without a grace period")
	}
	aborted = s.active.Load() > 0
	s.cancel(cause)
	<-done
	return aborted
}

// zoned reads a schedule in a timezone and on a clock. robfig/cron asks it
// for the next wall instant; one cron serves jobs in many timezones.
type zoned struct {
	sched cron.Schedule
	loc   *time.Location
	clock Clock
}

func (z zoned) Next(wall time.Time) time.Time {
	n := NextIn(z.sched, z.loc, z.clock.fromWall(wall))
	if n.IsZero() {
		return n
	}
	return z.clock.toWall(n)
}

// cronLogger carries robfig/cron's messages into hclog. SkipIfStillRunning
// says only "skip": it becomes a sentence naming why and when next.
type cronLogger struct {
	log  hclog.Logger
	info hclog.Level
	next func() time.Time
}

func (l cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		args := []any{}
		if l.next != nil {
			if n := l.next(); !n.IsZero() {
				args = append(args, "next", n.Format(TimeLayout))
			}
		}
		l.log.Log(l.info, "skipped: the previous run is still running", args...)
		return
	}
	l.log.Log(l.info, "cron: "+msg, kv...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	if msg == "panic" {
		l.log.Error("run panicked: recovered, the schedule goes on", append([]any{"panic", err}, kv...)...)
		return
	}
	l.log.Error("cron: "+msg, append([]any{"error", err}, kv...)...)
}

// TimeLayout is how run times are shown.
const TimeLayout = "Mon 2006-01-02 15:04:05 MST"

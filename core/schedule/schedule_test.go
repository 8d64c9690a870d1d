package schedule

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"
)

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func mustParse(t *testing.T, spec string) cron.Schedule {
	t.Helper()
	s, err := parser.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// logBuf collects a scheduler's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newScheduler(t *testing.T, clock Clock) (*Scheduler, *logBuf) {
	buf := &logBuf{}
	s := New(Options{Clock: clock, Log: hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info})})
	t.Cleanup(func() { s.Stop(0, nil) })
	return s, buf
}

// eventually waits, with a generous deadline, for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSchedulerRunsJobsInTheirOwnTimezone(t *testing.T) {
	tokyo, madrid := mustZone(t, "Asia/Tokyo"), mustZone(t, "Europe/Madrid")
	// A few seconds before 02:00 in Tokyo; 18:00 the day before in Madrid.
	start := time.Date(2025, 1, 6, 1, 59, 57, 0, tokyo)
	s, _ := newScheduler(t, FastClock(start, 10))
	ran := make(chan time.Time, 10)
	daily := mustParse(t, "0 2 * * *")
	err := s.Set([]Job{
		{Key: "tokyo", Name: "tokyo", Schedule: daily, Location: tokyo, Run: func(context.Context) { ran <- s.Now() }},
		{Key: "madrid", Name: "madrid", Schedule: daily, Location: madrid, Run: func(context.Context) { t.Error("the Madrid job ran at 18:00 Madrid time") }},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Next("madrid"), time.Date(2025, 1, 6, 2, 0, 0, 0, madrid); !got.Equal(want) || got.Location() != madrid {
		t.Errorf("madrid next = %v, want %v", got, want)
	}
	s.Start()
	var at time.Time
	select {
	case at = <-ran:
	case <-time.After(time.Minute):
		t.Fatal("the Tokyo job never ran")
	}
	if at.Before(time.Date(2025, 1, 6, 2, 0, 0, 0, tokyo)) {
		t.Errorf("the Tokyo job ran early, at %v", at.In(tokyo))
	}
	if got, want := s.Next("tokyo"), time.Date(2025, 1, 7, 2, 0, 0, 0, tokyo); !got.Equal(want) {
		t.Errorf("tokyo next = %v, want %v", got, want)
	}
}

// every is a schedule that fires every clock minute; at rate 600 that is
// ten times a wall second.
func every(t *testing.T) (Clock, cron.Schedule) {
	return FastClock(time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC), 600), mustParse(t, "* * * * *")
}

func TestSchedulerNeverStartsARunningJobAgain(t *testing.T) {
	clock, sched := every(t)
	s, logs := newScheduler(t, clock)
	var inFlight, most, runs atomic.Int64
	release := make(chan struct{})
	err := s.Set([]Job{{Key: "k", Name: "slow", Schedule: sched, Location: time.UTC, Run: func(context.Context) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if n > most.Load() {
			most.Store(n)
		}
		if runs.Add(1) == 1 {
			<-release
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	eventually(t, "two skipped ticks", func() bool { return logs.count("skipped: the previous run is still running") >= 2 })
	if runs.Load() != 1 {
		t.Fatalf("%d runs started while the first was running", runs.Load()-1)
	}
	close(release)
	eventually(t, "a run after the slow one", func() bool { return runs.Load() >= 3 })
	if most.Load() != 1 {
		t.Fatalf("%d runs at once", most.Load())
	}
}

func TestSchedulerSurvivesAPanickingRun(t *testing.T) {
	clock, sched := every(t)
	s, logs := newScheduler(t, clock)
	var runs atomic.Int64
	err := s.Set([]Job{{Key: "k", Name: "bad", Schedule: sched, Location: time.UTC, Run: func(context.Context) {
		if runs.Add(1) == 1 {
			panic("boom")
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	eventually(t, "a run after the panic", func() bool { return runs.Load() >= 2 })
	if logs.count("run panicked") != 1 || logs.count("boom") == 0 {
		t.Fatalf("the panic was not logged:\n%s", logs.b.String())
	}
}

func TestSchedulerSetSwapsJobsAndKeepsTheGuard(t *testing.T) {
	clock, sched := every(t)
	s, logs := newScheduler(t, clock)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var newRuns, goneRuns atomic.Int64
	err := s.Set([]Job{
		{Key: "k", Name: "kept", Schedule: sched, Location: time.UTC, Run: func(context.Context) {
			once.Do(func() { close(started) })
			<-release
		}},
		{Key: "gone", Name: "gone", Schedule: sched, Location: time.UTC, Run: func(context.Context) { goneRuns.Add(1) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	<-started
	err = s.Set([]Job{{Key: "k", Name: "kept", Schedule: sched, Location: time.UTC, Run: func(context.Context) { newRuns.Add(1) }}})
	if err != nil {
		t.Fatal(err)
	}
	// The old definition is still running: the new one must wait its turn.
	before := logs.count("skipped: the previous run is still running")
	eventually(t, "a tick skipped after the swap", func() bool {
		return logs.count("skipped: the previous run is still running") > before
	})
	if newRuns.Load() != 0 {
		t.Fatal("the new definition ran while the old one was still running")
	}
	close(release)
	eventually(t, "the new definition's run", func() bool { return newRuns.Load() >= 1 })
	if !s.Next("gone").IsZero() {
		t.Error("a job left out of Set is still scheduled")
	}
	if err := s.Set([]Job{{Key: "k"}}); err == nil {
		t.Error("Set accepted a job without schedule, location and run")
	}
}

func TestSchedulerStopWaitsThenCancels(t *testing.T) {
	tests := []struct {
		name        string
		grace       time.Duration
		abort       bool
		finish      bool // the run finishes by itself once Stop is waiting
		wantAborted bool
	}{
		{name: "finishes within grace", grace: time.Hour, finish: true},
		{name: "grace runs out", grace: 50 * time.Millisecond, wantAborted: true},
		{name: "abort", grace: time.Hour, abort: true, wantAborted: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock, sched := every(t)
			s, _ := newScheduler(t, clock)
			started := make(chan struct{})
			release := make(chan struct{})
			ended := make(chan error, 1)
			var once sync.Once
			err := s.Set([]Job{{Key: "k", Name: "slow", Schedule: sched, Location: time.UTC, Run: func(ctx context.Context) {
				first := false
				once.Do(func() { first = true; close(started) })
				if !first {
					return
				}
				select {
				case <-release:
					ended <- nil
				case <-ctx.Done():
					ended <- context.Cause(ctx)
				}
			}}})
			if err != nil {
				t.Fatal(err)
			}
			s.Start()
			<-started
			abort := make(chan struct{})
			if tc.abort {
				close(abort)
			}
			stopped := make(chan bool)
			go func() { stopped <- s.Stop(tc.grace, abort) }()
			if tc.finish {
				close(release)
			}
			got := <-stopped
			if got != tc.wantAborted {
				t.Errorf("Stop = %v, want %v", got, tc.wantAborted)
			}
			select {
			case err := <-ended:
				if (err != nil) != tc.wantAborted || (err != nil && !strings.Contains(err.Error(), "cancelled: the scheduler was stopped")) {
					t.Errorf("the run ended with %v", err)
				}
			default:
				t.Error("Stop returned before the run ended")
			}
			if !s.Next("k").IsZero() {
				t.Error("a stopped scheduler still names a next run")
			}
		})
	}
}

// A run started with RunNow (the daemon's catch-up) is behind the job's
// guard: the ticks meanwhile are skipped, and Stop waits for it.
func TestSchedulerRunNowKeepsTheGuard(t *testing.T) {
	clock, sched := every(t)
	s, logs := newScheduler(t, clock)
	var runs, inFlight, most, done atomic.Int64
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	err := s.Set([]Job{{Key: "k", Name: "catch-up", Schedule: sched, Location: time.UTC, Run: func(context.Context) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if n > most.Load() {
			most.Store(n)
		}
		runs.Add(1)
		started <- struct{}{}
		<-release
		done.Add(1)
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.RunNow("nope") {
		t.Fatal("RunNow ran a job that does not exist")
	}
	if !s.RunNow("k") {
		t.Fatal("RunNow refused the job")
	}
	<-started
	s.Start()
	eventually(t, "two skipped ticks", func() bool { return logs.count("skipped: the previous run is still running") >= 2 })
	if runs.Load() != 1 || most.Load() != 1 {
		t.Fatalf("%d runs, %d at once, while the one RunNow started ran", runs.Load(), most.Load())
	}
	type stop struct {
		aborted bool
		done    int64 // runs finished when Stop returned
	}
	stopped := make(chan stop)
	go func() {
		aborted := s.Stop(time.Hour, nil)
		stopped <- stop{aborted, done.Load()}
	}()
	close(release)
	if got := <-stopped; got.aborted || got.done != 1 {
		t.Fatalf("Stop returned %+v: it must wait for the run RunNow started, and not cancel it", got)
	}
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
)

// The daemon tests run the real binary with --time-scale 60: its schedule
// clock runs sixty times faster than the wall clock, so a pipeline
// scheduled "* * * * *" fires every second through the real scheduler.
// Slow runs wait at a gate file the test creates, so nothing depends on
// how long anything takes.

// daemonFile writes a pipeline file of the given pipeline blocks.
func daemonFile(t *testing.T, path string, pipelines ...string) {
	t.Helper()
	content := fmt.Sprintf("plugin_dir = %q\n\n%s\n", filepath.Join(binDir, "extra"), strings.Join(pipelines, "\n"))
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pipelineBlock is a pipeline around the faulty plugin; schedule "" means
// none. dump is the dump stage's body.
func pipelineBlock(name, root, schedule, dump string) string {
	sched := ""
	if schedule != "" {
		sched = fmt.Sprintf("schedule = %q", schedule)
	}
	return fmt.Sprintf(`
pipeline %q {
  root    = %q
  timeout = "5m"
  %s

  stage "dump" "faulty" {
    size = 65536
    %s
  }
  stage "checksum" "sha256" {}
}
`, name, root, sched, dump)
}

const okDump = `mode = "ok"`

func slowDump(gate string) string { return fmt.Sprintf("mode = %q\ngate = %q", "slow", gate) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemonProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr syncBuf
	done           chan struct{}
	code           int
}

func startDaemon(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	return startDaemonEnv(t, nil, args...)
}

// startDaemonEnv is startDaemon with more environment variables.
func startDaemonEnv(t *testing.T, env []string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{t: t, done: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(binDir, "mbk"), append([]string{"daemon", "--time-scale", "60"}, args...)...)
	d.cmd.Env = append(baseEnv(t), env...)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := d.cmd.Wait()
		d.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			d.code = ee.ExitCode()
		} else if err != nil {
			d.code = -1
		}
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

func (d *daemonProc) String() string {
	return fmt.Sprintf("--- daemon stdout\n%s\n--- daemon stderr\n%s", d.stdout.String(), d.stderr.String())
}

// waitLog waits, with a generous deadline, until the daemon's log
// satisfies cond.
func (d *daemonProc) waitLog(what string, cond func(log string) bool) {
	d.t.Helper()
	deadline := time.After(2 * time.Minute)
	for !cond(d.stderr.String()) {
		select {
		case <-d.done:
			if cond(d.stderr.String()) {
				return
			}
			d.t.Fatalf("the daemon exited (%d) before %s\n%s", d.code, what, d)
		case <-deadline:
			d.t.Fatalf("gave up waiting for %s\n%s", what, d)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitCount waits until s appears at least n times in the log.
func (d *daemonProc) waitCount(s string, n int) {
	d.t.Helper()
	d.waitLog(fmt.Sprintf("%d × %q", n, s), func(log string) bool { return strings.Count(log, s) >= n })
}

func (d *daemonProc) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// exit waits for the daemon to end and returns its exit code.
func (d *daemonProc) exit() int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(2 * time.Minute):
		d.t.Fatalf("the daemon did not exit\n%s", d)
	}
	return d.code
}

func finished(pipeline string, code int) string {
	return fmt.Sprintf("run finished: pipeline=%s exit=%d", pipeline, code)
}

func completeSets(t *testing.T, root string) []string {
	t.Helper()
	got := sets(t, root)
	for _, s := range got {
		m, err := repo.ReadManifest(filepath.Join(root, s))
		if err != nil || m.Status != repo.StatusComplete {
			t.Fatalf("set %s: %+v %v", s, m, err)
		}
	}
	return got
}

func TestDaemonRunsEachScheduledPipeline(t *testing.T) {
	dir := t.TempDir()
	tickRoot, manualRoot := filepath.Join(dir, "tick"), filepath.Join(dir, "manual")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file,
		pipelineBlock("tick", tickRoot, "* * * * *", okDump),
		pipelineBlock("manual", manualRoot, "", okDump))

	d := startDaemon(t, dir) // a directory, as validate takes
	d.waitCount(finished("tick", 0), 2)
	d.signal(syscall.SIGTERM)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d\n%s", code, d)
	}
	log := d.stderr.String()
	for _, want := range []string{
		"not scheduled: the pipeline has no schedule: pipeline=manual",
		"scheduled: pipeline=tick timezone=Local next=",
		"run started: pipeline=tick file=" + file + " next=",
		"stopping: no new runs",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q\n%s", want, d)
		}
	}
	if got := completeSets(t, tickRoot); len(got) < 2 {
		t.Fatalf("want at least two sets, got %v\n%s", got, d)
	}
	if got := sets(t, manualRoot); len(got) != 0 {
		t.Fatalf("the unscheduled pipeline ran: %v", got)
	}
	if !strings.Contains(d.stdout.String(), "tick: set ") {
		t.Errorf("stdout lacks the runs' summaries\n%s", d)
	}
}

func TestDaemonNeverOverlapsARun(t *testing.T) {
	dir := t.TempDir()
	root, gate := filepath.Join(dir, "backups"), filepath.Join(dir, "gate")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, pipelineBlock("slow", root, "* * * * *", slowDump(gate)))

	d := startDaemon(t, file)
	// The first run waits at the gate while the schedule keeps ticking.
	d.waitCount("skipped: the previous run is still running", 2)
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d.waitCount(finished("slow", 0), 2)
	d.signal(syscall.SIGTERM)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d\n%s", code, d)
	}
	inFlight := 0
	for _, l := range strings.Split(d.stderr.String(), "\n") {
		switch {
		case strings.Contains(l, "run started: pipeline=slow"):
			inFlight++
		case strings.Contains(l, "run finished: pipeline=slow"):
			inFlight--
		}
		if inFlight > 1 {
			t.Fatalf("two runs at once\n%s", d)
		}
	}
	if strings.Contains(d.stderr.String(), "holds the lock") {
		t.Errorf("a tick got as far as the lock: the scheduler should have skipped it\n%s", d)
	}
	if got := completeSets(t, root); len(got) < 2 {
		t.Fatalf("sets %v", got)
	}
}

func TestDaemonSkipsWhileAnotherRunHoldsTheLock(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, pipelineBlock("tick", root, "* * * * *", okDump))
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	// This test process plays a cron-started `mbk run` holding the lock.
	lock, err := repo.Acquire(root)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, file)
	d.waitCount(fmt.Sprintf("skipped: another run holds the lock (pid %d)", os.Getpid()), 2)
	if got := sets(t, root); len(got) != 0 {
		t.Fatalf("a run went ahead under another's lock: %v", got)
	}
	lock.Release()
	d.waitCount(finished("tick", 0), 1)
	d.signal(syscall.SIGTERM)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d\n%s", code, d)
	}
	// A skip is not a failure: no failed run, no failure report.
	if logs, _ := filepath.Glob(filepath.Join(root, "*.failed.log")); len(logs) != 0 || strings.Contains(d.stderr.String(), finished("tick", 1)) {
		t.Fatalf("skipped ticks were recorded as failed runs: %v\n%s", logs, d)
	}
	if got := completeSets(t, root); len(got) < 1 {
		t.Fatalf("no set after the lock was released\n%s", d)
	}
}

func TestDaemonReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	tickRoot, tockRoot := filepath.Join(dir, "tick"), filepath.Join(dir, "tock")
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, pipelineBlock("tick", tickRoot, "* * * * *", okDump))
	d := startDaemon(t, file)
	d.waitCount(finished("tick", 0), 1)

	// A broken edit: the reload is refused, the old schedule goes on.
	if err := os.WriteFile(file, []byte("pipeline \"tick\" {\n  root = \n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	d.waitCount("reload refused: keeping the previous schedule", 1)
	log := d.stderr.String()
	if !strings.Contains(log, file+":2") {
		t.Errorf("the refusal does not point at the error in %s\n%s", file, d)
	}
	runs := strings.Count(log, finished("tick", 0))
	d.waitCount(finished("tick", 0), runs+1)

	// A good edit takes effect: a second pipeline joins.
	daemonFile(t, file,
		pipelineBlock("tick", tickRoot, "* * * * *", okDump),
		pipelineBlock("tock", tockRoot, "* * * * *", okDump))
	d.signal(syscall.SIGHUP)
	d.waitCount("reloaded: the new schedule is in effect", 1)
	d.waitCount(finished("tock", 0), 1)
	d.signal(syscall.SIGTERM)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d\n%s", code, d)
	}
	got := completeSets(t, tockRoot)
	if len(got) < 1 {
		t.Fatalf("the reloaded pipeline made no set\n%s", d)
	}
	// tick and tock fire on the same ticks: each set's log holds its own
	// run's lines only.
	for _, s := range got {
		if log := readFile(t, filepath.Join(tockRoot, s, repo.LogFile)); !strings.Contains(log, "mbk.tock") || strings.Contains(log, "mbk.tick") {
			t.Fatalf("set %s's %s mixes pipelines:\n%s", s, repo.LogFile, log)
		}
	}
}

func TestDaemonStopWaitsForTheRunningBackup(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		openGate   bool // let the run finish once the daemon is stopping
		twice      bool // a second SIGTERM
		wantCode   int
		wantSets   int
		wantInLogs string
	}{
		{name: "finishes within grace", openGate: true, wantCode: 0, wantSets: 1, wantInLogs: "stopped"},
		{name: "grace runs out", args: []string{"--grace", "1s"}, wantCode: 1, wantInLogs: "a running backup was cancelled"},
		{name: "second signal", args: []string{"--grace", "1h"}, twice: true, wantCode: 1, wantInLogs: "second signal: cancelling the running backups now"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root, gate := filepath.Join(dir, "backups"), filepath.Join(dir, "gate")
			file := filepath.Join(dir, "p.hcl")
			daemonFile(t, file, pipelineBlock("slow", root, "* * * * *", slowDump(gate)))
			d := startDaemon(t, append(tc.args, file)...)
			d.waitCount("waiting at the gate", 1)
			d.signal(syscall.SIGTERM)
			d.waitCount("stopping: no new runs: signal=terminated running=1", 1)
			if tc.openGate {
				if err := os.WriteFile(gate, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.twice {
				d.signal(syscall.SIGTERM)
			}
			if code := d.exit(); code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tc.wantCode, d)
			}
			if !strings.Contains(d.stderr.String(), tc.wantInLogs) {
				t.Errorf("the log lacks %q\n%s", tc.wantInLogs, d)
			}
			if got := completeSets(t, root); len(got) != tc.wantSets {
				t.Fatalf("sets %v, want %d\n%s", got, tc.wantSets, d)
			}
			if left, _ := repo.Leftovers(root); len(left) != 0 {
				t.Fatalf("staging left behind: %v", left)
			}
			if tc.wantCode != 0 {
				if logs, _ := filepath.Glob(filepath.Join(root, "*.failed.log")); len(logs) != 1 {
					t.Fatalf("want the cancelled run's log kept, got %v", logs)
				}
			}
		})
	}
}

func TestDaemonRefusesToStartWithNothingToDo(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	tests := []struct {
		name, content string
		want          []string
	}{
		{"invalid file", "pipeline \"p\" {\n  root = 42\n  schedule = \"61 * * * *\"\n}\n", []string{"schedule \"61 * * * *\" is not a cron expression", "nothing was scheduled"}},
		{"no schedule", "", []string{"no pipeline in", "has a schedule: nothing to do"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "p.hcl")
			if tc.content == "" {
				daemonFile(t, file, pipelineBlock("p", root, "", okDump))
			} else if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := mbk(t, runOpts{}, "daemon", file)
			if r.code != 2 {
				t.Fatalf("want exit 2\n%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q\n%s", w, r)
				}
			}
		})
	}
}

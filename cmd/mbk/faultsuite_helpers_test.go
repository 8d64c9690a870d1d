package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// Helpers of the fault suite (issue 8): an mbk run in the background that a
// test can watch and kill, the processes it started, the processes inside a
// container, and servers that misbehave.

// Deadlines for events the tests wait for. They are generous: they bound a
// hang, they never measure speed.
const (
	startDeadline = 3 * time.Minute  // for a run to reach the point a test kills it at
	goneDeadline  = 15 * time.Second // for processes to go once mbk is dead: "a few seconds"
)

// bgRun is an mbk process running in the background, its output in files
// the test can read while it runs.
type bgRun struct {
	t        *testing.T
	cmd      *exec.Cmd
	out, err string
	done     chan struct{}
	res      result
}

func startMbk(t *testing.T, env []string, args ...string) *bgRun {
	t.Helper()
	dir := t.TempDir()
	b := &bgRun{t: t, out: filepath.Join(dir, "stdout"), err: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	stdout, err := os.Create(b.out)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(b.err)
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(filepath.Join(binDir, "mbk"), args...)
	b.cmd.Env = append(baseEnv(t), env...)
	b.cmd.Stdout, b.cmd.Stderr = stdout, stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := b.cmd.Wait()
		stdout.Close()
		stderr.Close()
		b.res.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			b.res.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				b.res.code = -int(ws.Signal())
			}
		}
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

func (b *bgRun) output() (stdout, stderr string) {
	o, _ := os.ReadFile(b.out)
	e, _ := os.ReadFile(b.err)
	return string(o), string(e)
}

func (b *bgRun) String() string {
	o, e := b.output()
	return fmt.Sprintf("--- stdout\n%s\n--- stderr\n%s", o, e)
}

func (b *bgRun) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// waitFor polls until cond holds, failing the test (and killing mbk) if
// mbk exits first or the deadline passes.
func (b *bgRun) waitFor(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(startDeadline)
	for !cond() {
		if b.exited() {
			b.t.Fatalf("mbk exited (code %d) before %s\n%s", b.res.code, what, b)
		}
		if time.Now().After(deadline) {
			b.cmd.Process.Kill()
			b.t.Fatalf("%s did not happen within %s\n%s", what, startDeadline, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStderr waits until mbk's stderr holds text.
func (b *bgRun) waitStderr(text string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("stderr said %q", text), func() bool {
		_, e := b.output()
		return strings.Contains(e, text)
	})
}

// waitGrowing waits until a file matching pattern exists and holds more
// than n bytes: the stream it receives is flowing.
func (b *bgRun) waitGrowing(pattern string, n int64) string {
	b.t.Helper()
	var found string
	b.waitFor(fmt.Sprintf("%s grew past %d bytes", pattern, n), func() bool {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Size() > n {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// wait waits for mbk to exit by itself.
func (b *bgRun) wait() result {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(startDeadline):
		b.cmd.Process.Kill()
		<-b.done
		b.t.Fatalf("mbk did not exit within %s: it hangs\n%s", startDeadline, b)
	}
	b.res.stdout, b.res.stderr = b.output()
	return b.res
}

// kill sends SIGKILL and reaps mbk.
func (b *bgRun) kill() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.t.Fatal(err)
	}
	<-b.done
}

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid int
	state     byte
	cmdline   string // arguments joined by spaces
}

func (p proc) String() string { return fmt.Sprintf("pid %d (%s)", p.pid, p.cmdline) }

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+4 > len(s) {
		return proc{}, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 2 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return proc{pid: pid, ppid: ppid, state: f[0][0], cmdline: strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))}, true
}

func allProcs() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// descendants lists every live process below pid.
func descendants(pid int) []proc {
	all := allProcs()
	kids := map[int][]proc{}
	for _, p := range all {
		kids[p.ppid] = append(kids[p.ppid], p)
	}
	var out []proc
	queue := []int{pid}
	for len(queue) > 0 {
		for _, k := range kids[queue[0]] {
			if k.state != 'Z' {
				out = append(out, k)
			}
			queue = append(queue, k.pid)
		}
		queue = queue[1:]
	}
	return out
}

// alive reports whether p still runs: same PID, same command line, not a
// zombie waiting for a parent to reap it.
func alive(p proc) bool {
	now, ok := readProc(p.pid)
	return ok && now.state != 'Z' && now.cmdline == p.cmdline
}

// waitGone waits until none of ps runs, failing with the survivors.
func waitGone(t *testing.T, what string, ps []proc) {
	t.Helper()
	deadline := time.Now().Add(goneDeadline)
	for {
		var left []string
		for _, p := range ps {
			if alive(p) {
				left = append(left, p.String())
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still running %s after mbk ended: %s", what, goneDeadline, strings.Join(left, "; "))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pluginsOf returns mbk's plugin processes (external and built-in).
func pluginsOf(pid int) []proc {
	var out []proc
	for _, p := range descendants(pid) {
		if strings.Contains(p.cmdline, "mbk-plugin-") || strings.Contains(p.cmdline, "__plugin") {
			out = append(out, p)
		}
	}
	return out
}

// containerCmdlines lists the command lines of the processes in a container.
func containerCmdlines(t *testing.T, ctr string) string {
	t.Helper()
	out, _, _ := testenv.Exec(t, ctr, nil, "sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done")
	return out
}

// waitNoneIn waits until no process in the container runs any of names.
func waitNoneIn(t *testing.T, ctr string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(goneDeadline)
	for {
		out := containerCmdlines(t, ctr)
		var found []string
		for _, n := range names {
			if strings.Contains(out, n) {
				found = append(found, n)
			}
		}
		if len(found) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%v still runs in container %s %s after the run ended:\n%s", found, ctr, goneDeadline, out)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// noLeftovers fails when staging or deleting directories remain.
func noLeftovers(t *testing.T, root string) {
	t.Helper()
	if left, err := repo.Leftovers(root); err != nil || len(left) != 0 {
		t.Errorf("leftovers under %s: %v %v", root, left, err)
	}
}

// stallingServer accepts TCP connections and never says a word: an SMTP
// server that hangs after the connection. It returns the port.
func stallingServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// siteOpts shapes a pipeline around a site: each stage is optional.
type siteOpts struct {
	root, envFile     string
	db, dumpExtra     string // db: the container; "" leaves the dump stage out
	volume, archExtra string // volume: "" leaves the archive stage out
	exclude           string // the archive's exclude list; "" for Moodle's caches
	tail              string // more stages: checksum, retain, notify
}

func siteHCL(o siteOpts) string {
	var b bytes.Buffer
	if o.envFile != "" {
		fmt.Fprintf(&b, "env_file = %q\n\n", o.envFile)
	}
	fmt.Fprintf(&b, "pipeline \"faults\" {\n  root     = %q\n  timezone = \"UTC\"\n  timeout  = \"10m\"\n", o.root)
	if o.db != "" {
		fmt.Fprintf(&b, `
  stage "dump" "mysql" {
    container = %q
    database  = "moodle"
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
    %s
  }
`, o.db, o.dumpExtra)
	}
	if o.volume != "" {
		if o.exclude == "" {
			o.exclude = `["cache", "localcache", "temp", "sessions"]`
		}
		fmt.Fprintf(&b, `
  stage "archive" "volume" {
    volume  = %q
    exclude = %s
    %s
  }
`, o.volume, o.exclude, o.archExtra)
	}
	fmt.Fprintf(&b, "%s\n}\n", o.tail)
	return b.String()
}

// dockerCtx bounds one Docker API call of a test.
func dockerCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hostRunner runs the clients on mbk's own machine, found on its PATH, for
// a server reached over TCP (host + port).
type hostRunner struct{}

// stopGrace is how long a client has to end after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// drainLimit bounds the wait for a client's output once it has exited: only
// a child it left behind, still holding the pipes, could take that long.
const drainLimit = time.Minute

func (hostRunner) look(_ context.Context, programs []string) (map[string]bool, error) {
	present := map[string]bool{}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err == nil {
			present[p] = true
		}
	}
	return present, nil
}

func (hostRunner) where() string { return "in this host's PATH" }

func (hostRunner) Close() {}

func (hostRunner) run(ctx context.Context, c command) (int, error) {
	name := path.Base(c.args[0])
	if ctx.Err() != nil {
		return -1, fmt.Errorf("%s on this host: %w", name, context.Cause(ctx))
	}
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Env = hostEnv(c.env)
	// A process group of its own: a cancel then reaches everything the
	// client started, and a Ctrl-C on mbk's terminal reaches mbk alone,
	// which stops the client itself and says so.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = c.stdout
	errLines := &lineWriter{fn: c.stderr}
	cmd.Stderr = errLines
	cmd.WaitDelay = drainLimit

	// stdin is fed by hand, not by exec: exec's copy would hold Wait until
	// the next read of c.stdin returns, and would not tell a failed read
	// (a broken backup stream) from the end of the input.
	var stdinR, stdinW *os.File
	readErr := make(chan error, 1)
	if c.stdin != nil {
		var err error
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return -1, fmt.Errorf("%s on this host: %w", name, err)
		}
		cmd.Stdin = stdinR
	}
	err := cmd.Start()
	if stdinR != nil {
		stdinR.Close() // the client holds its own copy
	}
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return -1, fmt.Errorf("start %s on this host: %w", name, err)
	}
	if stdinW != nil {
		go func() {
			src := &errReader{r: c.stdin}
			_, _ = io.Copy(stdinW, src) // a write error is the client ending: its exit code tells
			readErr <- src.err
			stdinW.Close()
		}()
	}

	g := &group{pid: cmd.Process.Pid}
	exited := make(chan struct{})
	go g.stopOn(ctx, exited)
	waitExited(g.pid)
	g.exit()
	close(exited)
	werr := cmd.Wait()
	errLines.flush()

	if ctx.Err() != nil {
		return -1, fmt.Errorf("%s on this host: %w", name, context.Cause(ctx))
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return -1, fmt.Errorf("%s on this host: %w", name, werr)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, fmt.Errorf("%s on this host was ended by signal %d (%v)", name, ws.Signal(), ws.Signal())
	}
	code := cmd.ProcessState.ExitCode()
	// A failed read ends the client's input as if it were complete: the
	// client may well exit 0, or fail on a statement cut short; either way
	// the broken input is the cause. The copy has finished by now unless the
	// client stopped reading early, which its exit code then tells.
	select {
	case err := <-readErr:
		if err != nil {
			return -1, fmt.Errorf("read the input for %s: %w", name, err)
		}
	default:
	}
	return code, nil
}

// hostEnv is the client's environment: mbk's own, so HOME (~/.my.cnf) and
// the locale apply, less any MYSQL_PWD it may carry, plus extra. The only
// password a client sees is then the configured one, or an option file's.
func hostEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYSQL_PWD=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// group signals a client's process group (its ID is the client's PID), but
// only until the client has exited: once it is reaped, the ID may be reused.
type group struct {
	mu   sync.Mutex
	pid  int
	gone bool
}

func (g *group) signal(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.gone {
		_ = syscall.Kill(-g.pid, sig)
	}
}

func (g *group) exit() {
	g.mu.Lock()
	g.gone = true
	g.mu.Unlock()
}

// stopOn stops the group when ctx ends before the client exits: SIGTERM,
// and SIGKILL when it is still there after stopGrace.
func (g *group) stopOn(ctx context.Context, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	case <-ctx.Done():
	}
	g.signal(syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		g.signal(syscall.SIGKILL)
	}
}

// waitExited returns when the process has exited, leaving it unreaped
// (WNOWAIT) so that its PID stays taken until cmd.Wait reaps it.
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// errReader remembers a failed read, which io.Copy does not tell apart
// from a failed write.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// maxStderrLine bounds what is kept of one stderr line; lines.add cuts it
// shorter still.
const maxStderrLine = 64 * 1024

// lineWriter hands a client's stderr to fn line by line.
type lineWriter struct {
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if room := maxStderrLine - len(w.buf); room > 0 {
			w.buf = append(w.buf, part[:min(room, len(part))]...)
		}
		if i < 0 {
			break
		}
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

// flush hands over a last line that lacked its newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit()
	}
}

func (w *lineWriter) emit() {
	if w.fn != nil {
		w.fn(strings.TrimSuffix(string(w.buf), "\r"))
	}
	w.buf = w.buf[:0]
}

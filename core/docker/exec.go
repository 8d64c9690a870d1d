package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Exec describes a command to run inside a container.
type Exec struct {
	Container string
	Cmd       []string
	// Env is set in the exec's environment: the place for credentials
	// (MYSQL_PWD), which must never be part of Cmd.
	Env    []string
	User   string
	Stdin  io.Reader // nil: no stdin
	Stdout io.Writer // nil: discarded
	// Stderr receives the command's stderr line by line.
	Stderr func(line string)
	// Pipe, when set, carries stdout instead of the exec stream (see
	// NewPipe). When the command cannot open it inside the container
	// (another user, another container), nothing has run and Run returns
	// ErrPipeUnusable: run it again without.
	Pipe *Pipe
}

// ErrPipeUnusable says the command could not open Exec.Pipe and was not run.
var ErrPipeUnusable = errors.New("the FIFO cannot be opened inside the container")

// pipeMissing is the line the wrapper prints when it cannot use the FIFO.
const pipeMissing = "mbk-exec-no-pipe"

// pipeExit is the wrapper's exit code when it cannot use the FIFO.
const pipeExit = 125

// pidMarker prefixes the first stderr line of a wrapped command: the
// process's PID inside the container, so cancellation can signal it there.
const pidMarker = "mbk-exec-pid:"

// Run runs the command and returns its exit code. When ctx ends, the process
// inside the container is sent SIGTERM (then SIGKILL), not only disconnected:
// an orphaned mysqldump would hold its snapshot open. The command is started
// through `sh -c 'exec "$@"'` to learn that PID, so the container needs sh.
func (c *Client) Run(ctx context.Context, e Exec) (int, error) {
	wrapped := append([]string{"sh", "-c", `echo "` + pidMarker + `$$" >&2; exec "$@"`, "sh"}, e.Cmd...)
	if e.Pipe != nil {
		// The FIFO must be there and usable as this user before the
		// command starts, or the redirection would fail after the fact.
		redirect, test := `>"$f"`, "-w"
		if e.Pipe.Input {
			redirect, test = `<"$f"`, "-r"
		}
		script := `echo "` + pidMarker + `$$" >&2; f=$1; shift; if [ -p "$f" ] && [ ` + test + ` "$f" ]; then exec "$@" ` + redirect + `; fi; ` +
			`echo "` + pipeMissing + `" >&2; exit ` + strconv.Itoa(pipeExit)
		wrapped = append([]string{"sh", "-c", script, "sh", e.Pipe.Path}, e.Cmd...)
	}
	stdin := e.Stdin
	if e.Pipe != nil && e.Pipe.Input {
		stdin = nil // through the FIFO
	}
	created, err := c.ContainerExecCreate(ctx, e.Container, container.ExecOptions{
		User:         e.User,
		AttachStdin:  stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Env:          e.Env,
		Cmd:          wrapped,
	})
	if err != nil {
		return -1, fmt.Errorf("exec %s in container %q: %w", e.Cmd[0], e.Container, err)
	}
	att, err := c.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, fmt.Errorf("attach to %s in container %q: %w", e.Cmd[0], e.Container, err)
	}
	defer att.Close()

	stdout := e.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	// With a pipe, the exec stream's stdout should stay empty; the output
	// comes through the FIFO.
	streamOut := stdout
	exited := make(chan struct{})
	var pipeDone chan error
	switch {
	case e.Pipe != nil && e.Pipe.Input:
		pipeDone = make(chan error, 1)
		go func() { pipeDone <- e.Pipe.copyFrom(e.Stdin, exited) }()
	case e.Pipe != nil:
		streamOut = io.Discard
		pipeDone = make(chan error, 1)
		go func() { pipeDone <- e.Pipe.copyTo(stdout, exited) }()
	}
	var noPipe bool
	pidCh := make(chan int, 1)
	errPipeR, errPipeW := io.Pipe()
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(errPipeR)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first && strings.HasPrefix(line, pidMarker) {
				first = false
				if pid, err := strconv.Atoi(strings.TrimPrefix(line, pidMarker)); err == nil {
					pidCh <- pid
				}
				continue
			}
			first = false
			if e.Pipe != nil && line == pipeMissing {
				noPipe = true
				continue
			}
			if e.Stderr != nil {
				e.Stderr(line)
			}
		}
		io.Copy(io.Discard, errPipeR)
	}()

	if stdin != nil {
		go func() {
			io.Copy(att.Conn, stdin)
			att.CloseWrite()
		}()
	}

	copyDone := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(streamOut, errPipeW, att.Reader)
		errPipeW.Close()
		copyDone <- err
	}()

	// stop ends the process inside the container: closing our end of the
	// stream does not, and an orphaned dump would hold its snapshot open.
	var pid int
	stop := func() {
		if pid == 0 {
			select {
			case pid = <-pidCh:
			case <-time.After(5 * time.Second):
			}
		}
		if pid > 0 {
			c.signal(e.Container, pid)
		}
		att.Close()
	}
	// Wait for the exec stream to end (the process exited) and, with a
	// pipe, for the FIFO to reach its end; whichever fails first on our side
	// stops the process.
	var copyErr, inputErr error
	streamOpen, pipeOpen := true, pipeDone != nil
	for streamOpen || pipeOpen {
		select {
		case copyErr = <-copyDone:
			streamOpen = false
			close(exited)
			if copyErr != nil {
				// Our side failed (e.g. the disk filled up): the process is
				// still running, blocked on a full pipe.
				stop()
				if e.Pipe != nil {
					e.Pipe.Close()
					<-pipeDone
				}
				<-stderrDone
				return -1, fmt.Errorf("read output of %s in container %q: %w", e.Cmd[0], e.Container, copyErr)
			}
		case err := <-pipeDone:
			pipeOpen = false
			if e.Pipe.Input {
				// Our end is closed either way, which the command reads as
				// the end of its input; its exit code and stderr say more
				// about a failure than a broken pipe does.
				inputErr = err
				continue
			}
			if err != nil && !errors.Is(err, errNoWriter) {
				stop()
				if streamOpen {
					<-copyDone
				}
				<-stderrDone
				return -1, fmt.Errorf("read output of %s in container %q through its FIFO: %w", e.Cmd[0], e.Container, err)
			}
		case <-ctx.Done():
			stop()
			if e.Pipe != nil {
				e.Pipe.Close()
				if pipeOpen {
					<-pipeDone
				}
			}
			if streamOpen {
				<-copyDone
			}
			<-stderrDone
			return -1, fmt.Errorf("%s in container %q: %w", e.Cmd[0], e.Container, context.Cause(ctx))
		}
	}
	<-stderrDone
	// The stream has ended; the exit code may lag a moment behind.
	ictx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := c.exitCode(ictx, created.ID)
	switch {
	case err != nil:
		return -1, fmt.Errorf("%s in container %q: no exit code after its output ended: %w", e.Cmd[0], e.Container, err)
	case noPipe && code == pipeExit:
		return -1, ErrPipeUnusable
	case code == 0 && inputErr != nil && !errors.Is(inputErr, errNoReader) && !errors.Is(inputErr, syscall.EPIPE):
		// The command took what came and succeeded, but not all of the
		// input reached it.
		return -1, fmt.Errorf("feed %s in container %q through its FIFO: %w", e.Cmd[0], e.Container, inputErr)
	}
	return code, nil
}

// exitCode waits for an exec whose output has ended to be reported done,
// and returns its exit code.
func (c *Client) exitCode(ctx context.Context, id string) (int, error) {
	for {
		ins, err := c.ContainerExecInspect(ctx, id)
		if err != nil {
			return -1, err
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// signal stops a process inside a container: SIGTERM, then SIGKILL after a
// grace period. It uses a fresh context: the caller's has already ended.
func (c *Client) signal(containerName string, pid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	script := fmt.Sprintf("kill -TERM %d 2>/dev/null; for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 %d 2>/dev/null || exit 0; sleep 0.5; done; kill -KILL %d 2>/dev/null; exit 0", pid, pid, pid)
	_, _ = c.Output(ctx, containerName, nil, "sh", "-c", script)
}

// Output runs a short command without the PID wrapper and returns stdout;
// a non-zero exit is an error carrying stderr.
func (c *Client) Output(ctx context.Context, containerName string, env []string, cmd ...string) (string, error) {
	created, err := c.ContainerExecCreate(ctx, containerName, container.ExecOptions{
		AttachStdout: true, AttachStderr: true, Env: env, Cmd: cmd,
	})
	if err != nil {
		return "", fmt.Errorf("exec %s in container %q: %w", cmd[0], containerName, err)
	}
	att, err := c.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("attach to %s in container %q: %w", cmd[0], containerName, err)
	}
	defer att.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, att.Reader); err != nil {
		return "", fmt.Errorf("read output of %s in container %q: %w", cmd[0], containerName, err)
	}
	code, err := c.exitCode(ctx, created.ID)
	switch {
	case err != nil:
		return "", fmt.Errorf("inspect %s in container %q: %w", cmd[0], containerName, err)
	case code != 0:
		return out.String(), &ExitError{Code: code, Stderr: strings.TrimSpace(errb.String())}
	}
	return out.String(), nil
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("exit code %d: %s", e.Code, e.Stderr)
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// AsExitError unwraps an ExitError.
func AsExitError(err error) (*ExitError, bool) {
	var e *ExitError
	ok := errors.As(err, &e)
	return e, ok
}

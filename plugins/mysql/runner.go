package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mbk-backup/mbk/core/docker"
)

// runner starts the database clients where they are installed: inside a
// container through the Docker exec API (containerRunner), or on mbk's own
// machine as child processes (hostRunner). Everything above it (flags,
// queries, the trailer check, the row counts, restore and its verification)
// is the same for both.
type runner interface {
	// run runs a command to its end and returns its exit code. When ctx
	// ends, the process itself is stopped (SIGTERM, then SIGKILL), not only
	// disconnected, and the error wraps ctx's cause.
	run(ctx context.Context, c command) (int, error)
	// look reports which of the programs can be run.
	look(ctx context.Context, programs []string) (map[string]bool, error)
	// where says where the clients run, for messages: `in container "db"`.
	where() string
	Close()
}

// command is one run of a client.
type command struct {
	args []string
	// env is added to the process's environment: the only place a password
	// may travel (MYSQL_PWD), never args.
	env    []string
	stdin  io.Reader // nil: none
	stdout io.Writer // nil: discarded
	stderr func(line string)
	// bulk marks a command whose stdout is large (the dump): inside a
	// container it then comes out through a FIFO rather than the Engine's
	// exec stream, when this machine can reach one (docker.NewPipe).
	bulk bool
	// bulkIn is the same for a large stdin (a restore).
	bulkIn bool
	// via, when set, learns which way stdout came: "fifo" or "exec",
	// with the reason the FIFO was not used.
	via func(way, why string)
}

// containerRunner runs the clients inside a running container.
type containerRunner struct {
	docker *docker.Client
	id     string // for execs
	name   string // for messages
}

// openContainer finds the container a target names, which must be running.
func openContainer(ctx context.Context, t docker.Target) (*containerRunner, error) {
	dc, err := docker.New()
	if err != nil {
		return nil, err
	}
	info, err := dc.FindRunning(ctx, t)
	if err != nil {
		dc.Close()
		return nil, err
	}
	return &containerRunner{docker: dc, id: info.ID, name: strings.TrimPrefix(info.Name, "/")}, nil
}

func (r *containerRunner) run(ctx context.Context, c command) (int, error) {
	e := docker.Exec{
		Container: r.id,
		Cmd:       c.args,
		Env:       c.env,
		Stdin:     c.stdin,
		Stdout:    c.stdout,
		Stderr:    c.stderr,
	}
	via := c.via
	if via == nil {
		via = func(string, string) {}
	}
	input := c.bulkIn && c.stdin != nil
	if !input && (!c.bulk || c.stdout == nil) {
		return r.docker.Run(ctx, e)
	}
	newPipe := r.docker.NewPipe
	if input {
		newPipe = r.docker.NewInputPipe
	}
	p, err := newPipe(ctx, r.id)
	if err != nil {
		via("exec", err.Error())
		return r.docker.Run(ctx, e)
	}
	defer p.Close()
	e.Pipe = p
	code, err := r.docker.Run(ctx, e)
	if errors.Is(err, docker.ErrPipeUnusable) {
		// Checked before the command started: nothing ran, nothing was
		// written. Another user, or /proc led to another container.
		p.Close()
		via("exec", "the command cannot open the FIFO inside the container")
		e.Pipe = nil
		return r.docker.Run(ctx, e)
	}
	via("fifo", "")
	return code, err
}

// look asks the container's shell, in one exec.
func (r *containerRunner) look(ctx context.Context, programs []string) (map[string]bool, error) {
	script := `for c do command -v "$c" >/dev/null 2>&1 && printf '%s\n' "$c"; done; exit 0`
	out, err := r.docker.Output(ctx, r.id, nil, append([]string{"sh", "-c", script, "sh"}, programs...)...)
	if err != nil {
		return nil, fmt.Errorf("look for the database clients in container %q: %w", r.name, err)
	}
	present := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			present[l] = true
		}
	}
	return present, nil
}

func (r *containerRunner) where() string { return fmt.Sprintf("in container %q", r.name) }

func (r *containerRunner) Close() { r.docker.Close() }

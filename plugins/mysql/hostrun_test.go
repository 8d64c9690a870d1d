package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestRunners runs the same checks against both ways of running a client:
// inside a container through the exec API, and as a child process here.
func TestRunners(t *testing.T) {
	t.Parallel()
	vol := testenv.UniqueName(t, "mbktest-vol")
	testenv.CreateVolume(t, vol)
	app := testenv.StartApp(t, vol, "/data")
	cr, err := openContainer(testContext(t), docker.Target{Container: app})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cr.Close)

	for _, r := range []runner{hostRunner{}, cr} {
		t.Run(r.where(), func(t *testing.T) {
			t.Run("exit code, stdout and stderr lines", func(t *testing.T) {
				var out strings.Builder
				var errs []string
				code, err := r.run(testContext(t), command{
					args:   []string{"sh", "-c", `echo out; echo first >&2; printf 'second\r\nlast' >&2; exit 3`},
					stdout: &out,
					stderr: func(l string) { errs = append(errs, l) },
				})
				if err != nil || code != 3 || out.String() != "out\n" || !slices.Equal(errs, []string{"first", "second", "last"}) {
					t.Fatalf("code %d, err %v, stdout %q, stderr %q", code, err, out.String(), errs)
				}
			})
			t.Run("stdin and env", func(t *testing.T) {
				var out strings.Builder
				code, err := r.run(testContext(t), command{
					args:   []string{"sh", "-c", `printf '%s|' "$MBK_TEST"; cat`},
					env:    []string{"MBK_TEST=a b$c"},
					stdin:  strings.NewReader("from stdin\n"),
					stdout: &out,
				})
				if err != nil || code != 0 || out.String() != "a b$c|from stdin\n" {
					t.Fatalf("code %d, err %v, stdout %q", code, err, out.String())
				}
			})
			t.Run("look", func(t *testing.T) {
				got, err := r.look(testContext(t), []string{"sh", "mbk-no-such-program"})
				if err != nil || !got["sh"] || got["mbk-no-such-program"] {
					t.Fatalf("look: %v, %v", got, err)
				}
			})
			t.Run("cancel stops the process", func(t *testing.T) {
				marker := sleepMarker(t)
				ctx, cancel := context.WithCancel(testContext(t))
				defer cancel()
				code, err := r.run(ctx, command{
					args:   []string{"sh", "-c", "echo started; exec sleep " + marker},
					stdout: &onWrite{fn: cancel},
				})
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("code %d, err %v, want context.Canceled", code, err)
				}
				requireGone(t, "sleep "+marker)
			})
		})
	}
}

// TestHostRunnerStopsTheGroup cancels clients that started a child of their
// own, one of them deaf to SIGTERM: nothing of either may be left.
func TestHostRunnerStopsTheGroup(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, script string }{
		{"child in the background", "sleep %[1]s & echo started; sleep %[1]s; wait"},
		{"SIGTERM ignored", `trap '' TERM; sleep %[1]s & echo started; sleep %[1]s; wait`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			marker := sleepMarker(t)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			_, err := hostRunner{}.run(ctx, command{
				args:   []string{"sh", "-c", fmt.Sprintf(tt.script, marker)},
				stdout: &onWrite{fn: cancel},
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
			requireGone(t, "sleep "+marker)
		})
	}
}

func TestHostRunnerErrors(t *testing.T) {
	t.Run("broken input", func(t *testing.T) {
		// cat ends well when its input ends; the input's failure must not.
		_, err := hostRunner{}.run(testContext(t), command{
			args:  []string{"cat"},
			stdin: iotest.TimeoutReader(strings.NewReader(strings.Repeat("x", 100))),
		})
		if err == nil || !strings.Contains(err.Error(), "read the input for cat") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("killed from outside", func(t *testing.T) {
		_, err := hostRunner{}.run(testContext(t), command{args: []string{"sh", "-c", "kill -KILL $$"}})
		if err == nil || !strings.Contains(err.Error(), "ended by signal 9") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not there", func(t *testing.T) {
		_, err := hostRunner{}.run(testContext(t), command{args: []string{"mbk-no-such-program"}})
		if err == nil || !strings.Contains(err.Error(), "start mbk-no-such-program on this host") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("inherited MYSQL_PWD is dropped", func(t *testing.T) {
		t.Setenv("MYSQL_PWD", "inherited")
		for want, env := range map[string][]string{"": nil, "configured": {"MYSQL_PWD=configured"}} {
			var out strings.Builder
			if _, err := (hostRunner{}).run(testContext(t), command{
				args: []string{"sh", "-c", `printf %s "$MYSQL_PWD"`}, env: env, stdout: &out,
			}); err != nil || out.String() != want {
				t.Errorf("MYSQL_PWD in the client = %q (err %v), want %q", out.String(), err, want)
			}
		}
	})
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{fn: func(l string) { got = append(got, l) }}
	long := strings.Repeat("y", maxStderrLine+10)
	for _, p := range []string{"a", "b\nc\r\n", long, "\nend"} {
		w.Write([]byte(p))
	}
	w.flush()
	if len(got) != 4 || got[0] != "ab" || got[1] != "c" || len(got[2]) != maxStderrLine || got[3] != "end" {
		t.Fatalf("lines %q", got)
	}
}

// onWrite calls fn at its first write, and keeps nothing.
type onWrite struct {
	once sync.Once
	fn   func()
}

func (w *onWrite) Write(p []byte) (int, error) {
	w.once.Do(w.fn)
	return len(p), nil
}

// sleepMarker is a sleep duration no other test uses, so that the process
// can be found by its command line.
func sleepMarker(t *testing.T) string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e9))
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(1e9+n.Int64(), 10)
}

// proc is a process as the host's /proc shows it; containers' processes
// are among them.
type proc struct {
	pid, pgid int
	state     string // R, S, Z, ...
	cmdline   string // arguments joined by spaces
	environ   []string
}

// hostProcs lists the host's processes that still run (zombies, which hold
// nothing but an exit status, are left out). It may be called from any
// goroutine: it fails the test without stopping it.
func hostProcs(t *testing.T) []proc {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil || len(dirs) == 0 {
		t.Errorf("read the host's process list: %v", err)
		return nil
	}
	var out []proc
	for _, d := range dirs {
		stat, err1 := os.ReadFile(d + "/stat")
		cmd, err2 := os.ReadFile(d + "/cmdline")
		if err1 != nil || err2 != nil {
			continue // it ended
		}
		// The command name in parentheses may hold spaces: fields count
		// from the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if i < 0 || len(f) < 3 || f[0] == "Z" {
			continue
		}
		p := proc{state: f[0], cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))}
		p.pid, _ = strconv.Atoi(filepath.Base(d))
		p.pgid, _ = strconv.Atoi(f[2])
		if env, err := os.ReadFile(d + "/environ"); err == nil {
			p.environ = strings.Split(string(env), "\x00")
		}
		out = append(out, p)
	}
	return out
}

// requireGone fails when a running process's command line holds s.
func requireGone(t *testing.T, s string) {
	t.Helper()
	for _, p := range hostProcs(t) {
		if strings.Contains(p.cmdline, s) {
			t.Fatalf("process %d (%q) still runs after the run returned", p.pid, p.cmdline)
		}
	}
}

package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// appContainer starts a throwaway container of the test image.
func appContainer(t *testing.T) (*Client, string) {
	t.Helper()
	vol := testenv.UniqueName(t, "mbktest-pipe")
	testenv.CreateVolume(t, vol)
	name := testenv.StartApp(t, vol, "/data")
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, name
}

// mustPipe makes a FIFO in ctr (for stdin when input), removed at cleanup.
func mustPipe(t *testing.T, c *Client, ctr string, input bool) *Pipe {
	t.Helper()
	newPipe := c.NewPipe
	if input {
		newPipe = c.NewInputPipe
	}
	p, err := newPipe(testCtx(t), ctr)
	if err != nil {
		t.Fatalf("make a FIFO in %s: %v", ctr, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// seqText is what `seq 1 n` prints.
func seqText(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.Bytes()
}

// TestPipeCarriesStdout: the command's stdout is the FIFO (its own
// /proc/self/fd/1 says so), every byte arrives in order, stderr and the
// exit code still come through the exec, and Close removes the FIFO.
func TestPipeCarriesStdout(t *testing.T) {
	c, ctr := appContainer(t)
	ctx := testCtx(t)
	p := mustPipe(t, c, ctr, false)
	const n = 2_000_000 // about 15 MB: many times the pipe buffer
	var out bytes.Buffer
	var stderr []string
	code, err := c.Run(ctx, Exec{
		Container: ctr,
		Cmd:       []string{"sh", "-c", `readlink /proc/self/fd/1; seq 1 "$0"; echo "a warning" >&2; exit 3`, fmt.Sprint(n)},
		Stdout:    &out,
		Stderr:    func(l string) { stderr = append(stderr, l) },
		Pipe:      p,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	first, rest, _ := bytes.Cut(out.Bytes(), []byte("\n"))
	if string(first) != p.Path {
		t.Errorf("the command's stdout was %q, want the FIFO %s", first, p.Path)
	}
	if !bytes.Equal(rest, seqText(n)) {
		t.Errorf("got %d bytes after the first line, want %d bytes of seq output", len(rest), len(seqText(n)))
	}
	if strings.Join(stderr, "|") != "a warning" {
		t.Errorf("stderr lines %q, want just the warning", stderr)
	}
	ls, _, _ := testenv.Exec(t, ctr, nil, "ls", "-la", "/tmp")
	if !strings.Contains(ls, p.name) {
		t.Fatalf("the FIFO is not in the container's /tmp while open:\n%s", ls)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ls, _, _ = testenv.Exec(t, ctr, nil, "ls", "-la", "/tmp")
	if strings.Contains(ls, ".mbk-") {
		t.Errorf("Close left the FIFO behind:\n%s", ls)
	}
}

// TestPipeUnusable: a user who may not open the FIFO gets ErrPipeUnusable
// and the command does not run at all, so the caller may run it again
// through the exec stream.
func TestPipeUnusable(t *testing.T) {
	c, ctr := appContainer(t)
	ctx := testCtx(t)
	p := mustPipe(t, c, ctr, false)
	var stderr []string
	_, err := c.Run(ctx, Exec{
		Container: ctr, User: "65534",
		Cmd:    []string{"sh", "-c", "echo ran > /data/ran; echo data"},
		Stdout: &bytes.Buffer{},
		Stderr: func(l string) { stderr = append(stderr, l) },
		Pipe:   p,
	})
	if !errors.Is(err, ErrPipeUnusable) {
		t.Fatalf("Run as another user: %v, want ErrPipeUnusable", err)
	}
	if len(stderr) != 0 {
		t.Errorf("the wrapper's own lines reached stderr: %q", stderr)
	}
	if _, _, code := testenv.Exec(t, ctr, nil, "test", "-e", "/data/ran"); code == 0 {
		t.Error("the command ran although the FIFO could not be used")
	}
}

// TestPipeRefusesSymlinkedTmp: a container whose /tmp is a symlink would
// have us resolve it against this host's root; NewPipe must refuse, and
// nothing may appear where the link points.
func TestPipeRefusesSymlinkedTmp(t *testing.T) {
	c, ctr := appContainer(t)
	hostDir := t.TempDir()
	if _, stderr, code := testenv.Exec(t, ctr, nil, "sh", "-c", `rm -rf /tmp && ln -s "$0" /tmp`, hostDir); code != 0 {
		t.Fatalf("make /tmp a symlink: %s", stderr)
	}
	p, err := c.NewPipe(testCtx(t), ctr)
	if err == nil {
		p.Close()
		t.Fatal("NewPipe followed a symlinked /tmp")
	}
	if !strings.Contains(err.Error(), "/tmp") {
		t.Errorf("error %q does not name /tmp", err)
	}
	if entries, _ := os.ReadDir(hostDir); len(entries) != 0 {
		t.Errorf("something was made on this host through the link: %v", entries)
	}
}

// TestPipeCancel: cancelling stops the process inside the container, not
// only our reading, and Run returns the cause.
func TestPipeCancel(t *testing.T) {
	c, ctr := appContainer(t)
	ctx, cancel := context.WithCancelCause(testCtx(t))
	defer cancel(nil)
	p := mustPipe(t, c, ctr, false)
	stopped := errors.New("stopped by the test")
	w := &callAt{at: 1 << 20, fn: func() { cancel(stopped) }}
	_, err := c.Run(ctx, Exec{
		Container: ctr,
		Cmd:       []string{"sh", "-c", `while :; do seq 1 100000; done # mbk-pipe-test-forever`},
		Stdout:    w,
		Pipe:      p,
	})
	if !errors.Is(err, stopped) {
		t.Fatalf("Run: %v, want the cancel cause", err)
	}
	waitGone(t, ctr, "mbk-pipe-test-forever")
}

// TestPipeWriterFails: when our side cannot take the output (a full disk),
// Run says so and stops the process, which would otherwise block forever
// on a full FIFO.
func TestPipeWriterFails(t *testing.T) {
	c, ctr := appContainer(t)
	ctx := testCtx(t)
	p := mustPipe(t, c, ctr, false)
	full := errors.New("no space left on the test's device")
	_, err := c.Run(ctx, Exec{
		Container: ctr,
		Cmd:       []string{"sh", "-c", `while :; do seq 1 100000; done # mbk-pipe-test-full`},
		Stdout:    &failAt{at: 1 << 20, err: full},
		Pipe:      p,
	})
	if !errors.Is(err, full) || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("Run: %v, want the writer's error, through the FIFO", err)
	}
	waitGone(t, ctr, "mbk-pipe-test-full")
}

// waitGone waits until no process in the container has marker in its
// command line.
func waitGone(t *testing.T, ctr, marker string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := testenv.Exec(t, ctr, nil, "sh", "-c",
			`for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done`)
		alive := false
		for _, l := range strings.Split(out, "\n") {
			// The listing's own shell has the marker only in our argument.
			if strings.Contains(l, marker) && !strings.Contains(l, "cmdline") {
				alive = true
			}
		}
		if !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process %q still runs in the container:\n%s", marker, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// callAt calls fn once at bytes written, and keeps nothing.
type callAt struct {
	n, at int
	fn    func()
	done  bool
}

func (w *callAt) Write(b []byte) (int, error) {
	w.n += len(b)
	if w.n >= w.at && !w.done {
		w.done = true
		w.fn()
	}
	return len(b), nil
}

// failAt fails once at bytes have been written.
type failAt struct {
	n, at int
	err   error
}

func (w *failAt) Write(b []byte) (int, error) {
	if w.n+len(b) > w.at {
		return 0, w.err
	}
	w.n += len(b)
	return len(b), nil
}

// TestInputPipeCarriesStdin: the command's stdin is the FIFO, every byte
// arrives, the end of our input is its end of input, and the exit code
// and stdout still come through the exec.
func TestInputPipeCarriesStdin(t *testing.T) {
	c, ctr := appContainer(t)
	ctx := testCtx(t)
	p := mustPipe(t, c, ctr, true)
	in := seqText(2_000_000)
	var out bytes.Buffer
	code, err := c.Run(ctx, Exec{
		Container: ctr,
		Cmd:       []string{"sh", "-c", `readlink /proc/self/fd/0; sha256sum | cut -d' ' -f1; exit 4`},
		Stdin:     bytes.NewReader(in),
		Stdout:    &out,
		Pipe:      p,
	})
	if err != nil || code != 4 {
		t.Fatalf("Run: code %d, %v", code, err)
	}
	want := fmt.Sprintf("%s\n%x\n", p.Path, sha256.Sum256(in))
	if out.String() != want {
		t.Errorf("the command saw:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestInputPipeEarlyExit: a command that stops reading and fails gives
// its own exit code, not our broken pipe; one that fails to get all of
// our input (our source breaks) is an error even when it exits 0.
func TestInputPipeEarlyExit(t *testing.T) {
	c, ctr := appContainer(t)
	ctx := testCtx(t)
	p := mustPipe(t, c, ctr, true)
	code, err := c.Run(ctx, Exec{
		Container: ctr,
		Cmd:       []string{"sh", "-c", `head -c 100 >/dev/null; exit 3`},
		Stdin:     bytes.NewReader(seqText(2_000_000)),
		Pipe:      p,
	})
	p.Close()
	if err != nil || code != 3 {
		t.Fatalf("Run of a command that stops reading: code %d, %v; want code 3", code, err)
	}

	p = mustPipe(t, c, ctr, true)
	broken := errors.New("the set's file could not be read")
	_, err = c.Run(ctx, Exec{
		Container: ctr,
		Cmd:       []string{"sh", "-c", `cat >/dev/null`},
		Stdin:     io.MultiReader(bytes.NewReader(seqText(100_000)), &failReader{broken}),
		Pipe:      p,
	})
	if !errors.Is(err, broken) {
		t.Fatalf("Run with a source that fails: %v, want its error", err)
	}
}

// TestInputPipeUnusable: as with output, a user who may not open the FIFO
// gets ErrPipeUnusable, nothing runs, and nothing of the input was taken.
func TestInputPipeUnusable(t *testing.T) {
	c, ctr := appContainer(t)
	ctx := testCtx(t)
	p := mustPipe(t, c, ctr, true)
	in := bytes.NewReader([]byte("input"))
	_, err := c.Run(ctx, Exec{Container: ctr, User: "65534", Cmd: []string{"sh", "-c", "cat > /data/ran"}, Stdin: in, Pipe: p})
	if !errors.Is(err, ErrPipeUnusable) {
		t.Fatalf("Run as another user: %v, want ErrPipeUnusable", err)
	}
	if in.Len() != 5 {
		t.Errorf("%d bytes of the input were taken", 5-in.Len())
	}
	if _, _, code := testenv.Exec(t, ctr, nil, "test", "-e", "/data/ran"); code == 0 {
		t.Error("the command ran although the FIFO could not be used")
	}
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }

package menu

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// term runs the real mbk binary on a pseudo-terminal, as a person's
// terminal would: it reads what mbk draws, keeps the screen it shows, and
// types keys. It answers no terminal query: mbk must ask none. Waits are
// for text on the screen, with a generous deadline; nothing sleeps and
// hopes.
type term struct {
	t    *testing.T
	pty  *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	raw  []byte
	vt   *vt // the screen as a terminal shows it
	fed  int // raw bytes the screen has taken
	seen int // how far in the plain text the waits have read
	// changed is signalled after every read; done is closed at EOF.
	changed chan struct{}
	done    chan struct{}
	exited  chan struct{}
	code    int
}

const termDeadline = 2 * time.Minute

const termRows, termCols = 50, 160

func startTerm(t *testing.T, env []string, args ...string) *term {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mbk"), args...)
	cmd.Env = append(append(baseEnv(t), "TERM=xterm-256color"), env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: termRows, Cols: termCols})
	if err != nil {
		t.Fatalf("start mbk on a pty: %v", err)
	}
	tm := &term{t: t, pty: f, cmd: cmd, vt: newVT(termRows, termCols), changed: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	go tm.read()
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			tm.code = ee.ExitCode()
		} else if err != nil {
			tm.code = -1
		}
		close(tm.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-tm.exited:
		default:
			cmd.Process.Kill()
			<-tm.exited
		}
		f.Close()
	})
	return tm
}

func (tm *term) read() {
	defer close(tm.done)
	buf := make([]byte, 8192)
	for {
		n, err := tm.pty.Read(buf)
		if n > 0 {
			tm.mu.Lock()
			tm.raw = append(tm.raw, buf[:n]...)
			tm.fed += tm.vt.feed(tm.raw[tm.fed:])
			tm.mu.Unlock()
			select {
			case tm.changed <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return // EIO once mbk has exited and the pty is closed
		}
	}
}

// screen is everything mbk has written, in order, without escape
// sequences: a transcript. A cursor move starts a new line, so that what a
// full-screen prompt draws reads row by row.
func (tm *term) screen() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return plain(tm.raw)
}

// shown is the screen as the terminal shows it now, row by row.
func (tm *term) shown() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.vt.String()
}

// waitShown waits until the terminal shows want on one of its rows. It
// waits for a state (the cursor on an item, the focus on a field), which a
// full-screen prompt may draw in pieces, and consumes nothing.
func (tm *term) waitShown(want string) {
	tm.t.Helper()
	deadline := time.NewTimer(termDeadline)
	defer deadline.Stop()
	for {
		s := tm.shown()
		if strings.Contains(s, want) {
			return
		}
		select {
		case <-tm.changed:
		case <-tm.done:
			if tm.shown() != s {
				continue
			}
			tm.t.Fatalf("mbk ended before the terminal showed %q\n--- terminal:\n%s", want, s)
		case <-deadline.C:
			tm.t.Fatalf("the terminal did not show %q within %s\n--- terminal:\n%s", want, termDeadline, s)
		}
	}
}

// waitFor waits until want shows after what earlier waits consumed, and
// consumes up to it.
func (tm *term) waitFor(want string) {
	tm.t.Helper()
	tm.waitMatch(regexp.MustCompile(regexp.QuoteMeta(want)))
}

// waitMatch waits for re after what earlier waits consumed and returns its
// submatches.
func (tm *term) waitMatch(re *regexp.Regexp) []string {
	tm.t.Helper()
	deadline := time.NewTimer(termDeadline)
	defer deadline.Stop()
	for {
		s := tm.screen()
		if loc := re.FindStringSubmatchIndex(s[tm.seen:]); loc != nil {
			m := re.FindStringSubmatch(s[tm.seen:])
			tm.seen += loc[1]
			return m
		}
		select {
		case <-tm.changed:
		case <-tm.done:
			if s2 := tm.screen(); s2 != s {
				continue // the last bytes arrived with EOF
			}
			tm.t.Fatalf("mbk ended before the screen showed %q\n--- screen since the last match:\n%s", re, s[tm.seen:])
		case <-deadline.C:
			tm.t.Fatalf("the screen did not show %q within %s\n--- screen since the last match:\n%s", re, termDeadline, s[tm.seen:])
		}
	}
}

// keys a person types.
const (
	keyUp    = "\x1b[A"
	keyDown  = "\x1b[B"
	keyEnter = "\r"
	keyEsc   = "\x1b"
	keyKill  = "\x15" // Ctrl+U: empty the input field
)

func (tm *term) send(keys string) {
	tm.t.Helper()
	if _, err := tm.pty.WriteString(keys); err != nil {
		tm.t.Fatalf("type %q: %v", keys, err)
	}
}

// wait waits for mbk to exit and returns its exit code.
func (tm *term) wait() int {
	tm.t.Helper()
	select {
	case <-tm.exited:
		return tm.code
	case <-time.After(termDeadline):
		tm.t.Fatalf("mbk did not exit within %s\n--- screen:\n%s", termDeadline, tm.screen()[tm.seen:])
		return 0
	}
}

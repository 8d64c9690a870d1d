package sdktest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/sdk/sdktest"
)

// recorder is a testing.TB that records failures instead of failing the
// test, so that a test can assert that a kit failed, and why. Fatal ends the
// kit's goroutine, as it would a test's.
type recorder struct {
	testing.TB // the real test: Helper, Logf, Cleanup and TempDir go there

	mu     sync.Mutex
	errors []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, s)
	r.TB.Logf("(recorded) %s", s)
}

func (r *recorder) Error(args ...any)                 { r.add(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) { r.add(fmt.Sprintf(format, args...)) }
func (r *recorder) Fail()                             { r.add("Fail") }
func (r *recorder) FailNow()                          { r.add("FailNow"); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.add(fmt.Sprint(args...)); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.add(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (r *recorder) SkipNow()         { r.add("skipped"); runtime.Goexit() }
func (r *recorder) Skip(args ...any) { r.add("skipped: " + fmt.Sprint(args...)); runtime.Goexit() }
func (r *recorder) Skipf(format string, args ...any) {
	r.add("skipped: " + fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errors) > 0
}

// run runs a kit under a recorder and returns the failures it reported.
func run(t *testing.T, kit func(testing.TB)) []string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		kit(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errors
}

// expect checks that a kit reported a failure containing want, or none
// when want is "".
func expect(t *testing.T, failures []string, want string) {
	t.Helper()
	if want == "" {
		if len(failures) > 0 {
			t.Errorf("the kit failed a conforming plugin:\n%s", strings.Join(failures, "\n"))
		}
		return
	}
	for _, f := range failures {
		if strings.Contains(f, want) {
			return
		}
	}
	t.Errorf("the kit did not report %q; it reported:\n%s", want, strings.Join(failures, "\n"))
}

// ---- a fake source ----------------------------------------------------------

// fakeSource is a dump plugin that backs up payload and restores into
// restored. Its faults are set by the test.
type fakeSource struct {
	payload []byte

	// backupIgnoresCancel keeps writing after the core cancelled, ignoring
	// every error, and returns nil.
	backupIgnoresCancel bool
	// backupHangs blocks, once cancelled, until release is closed.
	backupHangs bool
	// restoreReadsHalf stops reading halfway and returns nil.
	restoreReadsHalf bool
	// restoreIgnoresCancel reads what it is given, without looking at its
	// context, and returns nil at the end of the stream, however short.
	restoreIgnoresCancel bool
	// leak names the password in the restore's summary.
	leak    bool
	release chan struct{}

	mu       sync.Mutex
	restored []byte
	options  restoreOptions
}

type restoreOptions struct {
	Target string `cty:"target_path"`
	Clean  bool   `cty:"clean"`
	Jobs   int    `cty:"jobs"`
}

func (f *fakeSource) Describe() sdk.Info {
	return sdk.Info{Name: "fakedump", Version: "0.0.1", Kinds: []string{sdk.KindDump}, Description: "A fake dump for the kit's tests."}
}

func (f *fakeSource) Schema(string) (sdk.Schema, error) {
	return sdk.Schema{
		Attributes: []sdk.Attribute{
			{Name: "database", Type: sdk.String, Required: true},
			{Name: "password", Type: sdk.String, Sensitive: true},
			{Name: "password_file", Type: sdk.String},
		},
		RestoreOptions: []sdk.Attribute{
			{Name: "target_path", Type: sdk.String, Flag: "target-path"},
			{Name: "clean", Type: sdk.Bool, Flag: "clean", Default: cty.False},
			{Name: "jobs", Type: sdk.Int, Default: cty.NumberIntVal(2)},
		},
	}, nil
}

func (f *fakeSource) Plan(context.Context, sdk.Config) ([]sdk.Artifact, error) {
	return []sdk.Artifact{{ID: "moodle", Name: "moodle", Format: "sql"}}, nil
}

func (f *fakeSource) Backup(ctx context.Context, _ sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
	p := f.payload
	for len(p) > 0 {
		err := ctx.Err()
		if err == nil || f.backupIgnoresCancel {
			n := min(len(p), 64<<10)
			_, err = w.Write(p[:n])
			p = p[n:]
		}
		switch {
		case err == nil || f.backupIgnoresCancel:
		case f.backupHangs:
			<-f.release
			return sdk.BackupResult{}, errors.New("released")
		default:
			return sdk.BackupResult{}, err
		}
	}
	return sdk.BackupResult{Details: map[string]any{"bytes": len(f.payload)}}, nil
}

func (f *fakeSource) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	var o restoreOptions
	if err := req.Options.Decode(&o); err != nil {
		return sdk.RestoreResult{}, err
	}
	if !f.restoreIgnoresCancel {
		r = sdk.ContextReader(ctx, r)
	}
	if f.restoreReadsHalf {
		r = io.LimitReader(r, int64(len(f.payload)/2))
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	if !f.restoreIgnoresCancel && !f.restoreReadsHalf && len(b) != len(f.payload) {
		return sdk.RestoreResult{}, fmt.Errorf("the stream ended after %d bytes of %d", len(b), len(f.payload))
	}
	f.mu.Lock()
	f.restored, f.options = b, o
	f.mu.Unlock()
	summary := fmt.Sprintf("restored %d bytes into %s", len(b), o.Target)
	if f.leak {
		var st struct {
			Password string `cty:"password"`
		}
		if err := req.Config.Decode(&st); err != nil {
			return sdk.RestoreResult{}, err
		}
		summary += " as moodle:" + st.Password
	}
	return sdk.RestoreResult{Summary: summary}, nil
}

func payload(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

func sourceCase(f *fakeSource) sdktest.SourceCase {
	return sdktest.SourceCase{
		Settings:       map[string]cty.Value{"database": cty.StringVal("moodle"), "password": cty.StringVal("Sw0rdfish-42")},
		RestoreOptions: map[string]cty.Value{"target_path": cty.StringVal("/srv/restore"), "clean": cty.True},
		Verify: func(t testing.TB) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !bytes.Equal(f.restored, f.payload) {
				t.Errorf("restored %d bytes, not the %d backed up", len(f.restored), len(f.payload))
			}
			if f.options != (restoreOptions{Target: "/srv/restore", Clean: true, Jobs: 2}) {
				t.Errorf("the restore decoded its options as %+v", f.options)
			}
		},
		Timeout: 3 * time.Second,
	}
}

func TestSourceKit(t *testing.T) {
	big := payload(sdktest.MinCancelBytes + 1<<20)
	tests := []struct {
		name  string
		fault func(f *fakeSource)
		want  string // "" for no failure
	}{
		{"a conforming source passes", func(*fakeSource) {}, ""},
		{"a Backup that ignores cancellation and write errors", func(f *fakeSource) { f.backupIgnoresCancel = true },
			"the plugin's Backup of moodle succeeded after the core cancelled it"},
		{"a Backup that hangs once cancelled", func(f *fakeSource) { f.backupHangs = true },
			"the plugin's Backup of moodle still runs after the core cancelled it"},
		{"a Restore that stops reading halfway", func(f *fakeSource) { f.restoreReadsHalf = true },
			"Restore of moodle: the plugin stopped reading before the end of the stream"},
		{"a Restore that ignores cancellation", func(f *fakeSource) { f.restoreIgnoresCancel = true },
			"the plugin's Restore of moodle succeeded after the core cancelled it"},
		{"a Restore summary that shows the password", func(f *fakeSource) { f.leak = true },
			"the summary of the Restore of moodle holds the value of a sensitive setting (Sw0…): restored 9437184 bytes into /srv/restore as moodle:<SECRET>"},
		{"a source too small to cancel", func(f *fakeSource) { f.payload = f.payload[:100<<10] },
			"fewer than MinCancelBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSource{payload: big, release: make(chan struct{})}
			// A hung fake goes at the end of the test, not with the process.
			t.Cleanup(func() { close(f.release) })
			tt.fault(f)
			expect(t, run(t, func(tb testing.TB) { sdktest.Source(tb, f, sourceCase(f)) }), tt.want)
		})
	}
}

// ---- a fake notifier --------------------------------------------------------

// fakeNotifier sends "event pipeline" over TCP to addr and waits for "OK".
type fakeNotifier struct {
	// leak puts the password in the summary.
	leak bool
	// ignoresCancel dials and reads without looking at its context.
	ignoresCancel bool
	// unflagged declares the password as an ordinary setting.
	unflagged bool
}

type notifySettings struct {
	Addr     string `cty:"addr"`
	Password string `cty:"password"`
}

func (f *fakeNotifier) Describe() sdk.Info {
	return sdk.Info{Name: "fakenotify", Version: "0.0.1", Kinds: []string{sdk.KindNotify}, Description: "A fake notifier for the kit's tests."}
}

func (f *fakeNotifier) Schema(string) (sdk.Schema, error) {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "addr", Type: sdk.String, Required: true},
		{Name: "password", Type: sdk.String, Sensitive: !f.unflagged},
	}}, nil
}

func (f *fakeNotifier) Notify(ctx context.Context, cfg sdk.Config, event string, r sdk.Report) (string, error) {
	var s notifySettings
	if err := cfg.Decode(&s); err != nil {
		return "", err
	}
	var conn net.Conn
	var err error
	if f.ignoresCancel {
		conn, err = net.Dial("tcp", s.Addr)
	} else {
		conn, err = new(net.Dialer).DialContext(ctx, "tcp", s.Addr)
	}
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if !f.ignoresCancel {
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
	}
	if _, err := fmt.Fprintf(conn, "%s %s %s\n", s.Password, event, r.Pipeline); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("read the reply: %w", err)
	}
	if reply != "OK\n" {
		return "", fmt.Errorf("the server said %q", reply)
	}
	if f.leak {
		return "delivered to " + s.Addr + " with password " + s.Password, nil
	}
	return "delivered to " + s.Addr, nil
}

// lineServer answers every line with OK and keeps the lines.
type lineServer struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func startLineServer(t *testing.T) *lineServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				s.mu.Lock()
				s.lines = append(s.lines, strings.TrimSuffix(line, "\n"))
				s.mu.Unlock()
				io.WriteString(c, "OK\n")
			}()
		}
	}()
	return s
}

func (s *lineServer) has(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l == line {
			return true
		}
	}
	return false
}

func TestNotifierKit(t *testing.T) {
	const password = "Sw0rdfish-42"
	tests := []struct {
		name string
		f    *fakeNotifier
		want string
	}{
		{"a conforming notifier passes", &fakeNotifier{}, ""},
		{"a summary that shows the password", &fakeNotifier{leak: true},
			"the summary of Notify(success) holds the value of a sensitive setting (Sw0…): delivered to"},
		{"a Notify that ignores cancellation", &fakeNotifier{ignoresCancel: true},
			"the plugin's Notify still runs after the core cancelled it"},
		{"a password not flagged sensitive", &fakeNotifier{unflagged: true},
			`"password" looks like a secret but is not Sensitive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startLineServer(t)
			c := sdktest.NotifierCase{
				Settings: map[string]cty.Value{"addr": cty.StringVal(srv.ln.Addr().String()), "password": cty.StringVal(password)},
				Check: func(t testing.TB, event string, rep sdk.Report) {
					if !srv.has(password + " " + event + " " + rep.Pipeline) {
						t.Errorf("the server did not receive %s for %s", event, rep.Pipeline)
					}
				},
				Unresponsive: func(addr string) map[string]cty.Value {
					return map[string]cty.Value{"addr": cty.StringVal(addr), "password": cty.StringVal(password)}
				},
				Timeout: 3 * time.Second,
			}
			expect(t, run(t, func(tb testing.TB) { sdktest.Notifier(tb, tt.f, c) }), tt.want)
		})
	}

	t.Run("without Unresponsive, a Notify that ignores a cancelled context", func(t *testing.T) {
		srv := startLineServer(t)
		c := sdktest.NotifierCase{
			Settings: map[string]cty.Value{"addr": cty.StringVal(srv.ln.Addr().String()), "password": cty.StringVal(password)},
			Check:    func(testing.TB, string, sdk.Report) {},
			Timeout:  3 * time.Second,
		}
		expect(t, run(t, func(tb testing.TB) { sdktest.Notifier(tb, &fakeNotifier{}, c) }), "")
		expect(t, run(t, func(tb testing.TB) { sdktest.Notifier(tb, &fakeNotifier{ignoresCancel: true}, c) }),
			"Notify succeeded with its context cancelled")
	})
}

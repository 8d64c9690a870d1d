package sdktest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

// NotifierCase is what Notifier needs besides the plugin.
type NotifierCase struct {
	// Settings is the notify stage's body, as a pipeline file would give
	// it, pointing at a real server the test runs (a mail server, an HTTP
	// server). Give the sensitive settings distinctive values of at least
	// six characters: the kit looks for them in what the plugin returns.
	Settings map[string]cty.Value
	// Check is called after each report was sent without error, with the
	// event and the report the kit sent: it checks that the server received
	// it and what it says. Required.
	Check func(t testing.TB, event string, rep sdk.Report)
	// Unresponsive returns settings like Settings that point the plugin at
	// addr, a host:port on 127.0.0.1, instead of the real server. The kit
	// first leaves nothing listening there (the connection is refused: the
	// error must name no secret), then listens and accepts connections but
	// never answers, and cancels the call once the plugin has connected:
	// Notify must then return promptly with an error.
	//
	// Without it the kit cancels the context before the plugin's Notify is
	// called, inside the plugin process, and expects an error: a weaker
	// check, for a notifier that does not talk to a server over TCP.
	Unresponsive func(addr string) map[string]cty.Value
	// Timeout is how long a cancelled call may take to return; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// events are what a notifier is sent, `mbk notify test`'s included.
var events = []string{sdk.EventStart, sdk.EventSuccess, sdk.EventFailure, sdk.EventWarning, sdk.EventDrill, sdk.EventTest}

// Notifier checks a notify plugin through the real protocol: what Describe
// says, its schema (it passes Schema.Check and arrives intact, and settings
// whose names say they hold a secret are Sensitive), that ValidateConfig
// accepts c.Settings, that a report of each event (start, success, failure,
// warning, drill, test) is sent without error with a summary to show (c.Check then
// checks it reached the server), that no summary or error holds the value of
// a sensitive setting, and that a cancelled Notify returns an error
// promptly, in the host and in the plugin (see NotifierCase.Unresponsive).
func Notifier(t testing.TB, p sdk.Plugin, c NotifierCase) {
	t.Helper()
	impl, ok := p.(sdk.Notifier)
	if !ok {
		t.Fatalf("plugin %q does not implement sdk.Notifier", p.Describe().Name)
	}
	if c.Check == nil {
		t.Fatal("NotifierCase.Check is required: it proves the reports reached the server")
	}
	timeout := timeoutOr(c.Timeout)
	spy := &notifySpy{base: base{p}, impl: impl, notifies: newCalls()}
	h := serve(t, spy, timeout)
	describe(t, h, p, sdk.KindNotify)
	s := schema(t, h, p, sdk.KindNotify)
	cfg, err := encode(sdk.KindNotify, s, c.Settings)
	if err != nil {
		t.Fatalf("Settings: %v", err)
	}
	validate(t, h, cfg)
	secret := secrets(s, c.Settings)
	if len(secret) == 0 {
		t.Logf("no sensitive setting has a value of %d characters or more: no secret to look for", minSecret)
	}

	for _, event := range events {
		rep := report(event)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		summary, err := h.Notify(ctx, cfg, event, rep)
		cancel()
		if err != nil {
			noSecret(t, "the error of Notify("+event+")", err.Error(), secret)
			t.Errorf("Notify(%s): %v", event, err)
			continue
		}
		t.Logf("Notify(%s): %s", event, summary)
		if summary == "" {
			t.Errorf("Notify(%s) returned no summary: mbk shows it, and `mbk notify test` prints it", event)
		}
		noSecret(t, "the summary of Notify("+event+")", summary, secret)
		c.Check(t, event, rep)
	}

	if c.Unresponsive == nil {
		notifyPrecancelled(t, h, spy, cfg, timeout)
		return
	}
	notifyRefused(t, h, s, c, timeout)
	notifyCancelled(t, h, spy, s, c, timeout)
}

// notifyRefused sends a report where nothing listens: the error must say
// so without a secret.
func notifyRefused(t testing.TB, h *pluginhost.Client, s sdk.Schema, c NotifierCase, timeout time.Duration) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	attrs := c.Unresponsive(addr)
	cfg, err := encode(sdk.KindNotify, s, attrs)
	if err != nil {
		t.Fatalf("Unresponsive(%q): %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	summary, err := h.Notify(ctx, cfg, sdk.EventFailure, report(sdk.EventFailure))
	if err == nil {
		t.Errorf("Notify to %s, where nothing listens, succeeded: %q", addr, summary)
		return
	}
	t.Logf("Notify to %s, where nothing listens: %v", addr, err)
	noSecret(t, "the error of a Notify to a server that refuses the connection", err.Error(), secrets(s, attrs))
}

// notifyCancelled cancels a Notify once the plugin has connected to a
// server that never answers.
func notifyCancelled(t testing.TB, h *pluginhost.Client, spy *notifySpy, s sdk.Schema, c NotifierCase, timeout time.Duration) {
	t.Helper()
	tp, err := newTarpit()
	if err != nil {
		t.Fatal(err)
	}
	// Before the plugin stops: a plugin that ignores its context is
	// released when the connection closes.
	t.Cleanup(tp.close)
	attrs := c.Unresponsive(tp.addr())
	cfg, err := encode(sdk.KindNotify, s, attrs)
	if err != nil {
		t.Fatalf("Unresponsive(%q): %v", tp.addr(), err)
	}
	spy.notifies.drain()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.Notify(ctx, cfg, sdk.EventSuccess, report(sdk.EventSuccess))
		done <- err
	}()
	select {
	case <-tp.connected:
	case err := <-done:
		t.Fatalf("Notify to a server that never answers returned before it was cancelled: %v", err)
	case <-time.After(timeout):
		t.Fatalf("the plugin did not connect to %s within %v", tp.addr(), timeout)
	}
	cancel()
	if err, ok := wait(t, done, timeout, "Notify did not return after its context was cancelled"); ok && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Notify: err = %v, want context.Canceled", err)
	}
	// The host gave up; the plugin must stop too.
	if r, ok := wait(t, spy.notifies, timeout, "the plugin's Notify still runs after the core cancelled it"); ok {
		if r.err == nil {
			t.Errorf("the plugin's Notify succeeded after the core cancelled it, from a server that never answered")
		} else {
			t.Logf("the plugin's Notify, cancelled: %v", r.err)
			noSecret(t, "the error of a cancelled Notify", r.err.Error(), secrets(s, attrs))
		}
	}
}

// notifyPrecancelled has the plugin's Notify called with a context already
// cancelled: it must return an error, promptly.
func notifyPrecancelled(t testing.TB, h *pluginhost.Client, spy *notifySpy, cfg *pb.Config, timeout time.Duration) {
	t.Helper()
	t.Log("no Unresponsive settings: Notify is only checked with a context cancelled before it is called")
	spy.precancel.Store(true)
	defer spy.precancel.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.Notify(ctx, cfg, sdk.EventTest, report(sdk.EventTest))
		done <- err
	}()
	if err, ok := wait(t, done, timeout, "Notify with a cancelled context did not return"); ok && err == nil {
		t.Errorf("Notify succeeded with its context cancelled")
	}
}

// tarpit accepts connections and never answers.
type tarpit struct {
	ln        net.Listener
	connected chan struct{}
	once      sync.Once
	mu        sync.Mutex
	conns     []net.Conn
}

func newTarpit() (*tarpit, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tp := &tarpit{ln: ln, connected: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.mu.Lock()
			tp.conns = append(tp.conns, c)
			tp.mu.Unlock()
			tp.once.Do(func() { close(tp.connected) })
		}
	}()
	return tp, nil
}

func (tp *tarpit) addr() string { return tp.ln.Addr().String() }

func (tp *tarpit) close() {
	tp.ln.Close()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, c := range tp.conns {
		c.Close()
	}
}

package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

// MinCancelBytes is the smallest stream the kit can cancel midway: the
// largest artifact of a SourceCase must be at least this long. The side
// channel's socket holds up to a few MiB: a plugin may have written that
// much more than the core received when it cancels a backup, and may have
// read that much less than the core sent when it cancels a restore.
const MinCancelBytes = 8 << 20

// backupCut is how far into a backup the kit cancels it: the plugin has
// produced at least that much, and cannot have produced it all.
const backupCut = 1 << 20

// restoreCut is how much of a stream the kit sends before it cancels the
// restore: the plugin has read at least a few MiB of it, and cannot have
// read it all.
func restoreCut(size int64) int64 { return size * 3 / 4 }

// SourceCase is what Source needs besides the plugin.
type SourceCase struct {
	// Kind is sdk.KindDump or sdk.KindArchive; "" for whichever of the two
	// the plugin serves.
	Kind string
	// Settings is the stage body, as a pipeline file would give it, pointing
	// at a real source holding test data (a database in a container, a
	// directory). Its largest artifact must make a stream of at least
	// MinCancelBytes.
	Settings map[string]cty.Value
	// RestoreOptions are the options of the restore, as `mbk restore` would
	// set them, typed (cty.True for a Bool). Options the schema declares and
	// this leaves out take their default. The kit checks that the plugin's
	// Restore receives exactly these values.
	RestoreOptions map[string]cty.Value
	// Verify checks the state the restore left behind (the database, the
	// directory), against the source. Required.
	Verify func(t testing.TB)
	// CancelRestoreOptions are the options of the restore the kit cancels
	// midway, after Verify: the restore must start over what the first one
	// left (another target, or the option that replaces it). Nil means
	// RestoreOptions.
	CancelRestoreOptions map[string]cty.Value
	// Timeout is how long a cancelled call may take to return; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// Source checks a dump or archive plugin through the real protocol: what
// Describe says, its schema (as Notifier does, restore options included),
// that ValidateConfig accepts c.Settings, that Plan names artifacts, that
// the Backup of each streams bytes, as many as it reports, that the Restore
// of each stream reads all of it and receives c.RestoreOptions as typed
// values, defaults filled in, that c.Verify then passes, and that a Backup
// and a Restore cancelled midway return an error promptly, in the host and
// in the plugin itself. No error, summary, details or info text may hold
// the value of a sensitive setting.
func Source(t testing.TB, p sdk.Plugin, c SourceCase) {
	t.Helper()
	impl, ok := p.(sdk.Source)
	if !ok {
		t.Fatalf("plugin %q does not implement sdk.Source", p.Describe().Name)
	}
	if c.Verify == nil {
		t.Fatal("SourceCase.Verify is required: it proves the restore put the data back")
	}
	kind := c.Kind
	if kind == "" {
		for _, k := range p.Describe().Kinds {
			if k == sdk.KindDump || k == sdk.KindArchive {
				if kind != "" {
					t.Fatalf("plugin %q serves both %s and %s: set SourceCase.Kind", p.Describe().Name, kind, k)
				}
				kind = k
			}
		}
	}
	timeout := timeoutOr(c.Timeout)
	spy := &sourceSpy{base: base{p}, impl: impl, backups: newCalls(), restores: newCalls()}
	h := serve(t, spy, timeout)
	describe(t, h, p, kind)
	s := schema(t, h, p, kind)
	cfg, err := encode(kind, s, c.Settings)
	if err != nil {
		t.Fatalf("Settings: %v", err)
	}
	validate(t, h, cfg)
	opts, err := restoreOptions(s, c.RestoreOptions)
	if err != nil {
		t.Fatalf("RestoreOptions: %v", err)
	}
	cancelOpts := opts
	if c.CancelRestoreOptions != nil {
		if cancelOpts, err = restoreOptions(s, c.CancelRestoreOptions); err != nil {
			t.Fatalf("CancelRestoreOptions: %v", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	arts, err := h.Plan(ctx, cfg)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if len(arts) == 0 {
		t.Fatal("Plan names no artifact")
	}
	checkPlan(t, arts)

	secret := secrets(s, c.Settings)
	if len(secret) == 0 {
		t.Logf("no sensitive setting has a value of %d characters or more: no secret to look for", minSecret)
	}
	dir := t.TempDir()
	var streams []stream
	for i, a := range arts {
		st := backup(t, h, cfg, a, filepath.Join(dir, fmt.Sprintf("artifact-%d", i)), secret)
		streams = append(streams, st)
	}
	for _, st := range streams {
		restore(t, h, spy, cfg, st, opts, s, secret, timeout)
	}
	if t.Failed() {
		t.Fatal("the round trip failed: Verify and the cancellations not run")
	}
	c.Verify(t)

	largest := slices.MaxFunc(streams, func(a, b stream) int { return int(a.size - b.size) })
	if largest.size < MinCancelBytes {
		t.Errorf("the largest artifact (%s) makes %d bytes, fewer than MinCancelBytes (%d): give the source more data, so that a cancellation lands midway",
			largest.art.ID, largest.size, MinCancelBytes)
		return
	}
	spy.backups.drain()
	cancelBackup(t, h, spy, cfg, largest, secret, timeout)
	spy.restores.drain()
	cancelRestore(t, h, spy, cfg, largest, cancelOpts, secret, timeout)
}

// options are restore options in their wire form, and as the plugin must
// decode them: typed, defaults filled in.
type options struct {
	wire []byte
	want sdk.Config
}

func restoreOptions(s sdk.Schema, vals map[string]cty.Value) (options, error) {
	want, err := sdk.NewConfig("restore", sdk.Schema{Attributes: s.RestoreOptions}, vals)
	if err != nil {
		return options{}, err
	}
	v, err := object(s.RestoreOptions, vals)
	if err != nil {
		return options{}, err
	}
	b, err := wire.EncodeValue(v, s.RestoreOptions)
	if err != nil {
		return options{}, err
	}
	return options{wire: b, want: want}, nil
}

func checkPlan(t testing.TB, arts []sdk.Artifact) {
	t.Helper()
	seen := map[string]bool{}
	for _, a := range arts {
		if a.ID == "" || a.Name == "" || a.Format == "" {
			t.Errorf("Plan: artifact %+v lacks an ID, a Name or a Format", a)
		}
		if seen[a.ID] {
			t.Errorf("Plan: two artifacts have the ID %q", a.ID)
		}
		seen[a.ID] = true
	}
}

// stream is one artifact's backup, kept in a file.
type stream struct {
	art     sdk.Artifact
	file    string
	size    int64
	details json.RawMessage
}

func backup(t testing.TB, h *pluginhost.Client, cfg *pb.Config, a sdk.Artifact, file string, secret []string) stream {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &wire.CountingWriter{W: f}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	reply, err := h.Backup(ctx, cfg, a.ID, kitSet, w)
	if err != nil {
		noSecret(t, "the error of the Backup of "+a.ID, err.Error(), secret)
		t.Fatalf("Backup of %s: %v", a.ID, err)
	}
	noSecret(t, "the details of the Backup of "+a.ID, string(reply.Details), secret)
	noSecret(t, "the info text of the Backup of "+a.ID, reply.InfoText, secret)
	if reply.Bytes != w.N {
		t.Errorf("Backup of %s: reported %d bytes, %d arrived", a.ID, reply.Bytes, w.N)
	}
	if w.N == 0 {
		t.Errorf("Backup of %s streamed no byte", a.ID)
	}
	if len(reply.Details) > 0 && string(reply.Details) != "null" {
		var d map[string]any
		if err := json.Unmarshal(reply.Details, &d); err != nil {
			t.Errorf("Backup of %s: the details are no JSON object: %v", a.ID, err)
		}
	}
	t.Logf("Backup of %s (%s, %s): %d bytes", a.ID, a.Name, a.Format, w.N)
	return stream{art: a, file: file, size: w.N, details: reply.Details}
}

func restore(t testing.TB, h *pluginhost.Client, spy *sourceSpy, cfg *pb.Config, st stream, opts options, s sdk.Schema, secret []string, timeout time.Duration) {
	t.Helper()
	f, err := os.Open(st.file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spy.restores.drain()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	reply, err := h.Restore(ctx, cfg, st.art.ID, opts.wire, st.details, f)
	if err != nil {
		noSecret(t, "the error of the Restore of "+st.art.ID, err.Error(), secret)
		t.Errorf("Restore of %s: %v", st.art.ID, err)
		return
	}
	noSecret(t, "the summary of the Restore of "+st.art.ID, reply.Summary, secret)
	if reply.Bytes != st.size {
		t.Errorf("Restore of %s: the plugin read %d bytes of %d", st.art.ID, reply.Bytes, st.size)
	}
	t.Logf("Restore of %s: %s", st.art.ID, reply.Summary)
	r, ok := wait(t, spy.restores, timeout, "the plugin's Restore of %s did not report", st.art.ID)
	if !ok {
		return
	}
	for _, o := range s.RestoreOptions {
		want := opts.want.Value.GetAttr(o.Name)
		var got cty.Value
		if v := r.options.Value; !v.IsNull() && v.Type().IsObjectType() && v.Type().HasAttribute(o.Name) {
			got = v.GetAttr(o.Name)
		}
		if got == cty.NilVal || !got.RawEquals(want) {
			t.Errorf("restore option %q reached the plugin as %s, want %s", o.Name, show(got), show(want))
		}
	}
}

func show(v cty.Value) string {
	if v == cty.NilVal {
		return "nothing"
	}
	return fmt.Sprintf("%#v", v)
}

// cutWriter receives a backup and cancels it after backupCut bytes.
type cutWriter struct {
	n      int64
	cancel context.CancelFunc
	once   sync.Once
}

func (w *cutWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n >= backupCut {
		w.once.Do(w.cancel)
	}
	return len(p), nil
}

func cancelBackup(t testing.TB, h *pluginhost.Client, spy *sourceSpy, cfg *pb.Config, st stream, secret []string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cutWriter{cancel: cancel}
	done := make(chan error, 1)
	go func() {
		_, err := h.Backup(ctx, cfg, st.art.ID, kitSet, w)
		done <- err
	}()
	select {
	case <-ctx.Done():
	case err := <-done:
		t.Errorf("a Backup of %s to be cancelled after %d bytes ended first: %v", st.art.ID, backupCut, err)
		return
	case <-time.After(callTimeout):
		t.Errorf("a Backup of %s streamed fewer than %d bytes in %v", st.art.ID, backupCut, callTimeout)
		return
	}
	start := time.Now()
	if err, ok := wait(t, done, timeout, "a Backup of %s did not return after its context was cancelled", st.art.ID); ok && !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled Backup of %s: err = %v, want context.Canceled", st.art.ID, err)
	}
	// The host stops waiting at once; the plugin must stop too, and stop
	// what it started.
	if r, ok := wait(t, spy.backups, timeout, "the plugin's Backup of %s still runs after the core cancelled it", st.art.ID); ok {
		if r.err == nil {
			t.Errorf("the plugin's Backup of %s succeeded after the core cancelled it", st.art.ID)
		} else {
			t.Logf("the plugin's Backup of %s, cancelled after %d bytes, returned in %v: %v", st.art.ID, w.n, time.Since(start).Round(time.Millisecond), r.err)
			noSecret(t, "the error of a cancelled Backup", r.err.Error(), secret)
		}
	}
}

// cutReader feeds a restore and cancels it after restoreCut bytes.
type cutReader struct {
	r      io.Reader
	left   int64
	cancel context.CancelFunc
	cut    chan struct{}
	once   sync.Once
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.once.Do(func() {
			c.cancel()
			close(c.cut)
		})
		return 0, context.Canceled
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func cancelRestore(t testing.TB, h *pluginhost.Client, spy *sourceSpy, cfg *pb.Config, st stream, opts options, secret []string, timeout time.Duration) {
	t.Helper()
	f, err := os.Open(st.file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	at := restoreCut(st.size)
	r := &cutReader{r: f, left: at, cancel: cancel, cut: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := h.Restore(ctx, cfg, st.art.ID, opts.wire, st.details, r)
		done <- err
	}()
	select {
	case <-r.cut:
	case err := <-done:
		t.Errorf("a Restore of %s to be cancelled after %d bytes ended first (set CancelRestoreOptions for a restore that can run again): %v", st.art.ID, at, err)
		return
	case <-time.After(callTimeout):
		t.Errorf("a Restore of %s read fewer than %d bytes in %v", st.art.ID, at, callTimeout)
		return
	}
	start := time.Now()
	if err, ok := wait(t, done, timeout, "a Restore of %s did not return after its context was cancelled", st.art.ID); ok && err == nil {
		t.Errorf("a cancelled Restore of %s succeeded", st.art.ID)
	}
	if r, ok := wait(t, spy.restores, timeout, "the plugin's Restore of %s still runs after the core cancelled it", st.art.ID); ok {
		if r.err == nil {
			t.Errorf("the plugin's Restore of %s succeeded after the core cancelled it, on a cut stream", st.art.ID)
		} else {
			t.Logf("the plugin's Restore of %s, cancelled, returned in %v: %v", st.art.ID, time.Since(start).Round(time.Millisecond), r.err)
			noSecret(t, "the error of a cancelled Restore", r.err.Error(), secret)
		}
	}
}

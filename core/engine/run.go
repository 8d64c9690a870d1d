package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"aead.dev/minisign"
	"filippo.io/age"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/redact"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// Engine runs pipelines.
type Engine struct {
	Host    *pluginhost.Host
	Log     hclog.InterceptLogger
	Redact  *redact.Redactor
	Version string
	Now     func() time.Time
	// Progress draws progress bars; nil draws none.
	Progress Progress
	// Identities decrypt encrypted sets (restore only).
	Identities []age.Identity
	// Warnings are what checking the pipeline found to warn of (an
	// env_file others can read): each run says them in its log and report.
	Warnings []string
}

// Result is the outcome of one run.
type Result struct {
	Report    sdk.Report
	Committed bool
	SetDir    string
	// Err is the first error: before commit it means nothing was kept.
	Err error
	// ConfigErr is set when the pipeline could not be prepared.
	ConfigErr bool
	// Later holds what failed once the set was committed: switching
	// maintenance mode off, retention, a store, a notification.
	Later []error
}

// Exit codes, documented in the README.
const (
	ExitOK        = 0
	ExitFailed    = 1
	ExitConfig    = 2
	ExitCommitted = 3
)

// ExitCode maps the outcome to mbk's exit codes.
func (r *Result) ExitCode() int {
	switch {
	case r.ConfigErr:
		return ExitConfig
	case !r.Committed:
		return ExitFailed
	case len(r.Later) > 0:
		return ExitCommitted
	}
	return ExitOK
}

// run holds the state of one run.
type run struct {
	e       *Engine
	p       *config.Pipeline
	log     hclog.Logger
	res     *Result
	name    string
	staging string
	final   string
	tail    *tailSink
	logFile *os.File
	sink    hclog.SinkAdapter
	man     *repo.Manifest
	info    map[string]*strings.Builder // info file -> text
	infoOrd []string
	release func() error
	// afterCommit holds errors that do not stop the commit but make the
	// run's outcome a warning (exit 3).
	afterCommit []error
	// lastUse is each plugin's last stage, after which it is stopped.
	lastUse map[string]*Stage
	// mu guards what the dump and archive lanes both record (res.Report,
	// man, info, infoOrd, files) while they run side by side.
	mu sync.Mutex
	// files are the artifact file names taken so far.
	files map[string]string
	opts  runOpts
	// warnedFuture are the sets already warned of as dated ahead of the
	// clock (warnFuture).
	warnedFuture map[string]bool
	// key signs the set before it is committed; nil when the pipeline
	// signs nothing.
	key *minisign.PrivateKey
	// stores are the copies this run attempted, by store stage name (nil:
	// copied whole); notifyFailed the notifications that failed, by notify
	// stage name. The root's run record keeps both.
	stores       map[string]error
	notifyFailed map[string]int
	// pool is the root's pool once a pooled artifact used it.
	pool *poolRun
}

// Run runs one pipeline end to end. The stages must come from Prepare.
func (e *Engine) Run(ctx context.Context, p *config.Pipeline, stages []*Stage) *Result {
	return e.run(ctx, p, stages, runOpts{})
}

// runOpts make a run the safety copy a restore takes: under the lock and
// the maintenance window the restore already holds, a set of its own kind,
// no retention, stores or notifications, and the plugins left running for
// the restore that follows.
type runOpts struct {
	kind      string // repo.KindPreRestore, or "" for a backup
	restoring string // the set whose restore takes the copy
}

func (o runOpts) safetyCopy() bool { return o.kind == repo.KindPreRestore }

// now reads the engine's clock.
func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) run(ctx context.Context, p *config.Pipeline, stages []*Stage, o runOpts) *Result {
	now := e.now
	host, _ := os.Hostname()
	start := now()
	r := &run{e: e, p: p, log: e.Log.Named(p.Name), res: &Result{}, lastUse: map[string]*Stage{}, opts: o,
		stores: map[string]error{}, notifyFailed: map[string]int{}}
	// Each plugin was started once, by Prepare, and serves every stage of
	// the run that uses it; it is stopped after its last stage, so what is
	// done no longer holds memory.
	var lastStore *Stage
	for _, s := range stages {
		if o.safetyCopy() {
			break // the restore stops them
		}
		r.lastUse[s.Plugin] = s
		if s.Kind == sdk.KindStore {
			lastStore = s
		}
	}
	if lastStore != nil {
		// Retention runs again for each store, after the retain stages.
		for _, s := range stagesOf(stages, sdk.KindRetain) {
			r.lastUse[s.Plugin] = lastStore
		}
	}
	r.res.Report = sdk.Report{Pipeline: p.Name, File: p.File.Path, Host: host, Started: start.UTC(), Language: p.Language}
	e.Redact.Add(Secrets(p, stages)...)

	err := r.backup(ctx, stages, start)
	if err != nil {
		r.res.Err = err
		r.log.Error("backup failed: nothing was committed", "error", e.Redact.String(err.Error()))
	}
	if r.res.Committed && !o.safetyCopy() {
		r.checkClock()
		r.retain(ctx, stages)
		r.store(ctx, stages)
	}
	r.finish(ctx, stages, now)
	// One start per plugin for the whole run, Prepare included.
	r.log.Debug("plugins started", "count", e.Host.Starts(), "plugins", len(r.lastUse))
	return r.res
}

var infoFileName = regexp.MustCompile(`^[A-Za-z0-9_.-]+\.txt$`)

func (r *run) backup(ctx context.Context, stages []*Stage, start time.Time) error {
	p := r.p
	if err := os.MkdirAll(p.Root, repo.DirMode); err != nil {
		return fmt.Errorf("create root %s: %w", p.Root, err)
	}
	if err := r.checkRoot(); err != nil {
		return err
	}
	if !r.opts.safetyCopy() { // a restore's copy runs under the restore's lock
		lock, err := repo.Acquire(p.Root)
		if err != nil {
			return err
		}
		// Released in finish via the closure below, after retention and notify.
		r.release = lock.Release
		// A restore that failed or was killed left the site holding part
		// of a set: backing it up now would keep that as if it were good.
		if m, err := repo.ReadRestoreMarker(p.Root); err != nil {
			return err
		} else if m != nil {
			return UnfinishedRestoreError(p, m)
		}
		if err := checkOwner(p); err != nil {
			return err
		}
		// Not in a restore's copy: the set it restores may be a download
		// under the root, which counts as a leftover.
		r.cleanLeftovers()
		// A drill killed midway left a database server and a volume
		// running: the nightly run clears them if no drill did.
		if err := r.e.SweepDrill(ctx, p, stages); err != nil {
			r.warn(err.Error())
		}
	}

	key, err := r.signingKey()
	if err != nil {
		return err
	}
	r.key = key

	local := start.In(p.Location)
	r.name = local.Format(repo.SetNameLayout)
	for i := 0; exists(filepath.Join(p.Root, r.name)); i++ {
		if i > 5 {
			return fmt.Errorf("a set named %s already exists in %s", r.name, p.Root)
		}
		// Two runs within one second: wait for the next name.
		time.Sleep(time.Until(local.Truncate(time.Second).Add(time.Second)))
		local = time.Now().In(p.Location)
		r.name = local.Format(repo.SetNameLayout)
	}
	r.res.Report.Set = r.name
	r.staging = filepath.Join(p.Root, repo.StagingPrefix+r.name)
	r.final = filepath.Join(p.Root, r.name)
	if err := os.Mkdir(r.staging, repo.DirMode); err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	if err := r.openLog(); err != nil {
		return err
	}
	r.log.Info("backup started", "pipeline", p.Name, "file", p.File.Path, "set", r.name, "root", p.Root)
	if !r.opts.safetyCopy() {
		for _, w := range r.e.Warnings {
			r.warn(w)
		}
		r.notifyStart(ctx, stages)
	}

	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()

	r.man = &repo.Manifest{Format: 1, Pipeline: p.Name, Set: r.name, Started: start.UTC(), Host: r.res.Report.Host,
		HostID: repo.MachineID(), MBKVersion: r.e.Version, Timezone: p.Location.String(), Kind: r.opts.kind, Restoring: r.opts.restoring}
	r.info = map[string]*strings.Builder{}
	defer r.closePool()
	if err := r.inMaintenance(ctx, func() error { return r.produceAll(ctx, stages) }); err != nil {
		return err
	}
	if err := r.finishPool(); err != nil {
		return err
	}
	if err := r.writeInfoFiles(); err != nil {
		return err
	}
	sums, err := r.sums(ctx, stages)
	if err != nil {
		return err
	}
	if err := repo.WriteSums(r.staging, sums); err != nil {
		return fmt.Errorf("write %s: %w", repo.SumsFile, err)
	}
	if !r.opts.safetyCopy() {
		r.alarms(stages)
	}
	r.man.Status = repo.StatusComplete
	r.man.Finished = time.Now().UTC()
	if err := repo.WriteManifest(r.staging, r.man); err != nil {
		return fmt.Errorf("write %s: %w", repo.ManifestFile, err)
	}
	// Signed before the rename: a committed set always carries its
	// signature.
	if r.key != nil {
		if err := repo.Sign(r.staging, r.name, *r.key); err != nil {
			return fmt.Errorf("sign set %s: %w", r.name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run stopped before commit: %w", context.Cause(ctx))
	}
	if err := repo.Commit(r.staging, r.final); err != nil {
		return fmt.Errorf("commit set %s: %w", r.name, err)
	}
	r.res.Committed = true
	r.res.Later = append(r.res.Later, r.afterCommit...)
	r.res.SetDir = r.final
	r.res.Report.Committed = true
	r.res.Report.Dir = r.final
	r.log.Info("set committed", "set", r.name, "dir", r.final)
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// cleanLeftovers removes what killed or failed runs left. Holding the lock
// proves no run is still writing them.
func (r *run) cleanLeftovers() {
	left, err := repo.Leftovers(r.p.Root)
	if err != nil {
		r.log.Warn("cannot list leftovers", "error", err)
		return
	}
	for _, l := range left {
		if err := os.RemoveAll(l.Dir); err != nil {
			r.warn(fmt.Sprintf("cannot remove leftover %s: %v", l.Dir, err))
			continue
		}
		r.warn(fmt.Sprintf("removed %s, left by an interrupted run (it was never a complete set)", l.Name))
	}
}

func (r *run) warn(msg string) {
	r.log.Warn(msg)
	r.mu.Lock()
	r.res.Report.Warnings = append(r.res.Report.Warnings, r.e.Redact.String(msg))
	r.mu.Unlock()
}

// stage runs one stage with its timeout and records it.
func (r *run) stage(ctx context.Context, s *Stage, fn func(context.Context) error) error {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	t0 := time.Now()
	r.log.Info("stage started", "stage", s.ID(), "plugin", s.Info.Name, "version", s.Info.Version)
	client, _, err := r.e.Host.Get(ctx, s.Plugin)
	if err == nil {
		s.Client = client
		err = fn(ctx)
	}
	for plugin, last := range r.lastUse {
		if last == s {
			defer r.e.Host.Kill(plugin)
		}
	}
	// gRPC keeps its own timer for the call's deadline and may report it a
	// moment before ctx's timer fires: a deadline that has passed counts.
	deadline, hasDeadline := ctx.Deadline()
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) || hasDeadline && !time.Now().Before(deadline)
	if err != nil && (ctx.Err() != nil || timedOut) {
		// A plugin past its deadline may not stop by itself: stop it, and
		// with it the processes it started.
		r.e.Host.Kill(s.Plugin)
		switch cause := context.Cause(ctx); {
		case timedOut:
			err = fmt.Errorf("timed out after %s: %w", time.Since(t0).Round(time.Second), err)
		case cause != nil && cause != context.Canceled:
			// Say why (a signal, the daemon's grace period), not just
			// "context canceled".
			err = fmt.Errorf("%w (cancelled: %v)", err, cause)
		}
	}
	d := time.Since(t0)
	rep := sdk.StageReport{Kind: s.Kind, Plugin: s.Plugin, Name: s.Name, Status: "ok", Duration: d}
	ms := repo.Stage{Kind: s.Kind, Plugin: s.Plugin, Name: s.Name, PluginVersion: s.Info.Version,
		PluginPath: r.e.Host.Path(s.Plugin), Status: "ok", DurationMS: d.Milliseconds()}
	if err != nil {
		err = fmt.Errorf("%s stage (plugin %s): %w", s.ID(), s.Plugin, err)
		rep.Status, rep.Error = "failed", r.e.Redact.String(err.Error())
		ms.Status, ms.Error = "failed", rep.Error
		r.log.Error("stage failed", "stage", s.ID(), "duration", d.Round(time.Millisecond), "error", rep.Error)
	} else {
		r.log.Info("stage finished", "stage", s.ID(), "duration", d.Round(time.Millisecond))
	}
	r.mu.Lock()
	r.res.Report.Stages = append(r.res.Report.Stages, rep)
	if r.man != nil && (s.Kind == sdk.KindDump || s.Kind == sdk.KindArchive || s.Kind == sdk.KindChecksum) {
		r.man.Stages = append(r.man.Stages, ms)
	}
	r.mu.Unlock()
	return err
}

func stagesOf(stages []*Stage, kind string) []*Stage {
	var out []*Stage
	for _, s := range stages {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// tailSink keeps the last lines logged, for the failure e-mail.
type tailSink struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func (t *tailSink) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		t.lines = append(t.lines, l)
	}
	if over := len(t.lines) - t.max; over > 0 {
		t.lines = append([]string(nil), t.lines[over:]...)
	}
	return len(p), nil
}

func (t *tailSink) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

// checkRoot refuses a root others can write to (anyone could replace a set
// or plant one) and warns when it is a symlink (the sets live elsewhere).
func (r *run) checkRoot() error {
	root := r.p.Root
	if lst, err := os.Lstat(root); err == nil && lst.Mode()&os.ModeSymlink != 0 {
		target, _ := filepath.EvalSymlinks(root)
		r.warn(fmt.Sprintf("root %s is a symlink to %s: the sets are stored there", root, target))
	}
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("root %s: %w", root, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("root %s is not a directory", root)
	}
	if st.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("root %s is writable by every user (mode %04o): anyone could replace or plant a set; run chmod 0700 %s", root, st.Mode().Perm(), root)
	}
	return nil
}

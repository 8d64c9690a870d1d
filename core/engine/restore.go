package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/maintenance"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/stream"
)

// RestoreStep is one artifact of a set and the stage that will restore it.
type RestoreStep struct {
	Stage    *Stage
	Artifact repo.Artifact
}

// Parts of a set a restore can be limited to.
const (
	OnlyDB    = "db"
	OnlyFiles = "files"
)

// PlanRestore matches a set's artifacts with the pipeline's stages (by kind
// and name), in the order they were made: database first, then files.
func PlanRestore(stages []*Stage, m *repo.Manifest, only string) ([]RestoreStep, error) {
	var steps []RestoreStep
	for _, a := range m.Artifacts {
		if (only == OnlyDB && a.Stage != sdk.KindDump) || (only == OnlyFiles && a.Stage != sdk.KindArchive) {
			continue
		}
		var match *Stage
		for _, s := range stages {
			if s.Kind == a.Stage && s.Name == a.Name {
				match = s
			}
		}
		if match == nil {
			return nil, fmt.Errorf("%s was made by stage %s %q, which the pipeline no longer has", a.File, a.Stage, a.Name)
		}
		if match.Plugin != a.Plugin {
			return nil, fmt.Errorf("%s was made by plugin %q, but stage %s now uses plugin %q", a.File, a.Plugin, match.ID(), match.Plugin)
		}
		steps = append(steps, RestoreStep{Stage: match, Artifact: a})
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("set %s holds nothing to restore", m.Set)
	}
	return steps, nil
}

// RestoreJob is one restore, as mbk restore (or the menu) asks for it.
type RestoreJob struct {
	Pipeline *config.Pipeline
	// Stages are the pipeline's prepared stages: a safety copy runs its
	// dump, archive and checksum stages.
	Stages []*Stage
	Set    string // the set restored
	Dir    string // where its files are: the set, or a download of it
	Steps  []RestoreStep
	// Options are each stage's restore options (BindRestore).
	Options map[*Stage]BoundOptions
	// NoSafetyCopy restores in place without first copying the site:
	// nothing then keeps what the restore overwrites.
	NoSafetyCopy bool
	// Args are the command line's flags that shape the restore (--clean,
	// --only, targets, --restore-opt), repeated in the advice a failure
	// gives: putting the site back or trying again needs the same.
	Args []string
	// Clone, when set, restores another pipeline's set into this site and
	// moves it to this site's URL.
	Clone *Clone
}

// RestoreError is a restore that did not complete, with what it leaves
// and how to get out of it.
type RestoreError struct {
	Err    error
	Advice string // what the restore left, and the commands that end it
}

func (e *RestoreError) Error() string {
	if e.Advice == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + "\n" + e.Advice
}

func (e *RestoreError) Unwrap() error { return e.Err }

// Restore puts a set back, so that a failure never leaves the school worse
// off: under the root's lock (no backup runs meanwhile), with the site in
// maintenance mode from before the first byte to the end when the pipeline
// has a maintenance block, it first takes a safety copy of what an in-place
// restore will overwrite (a set of kind pre-restore, through the same
// stages), then streams each artifact into its stage's plugin. A restore
// that fails or is killed leaves the site in maintenance mode and a restore
// marker that stops backups until a restore completes or is abandoned.
// Once everything is restored, and before maintenance mode goes off, Moodle's
// caches are purged and its sessions ended in the app container (for a clone,
// the old URL is first replaced and e-mail switched off). It returns the
// safety copy's set name and those steps.
func (e *Engine) Restore(ctx context.Context, job RestoreJob) (RestoreOutcome, error) {
	safety, site, err := e.restoreSite(ctx, job)
	return RestoreOutcome{Safety: safety, Site: site}, err
}

func (e *Engine) restoreSite(ctx context.Context, job RestoreJob) (string, []SiteStep, error) {
	p := job.Pipeline
	if err := os.MkdirAll(p.Root, repo.DirMode); err != nil {
		return "", nil, err
	}
	lock, err := repo.Acquire(p.Root)
	if err != nil {
		return "", nil, err
	}
	defer lock.Release()
	if !inPlace(job) {
		// Every part goes to a target of its own (another database, another
		// volume or directory): the site is not touched, so it is neither
		// copied nor closed, and a failure leaves backups running.
		e.Log.Info("the restore goes to new targets: the site is not touched, so no safety copy or maintenance mode")
		if job.Clone != nil {
			return "", nil, errors.New("a clone restores over this pipeline's own site: it takes no --target-* options")
		}
		if err := e.restore(ctx, job.Dir, job.Steps, job.Options, p.Parallel, nil); err != nil {
			return "", nil, &RestoreError{Err: err, Advice: "The site itself was not touched: the restore went to other targets, which may hold part of the set."}
		}
		return "", nil, nil
	}
	if job.Clone != nil && p.Maintenance == nil {
		return "", nil, fmt.Errorf("a clone into pipeline %q needs its maintenance block: the app container where Moodle's replace.php and cfg.php run", p.Name)
	}
	prev, err := repo.ReadRestoreMarker(p.Root)
	if err != nil {
		return "", nil, err
	}

	copyFirst := prev == nil && !job.NoSafetyCopy
	if copyFirst {
		// Before anything, maintenance mode included: a full disk must
		// not cost the site its users either.
		if err := checkSafetySpace(p, e.now()); err != nil {
			return "", nil, &RestoreError{Err: err, Advice: "Nothing was restored: the site is as it was."}
		}
	}

	var window *maintenance.Window
	var site *maintenance.Site
	if p.Maintenance != nil {
		if site, err = maintenance.Open(ctx, p.Maintenance, e.Log); err != nil {
			return "", nil, err
		}
		defer site.Close()
		if prev == nil {
			// A backup run killed inside its window: take the site out
			// of maintenance first, as the next run would.
			if msg, err := maintenance.Recover(ctx, site, p.Root); err != nil {
				return "", nil, err
			} else if msg != "" {
				e.Log.Warn(msg)
			}
		}
		if window, err = maintenance.Hold(ctx, site, p.Root); err != nil {
			return "", nil, err
		}
	}
	// Nothing of the site has changed yet: a failure here ends the window.
	untouched := func(err error) (string, []SiteStep, error) {
		if window != nil && prev == nil {
			if _, werr := window.End(); werr != nil {
				err = errors.Join(err, werr)
			}
		} else if window != nil {
			window.Leave(context.WithoutCancel(ctx))
		}
		return "", nil, &RestoreError{Err: err, Advice: "Nothing was restored: the site is as it was."}
	}

	safety := ""
	switch {
	case prev != nil:
		// The site holds part of a set already: a copy of it would be
		// worth nothing, and the copy the first attempt took stays the
		// way back.
		safety = prev.Safety
		e.Log.Warn("finishing an unfinished restore: no new safety copy", "set", prev.Set, "safety copy", prev.Safety)
	case job.NoSafetyCopy:
		e.Log.Warn("restoring in place WITHOUT a safety copy (--no-safety-copy): nothing keeps the site as it is now")
	default:
		res := e.run(ctx, p, safetyStages(job), runOpts{kind: repo.KindPreRestore, restoring: job.Set})
		if !res.Committed {
			return untouched(fmt.Errorf("the safety copy of the site failed, so the restore did not start: %w", res.Err))
		}
		safety = res.Report.Set
		e.Log.Info("safety copy committed: the site as it was is kept", "set", safety)
	}

	host, _ := os.Hostname()
	marker := repo.RestoreMarker{Pipeline: p.Name, Set: job.Set, Safety: safety, Args: job.Args, Started: time.Now().UTC(), Host: host, PID: os.Getpid()}
	if err := repo.WriteRestoreMarker(p.Root, marker); err != nil {
		return untouched(err)
	}
	var filesDone func()
	if window != nil {
		filesDone = func() { window.Reassert(ctx) }
	}
	if err := e.restore(ctx, job.Dir, job.Steps, job.Options, p.Parallel, filesDone); err != nil {
		marker.Error = e.Redact.String(err.Error())
		if werr := repo.WriteRestoreMarker(p.Root, marker); werr != nil {
			e.Log.Error("cannot record the failed restore", "error", werr)
		}
		if window != nil {
			window.Leave(context.WithoutCancel(ctx))
		}
		return safety, nil, &RestoreError{Err: err, Advice: failedAdvice(p, marker, window != nil)}
	}
	if err := repo.ClearRestoreMarker(p.Root); err != nil {
		return safety, nil, err
	}
	var steps []SiteStep
	if site != nil {
		steps = e.afterRestore(ctx, site, job.Clone)
	} else {
		e.Log.Warn("no maintenance block, so Moodle's caches were not purged nor its sessions ended: run admin/cli/purge_caches.php and admin/cli/kill_all_sessions.php in the app container")
	}
	if window != nil {
		held, err := window.End()
		if err != nil {
			return safety, steps, err
		}
		if window.Ours() {
			e.Log.Info("the site was in maintenance mode during the restore", "held", held.Round(100*time.Millisecond))
		}
	}
	return safety, steps, nil
}

// inPlace reports whether a step restores over what the pipeline backs up:
// none of the options its plugin declares as answering a --target-* flag
// is set.
func inPlace(job RestoreJob) bool {
	for _, st := range job.Steps {
		redirected := false
		for name := range job.Options[st.Stage].Set {
			if a, ok := optionNamed(st.Stage, name); ok && strings.HasPrefix(a.Flag, "target-") {
				redirected = true
			}
		}
		if !redirected {
			return true
		}
	}
	return false
}

func optionNamed(s *Stage, name string) (spec.Attribute, bool) {
	for _, o := range s.Schema.RestoreOptions {
		if o.Name == name {
			return o, true
		}
	}
	return spec.Attribute{}, false
}

// safetyStages are what a safety copy runs: the dump and archive stages the
// restore overwrites, and the checksum stages.
func safetyStages(job RestoreJob) []*Stage {
	var out []*Stage
	for _, s := range job.Stages {
		restored := slices.ContainsFunc(job.Steps, func(st RestoreStep) bool { return st.Stage == s })
		if restored || s.Kind == spec.KindChecksum {
			out = append(out, s)
		}
	}
	return out
}

// checkSafetySpace refuses a safety copy the root's disk cannot hold. The
// newest complete backup (repo.Latest) is the estimate of what the site
// holds now.
func checkSafetySpace(p *config.Pipeline, now time.Time) error {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return err
	}
	var need int64
	if latest, ok := repo.Latest(sets, now); ok {
		for _, a := range latest.Manifest.Artifacts {
			need += a.Size
		}
	}
	need += need / 5 // the site may have grown since
	var st unix.Statfs_t
	if err := unix.Statfs(p.Root, &st); err != nil {
		return fmt.Errorf("free space in %s: %w", p.Root, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free < need {
		return fmt.Errorf("the safety copy of the site needs about %s in %s (the newest set's size and a fifth more), but only %s is free: %s missing. Free some space (mbk prune), or restore without a safety copy (--no-safety-copy: nothing will keep the site as it is now)",
			humanize.IBytes(uint64(need)), p.Root, humanize.IBytes(uint64(free)), humanize.IBytes(uint64(need-free)))
	}
	return nil
}

// failedAdvice says what a failed restore left and the commands that end it.
func failedAdvice(p *config.Pipeline, m repo.RestoreMarker, maint bool) string {
	var b strings.Builder
	b.WriteString("The restore did not finish: the site may hold part of set " + m.Set + ".")
	if maint {
		b.WriteString(" It stays in maintenance mode, closed to its users.")
	}
	b.WriteString(" Backups are refused until this is settled.")
	if m.Safety != "" {
		fmt.Fprintf(&b, "\n  To put the site back as it was before:  %s", RestoreCommand(p, append([]string{m.Safety, "--yes"}, m.Args...)...))
	}
	fmt.Fprintf(&b, "\n  To try the restore again:                %s", RestoreCommand(p, append([]string{m.Set}, m.Args...)...))
	fmt.Fprintf(&b, "\n  To accept the site as it is now:         %s", RestoreCommand(p, "--abandon"))
	return b.String()
}

// Abandon ends an unfinished restore without restoring: the administrator
// says the site is whole. The marker goes, and maintenance mode that mbk
// switched on is switched off. It returns the marker it removed (nil when
// no restore was unfinished).
func (e *Engine) Abandon(ctx context.Context, p *config.Pipeline) (*repo.RestoreMarker, error) {
	lock, err := repo.Acquire(p.Root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	m, err := repo.ReadRestoreMarker(p.Root)
	if err != nil || m == nil {
		return nil, err
	}
	if p.Maintenance != nil {
		site, err := maintenance.Open(ctx, p.Maintenance, e.Log)
		if err != nil {
			return nil, err
		}
		defer site.Close()
		if msg, err := maintenance.Recover(ctx, site, p.Root); err != nil {
			return nil, err
		} else if msg != "" {
			e.Log.Info(msg)
		}
	}
	return m, repo.ClearRestoreMarker(p.Root)
}

// restore runs the steps. With parallel, the database and the files are
// restored side by side (loading the dump keeps one core busy in the
// server; unpacking the files uses the other). A failure on one side does
// not interrupt the other: that side is then complete, and the error says
// which part must be restored again. filesDone, when not nil, is called
// after each archive step that succeeded: the site's maintenance flag went
// with the files it replaced.
func (e *Engine) restore(ctx context.Context, dir string, steps []RestoreStep, options map[*Stage]BoundOptions, parallel bool, filesDone func()) error {
	// The plugins Prepare started that no step uses (checksum, notify,
	// store) are not needed: stop them now rather than at the end.
	for _, p := range e.Host.Running() {
		if !slices.Contains(lanePlugins(steps), p) {
			e.Host.Kill(p)
		}
	}
	var lanes [][]RestoreStep
	if parallel {
		byKind := map[string]int{}
		for _, st := range steps {
			i, ok := byKind[st.Stage.Kind]
			if !ok {
				i = len(lanes)
				byKind[st.Stage.Kind] = i
				lanes = append(lanes, nil)
			}
			lanes[i] = append(lanes[i], st)
		}
	} else {
		lanes = [][]RestoreStep{steps}
	}
	// As in a run: each plugin is stopped after its last step. A plugin
	// both lanes use is stopped when both are done.
	uses := map[string]int{}
	for _, lane := range lanes {
		for _, p := range lanePlugins(lane) {
			uses[p]++
		}
	}
	var mu sync.Mutex
	runLane := func(lane []RestoreStep) error {
		last := map[string]int{}
		for i, st := range lane {
			last[st.Stage.Plugin] = i
		}
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range lanePlugins(lane) {
				if uses[p]--; uses[p] == 0 {
					e.Host.Kill(p)
				}
			}
		}()
		for _, st := range lane {
			client, _, err := e.Host.Get(ctx, st.Stage.Plugin)
			if err != nil {
				return err
			}
			st.Stage.Client = client
			if err := e.restoreStep(ctx, dir, st, options); err != nil {
				return err
			}
			if st.Stage.Kind == spec.KindArchive && filesDone != nil {
				filesDone()
			}
		}
		return nil
	}
	return errors.Join(sideBySide(len(lanes), func(i int) error { return runLane(lanes[i]) })...)
}

// lanePlugins lists the plugins a lane uses, once each.
func lanePlugins(lane []RestoreStep) []string {
	var out []string
	for _, st := range lane {
		if !slices.Contains(out, st.Stage.Plugin) {
			out = append(out, st.Stage.Plugin)
		}
	}
	return out
}

func (e *Engine) restoreStep(ctx context.Context, dir string, st RestoreStep, options map[*Stage]BoundOptions) error {
	a := st.Artifact
	log := e.Log.With("file", a.File, "stage", st.Stage.ID())
	t0 := time.Now()
	log.Info("restore started")
	f, err := os.Open(filepath.Join(dir, a.File))
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := stream.NewReader(f, a.Compression, a.Encryption == "age", e.Identities)
	if err != nil {
		return fmt.Errorf("%s: %w", a.File, err)
	}
	defer zr.Close()
	tr := e.track("restore "+a.File, a.RawSize)
	capped := &rawCap{r: zr, size: a.RawSize, file: a.File}
	var in io.Reader = trackReader{capped, tr}
	var xr *pool.Expanded
	if a.Pool != nil {
		// The pooled files' contents go back into the stream here: the
		// plugin restores an ordinary archive.
		p, err := poolOf(dir)
		if err != nil {
			tr.Done()
			return fmt.Errorf("restore %s: %w", a.File, err)
		}
		xr = p.ExpandReader(ctx, in, e.Identities)
		defer xr.Close()
		in = xr
	}
	reply, err := st.Stage.Client.Restore(ctx, st.Stage.Wire, a.ArtifactID, options[st.Stage].Wire, a.Details, in)
	tr.Done()
	if capped.err != nil {
		// The plugin's own error is only the consequence.
		return fmt.Errorf("restore %s with %s: %w", a.File, st.Stage.ID(), capped.err)
	}
	if xr != nil && xr.Err() != nil {
		// A missing or damaged blob: the plugin saw the stream cut short.
		return fmt.Errorf("restore %s with %s: %w", a.File, st.Stage.ID(), xr.Err())
	}
	if err != nil {
		return fmt.Errorf("restore %s with %s: %w", a.File, st.Stage.ID(), err)
	}
	want, of := a.RawSize, "the manifest records"
	if xr != nil {
		if capped.n != a.RawSize {
			return fmt.Errorf("restore %s: %d bytes read, the manifest records %d", a.File, capped.n, a.RawSize)
		}
		want, of = xr.N(), "the expanded archive had"
	}
	if reply.Bytes != want {
		return fmt.Errorf("restore %s: %d bytes restored, %s %d", a.File, reply.Bytes, of, want)
	}
	log.Info("restore finished", "duration", time.Since(t0).Round(time.Millisecond), "result", e.Redact.String(reply.Summary))
	return nil
}

// rawCap hands a plugin at most the raw size the manifest records: an
// artifact that decompresses past it (a decompression bomb, a file swapped
// under a rewritten manifest) is cut off there and the restore fails,
// instead of filling the target's disk.
type rawCap struct {
	r    io.Reader
	size int64 // what the manifest records
	n    int64 // handed on so far
	file string
	err  error
}

func (c *rawCap) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.n >= c.size {
		// One byte more tells the end from an excess.
		var one [1]byte
		if k, _ := io.ReadFull(c.r, one[:]); k > 0 {
			c.err = fmt.Errorf("%s decompresses past the %d bytes its manifest records: cut off there", c.file, c.size)
			return 0, c.err
		}
		return 0, io.EOF
	}
	if left := c.size - c.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF && c.n >= c.size {
		err = nil // ended where it should: the next Read confirms
	}
	return n, err
}

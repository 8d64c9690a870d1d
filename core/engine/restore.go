package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/maintenance"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
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

// Restore puts a set back: under the root's lock (no backup runs meanwhile),
// with the site in maintenance mode when the pipeline asks for it, it streams
// each artifact, decompressed, into its stage's plugin. options holds each
// stage's restore options (BindRestore).
func (e *Engine) Restore(ctx context.Context, p *config.Pipeline, dir string, steps []RestoreStep, options map[*Stage]BoundOptions) error {
	lock, err := repo.Acquire(p.Root)
	if err != nil {
		return err
	}
	defer lock.Release()
	if p.Maintenance == nil {
		return e.restore(ctx, dir, steps, options, p.Parallel)
	}
	site, err := maintenance.Open(ctx, p.Maintenance, e.Log)
	if err != nil {
		return err
	}
	defer site.Close()
	if msg, err := maintenance.Recover(ctx, site, p.Root); err != nil {
		return err
	} else if msg != "" {
		e.Log.Warn(msg)
	}
	w, err := maintenance.Begin(ctx, site, p.Root)
	if err != nil {
		return err
	}
	rerr := e.restore(ctx, dir, steps, options, p.Parallel)
	held, werr := w.End()
	if w.Ours() {
		e.Log.Info("the site was in maintenance mode during the restore", "held", held.Round(100*time.Millisecond))
	}
	return errors.Join(rerr, werr)
}

// restore runs the steps. With parallel, the database and the files are
// restored side by side (loading the dump keeps one core busy in the
// server; unpacking the files uses the other). A failure on one side does
// not interrupt the other: that side is then complete, and the error says
// which part must be restored again.
func (e *Engine) restore(ctx context.Context, dir string, steps []RestoreStep, options map[*Stage]BoundOptions, parallel bool) error {
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
	reply, err := st.Stage.Client.Restore(ctx, st.Stage.Wire, a.ArtifactID, options[st.Stage].Wire, a.Details, trackReader{capped, tr})
	tr.Done()
	if capped.err != nil {
		// The plugin's own error is only the consequence.
		return fmt.Errorf("restore %s with %s: %w", a.File, st.Stage.ID(), capped.err)
	}
	if err != nil {
		return fmt.Errorf("restore %s with %s: %w", a.File, st.Stage.ID(), err)
	}
	if reply.Bytes != a.RawSize {
		return fmt.Errorf("restore %s: %d bytes restored, the manifest records %d", a.File, reply.Bytes, a.RawSize)
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

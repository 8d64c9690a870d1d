package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/dustin/go-humanize"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/checksum"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/stream"
)

// produceAll runs the dump stages and the archive stages. With the
// pipeline's parallel (the default) the two kinds run side by side, each
// kind's stages in order: a dump is bound by the database server's one
// thread and leaves a core for compressing the files. The first failure
// stops the other side too, since nothing will be committed. The manifest
// and the report list stages and artifacts in the pipeline's order either
// way.
func (r *run) produceAll(ctx context.Context, stages []*Stage) error {
	lanes := [][]*Stage{stagesOf(stages, sdk.KindDump), stagesOf(stages, sdk.KindArchive)}
	runLane := func(ctx context.Context, lane []*Stage) error {
		for _, s := range lane {
			if err := r.stage(ctx, s, func(ctx context.Context) error { return r.produce(ctx, s) }); err != nil {
				return err
			}
		}
		return nil
	}
	if !r.p.Parallel || len(lanes[0]) == 0 || len(lanes[1]) == 0 {
		for _, lane := range lanes {
			if err := runLane(ctx, lane); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		first error
		once  sync.Once
	)
	sideBySide(len(lanes), func(i int) error {
		err := runLane(ctx, lanes[i])
		if err != nil {
			once.Do(func() {
				first = err
				cancel(fmt.Errorf("the %s stages failed", lanes[i][0].Kind))
			})
		}
		return err
	})
	r.inPipelineOrder(stages)
	return first
}

// sideBySide runs fn for lanes 0..n-1 at once and returns their errors
// when all have ended.
func sideBySide(n int, fn func(lane int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errs
}

// inPipelineOrder sorts what the lanes recorded by their stages' places
// in the pipeline.
func (r *run) inPipelineOrder(stages []*Stage) {
	pos := map[string]int{}
	for i, s := range stages {
		pos[s.Kind+"\x00"+s.Name] = i
	}
	at := func(kind, name string) int { return pos[kind+"\x00"+name] }
	slices.SortStableFunc(r.man.Stages, func(a, b repo.Stage) int { return at(a.Kind, a.Name) - at(b.Kind, b.Name) })
	slices.SortStableFunc(r.man.Artifacts, func(a, b repo.Artifact) int { return at(a.Stage, a.Name) - at(b.Stage, b.Name) })
	slices.SortStableFunc(r.res.Report.Stages, func(a, b sdk.StageReport) int { return at(a.Kind, a.Name) - at(b.Kind, b.Name) })
	slices.SortStableFunc(r.res.Report.Artifacts, func(a, b sdk.ArtifactReport) int {
		return at(a.Stage, r.stageName(a.File)) - at(b.Stage, r.stageName(b.File))
	})
}

// stageName is the name of the stage that made an artifact file.
func (r *run) stageName(file string) string {
	for _, a := range r.man.Artifacts {
		if a.File == file {
			return a.Name
		}
	}
	return ""
}

// produce runs one dump or archive stage: each artifact the plugin plans is
// streamed through the side channel into compress-hash-write, in one pass.
func (r *run) produce(ctx context.Context, s *Stage) error {
	arts, err := s.Client.Plan(ctx, s.Wire)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if len(arts) == 0 {
		return fmt.Errorf("the plugin planned no artifact")
	}
	for _, a := range arts {
		if err := r.artifact(ctx, s, a); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) artifact(ctx context.Context, s *Stage, a sdk.Artifact) error {
	file := fmt.Sprintf("%s_%s.%s%s", a.Name, r.name, a.Format, stream.Ext(s.Compression, len(r.p.Recipients) > 0))
	if strings.ContainsAny(file, "/\\") || strings.HasPrefix(file, ".") {
		return fmt.Errorf("artifact name %q is not a plain file name", a.Name)
	}
	r.mu.Lock()
	other, taken := r.files[file]
	if !taken {
		if r.files == nil {
			r.files = map[string]string{}
		}
		r.files[file] = s.ID()
	}
	r.mu.Unlock()
	if taken {
		return fmt.Errorf("two artifacts would be named %s (stage %s made one already): give one stage another name", file, other)
	}
	path := filepath.Join(r.staging, file)
	level := s.CompressionLevel
	if level == 0 {
		level = stream.DefaultLevel(s.Compression, a.Format)
	}
	sink, err := stream.NewSink(path, s.Compression, level, r.p.Recipients)
	if err != nil {
		return fmt.Errorf("create %s: %w", file, err)
	}
	t0 := time.Now()
	r.log.Info("writing artifact", "file", file, "compression", s.Compression, "level", level)
	tr := r.e.track(fmt.Sprintf("%s %s", s.Kind, file), -1)
	var pb *poolBackup
	var backend pluginhost.PoolBackend
	cache := ""
	if a.Pool {
		pr, err := r.poolFor()
		if err != nil {
			sink.Abort()
			tr.Done()
			return fmt.Errorf("artifact %s: %w", a.Name, err)
		}
		pb = &poolBackup{pr: pr, codec: pool.Codec{Compression: s.Compression, Level: s.CompressionLevel, Recipients: r.p.Recipients},
			log: r.log, file: file}
		backend = pb
		cache = r.cacheDir(a.ID)
		// An unchanged night's listing streams through a small live heap
		// here too (the plugin raises its own).
		defer sdk.RaiseGCFloor(sdk.WalkGCFloor)()
	}
	reply, err := s.Client.BackupPooled(ctx, s.Wire, a.ID, r.name, trackWriter{sink, tr}, backend, cache)
	tr.Done()
	if err != nil {
		sink.Abort()
		return fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	res, err := sink.Close()
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", file, err)
	}
	if res.RawSize != reply.Bytes {
		return fmt.Errorf("artifact %s: the plugin sent %d bytes, %d were stored", a.Name, reply.Bytes, res.RawSize)
	}
	d := time.Since(t0)
	var use *repo.PoolUse
	if pb != nil {
		u := pb.use
		use = &u
		reply.InfoText = strings.TrimRight(reply.InfoText, "\n") + "\n" + pb.summary() + "\n"
		r.log.Info("pool used", "file", file, "blobs", u.Blobs, "new_blobs", u.NewBlobs,
			"new_bytes", humanize.IBytes(uint64(u.NewBytes)), "stored", humanize.IBytes(uint64(u.StoredBytes)))
		if u.Mismatched > 0 {
			r.mu.Lock()
			r.afterCommit = append(r.afterCommit, fmt.Errorf("%s: %d %w (Moodle-level corruption in the site; stored under their real hashes, named in backup.log)", file, u.Mismatched, ErrContentMismatch))
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Info("artifact written", "file", file, "raw", humanize.IBytes(uint64(res.RawSize)), "stored", humanize.IBytes(uint64(res.Size)),
		"duration", d.Round(time.Millisecond), "rate", rate(res.RawSize, d), "sha256", res.SHA256)
	r.man.Artifacts = append(r.man.Artifacts, repo.Artifact{
		Stage: s.Kind, Plugin: s.Plugin, Name: s.Name, ArtifactID: a.ID, File: file, Format: a.Format,
		Compression: s.Compression, Encryption: encryption(r.p.Recipients), Size: res.Size, SHA256: res.SHA256, RawSize: res.RawSize,
		RawXXH64: res.RawXXH64, DurationMS: d.Milliseconds(), Details: reply.Details, Pool: use,
	})
	r.res.Report.Artifacts = append(r.res.Report.Artifacts, sdk.ArtifactReport{
		Stage: s.Kind, Plugin: s.Plugin, File: file, Size: res.Size, Raw: res.RawSize, SHA256: res.SHA256})
	if reply.InfoText != "" {
		name := reply.InfoFile
		if name == "" || !infoFileName.MatchString(name) {
			name = strings.ToUpper(s.Plugin) + "_INFO.txt"
		}
		b, ok := r.info[name]
		if !ok {
			b = &strings.Builder{}
			r.info[name] = b
			r.infoOrd = append(r.infoOrd, name)
		}
		fmt.Fprintf(b, "== %s (%s %q) ==\n%s\n", file, s.Kind, s.Name, strings.TrimRight(r.e.Redact.String(reply.InfoText), "\n")+"\n")
	}
	return nil
}

func (r *run) writeInfoFiles() error {
	for _, name := range r.infoOrd {
		if err := repo.WriteFileSync(filepath.Join(r.staging, name), []byte(r.info[name].String())); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// sums builds SHA256SUMS from the hashes taken while streaming, and has each
// checksum stage re-read the files from disk: a mismatch means what landed is
// not what was sent, and the set is not committed.
func (r *run) sums(ctx context.Context, stages []*Stage) ([]repo.Sum, error) {
	var sums []repo.Sum
	want := map[string]string{}
	var files []string
	for _, a := range r.man.Artifacts {
		sums = append(sums, repo.Sum{File: a.File, Hex: a.SHA256})
		want[a.File] = a.SHA256
		files = append(files, a.File)
	}
	names := append([]string(nil), r.infoOrd...)
	if r.pool != nil {
		names = append(names, pool.RefsFile)
	}
	sort.Strings(names)
	for _, name := range names {
		hex, _, err := checksum.FileSHA256(ctx, filepath.Join(r.staging, name))
		if err != nil {
			return nil, err
		}
		sums = append(sums, repo.Sum{File: name, Hex: hex})
		want[name] = hex
		files = append(files, name)
	}
	for _, s := range stagesOf(stages, sdk.KindChecksum) {
		err := r.stage(ctx, s, func(ctx context.Context) error {
			got, err := s.Client.Sum(ctx, s.Wire, r.staging, files)
			if err != nil {
				return err
			}
			seen := map[string]bool{}
			for _, g := range got {
				if g.Algorithm != "sha256" {
					continue
				}
				if w, ok := want[g.File]; !ok || w != g.Hex {
					return fmt.Errorf("%s on disk has sha256 %s, but %s was written: the disk or filesystem corrupted it", g.File, g.Hex, w)
				}
				seen[g.File] = true
			}
			for _, f := range files {
				if !seen[f] {
					return fmt.Errorf("the plugin returned no sha256 for %s", f)
				}
			}
			r.log.Info("checksums verified on disk", "files", len(files))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// openLog starts backup.log in the staging directory. It moves with the
// directory on commit; the open file stays valid across the rename.
func (r *run) openLog() error {
	f, err := os.OpenFile(filepath.Join(r.staging, repo.LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, repo.FileMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", repo.LogFile, err)
	}
	r.logFile = f
	r.tail = &tailSink{max: 40}
	r.sink = hclog.NewSinkAdapter(&hclog.LoggerOptions{
		Level:      hclog.Debug,
		Output:     r.e.Redact.Writer(io.MultiWriter(f, r.tail)),
		Color:      hclog.ColorOff,
		TimeFormat: "2006-01-02 15:04:05.000 Z07:00",
	})
	r.e.Log.RegisterSink(r.sink)
	return nil
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanize.IBytes(uint64(float64(n)/d.Seconds())) + "/s"
}

func encryption(recipients []age.Recipient) string {
	if len(recipients) > 0 {
		return "age"
	}
	return ""
}

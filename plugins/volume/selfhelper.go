package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mbk-backup/mbk/core/docker"
)

// restoreEngine restores into a volume through the Engine's archive API,
// into a created, never started, helper container mounting it at /data.
//
// An empty volume is written directly. A volume holding files (clean=true)
// is written into a staging directory inside it, as a host directory is
// (stage.go); but the archive API can neither rename nor delete, so the
// swap (or, on failure, the removal of the staging directory) runs in a
// second helper that is started: a container from an image imported for
// the occasion that holds nothing but this plugin's own binary (and, when
// it is linked dynamically, its loader and libraries, taken from this
// host), run as `<binary> mbk-volume-stage-helper swap /data <staging> 0|1`,
// then removed with its image. Nothing is pulled, and a live site may keep
// the volume mounted (the Engine path used to remove and re-create the
// volume, which destroyed the old files before the new ones were written).
// It needs an Engine of this machine's OS and architecture; another Engine
// refuses clean=true on a non-empty volume before anything changes.
func (p *plugin) restoreEngine(ctx context.Context, e *engine, vol string, o restoreOpts, ts *tarStream, first *tar.Header, commit func() error) (*stats, error) {
	h, remove, err := e.createHelper(ctx, vol, false)
	if err != nil {
		return nil, err
	}
	defer func() { remove() }()
	found, err := e.firstEntry(ctx, h.id, fmt.Sprintf("volume %q", vol), helperMount)
	if err != nil {
		return nil, err
	}
	pol := newPolicy(o.keepSpecial, p.log)
	if found == "" {
		st, err := p.copyInto(ctx, e, h.id, helperMount, ts, first, pol, false)
		if err != nil {
			return nil, err
		}
		return st, commit()
	}
	if !o.clean {
		return nil, fmt.Errorf("the volume is not empty (it holds %q): set clean=true to replace its contents", found)
	}
	run, cleanup, err := e.stageHelper(ctx, vol)
	if err != nil {
		return nil, fmt.Errorf("the volume is not empty (it holds %q) and replacing its contents through the Engine needs "+
			"a helper container running this plugin: %w; nothing was changed; restore into a fresh target_volume instead", found, err)
	}
	defer cleanup()
	stage, err := stagingName()
	if err != nil {
		return nil, err
	}
	// Root's and owner-only, so a live site cannot reach into it.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: stage + "/", Mode: 0o700, ModTime: time.Now(), Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := e.CopyToContainer(ctx, h.id, helperMount, &b, container.CopyToContainerOptions{CopyUIDGID: true}); err != nil {
		return nil, fmt.Errorf("create the staging directory: %w", err)
	}
	p.log.Info("the volume holds files: restoring beside them, swapping in when complete", "volume", vol, "staging", stage)
	st, err := p.copyInto(ctx, e, h.id, helperMount+"/"+stage+"/"+stageNew, ts, first, pol, true)
	if err == nil {
		err = commit()
	}
	if err != nil {
		// The caller's context may be what failed: the removal gets its own.
		rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if rerr := run(rctx, "remove", helperMount, stage); rerr != nil {
			p.log.Warn("could not remove the staging directory; the next restore will", "volume", vol, "staging", stage, "error", rerr)
		}
		return nil, fmt.Errorf("%w (the old files are untouched)", err)
	}
	setRoot := "0"
	if pol.sawRoot {
		setRoot = "1"
	}
	if err := run(ctx, "swap", helperMount, stage, setRoot); err != nil {
		return nil, err
	}
	return st, nil
}

// stageHelper imports the helper image and returns a function that runs
// the helper on vol with the given arguments, and one that removes the image.
func (e *engine) stageHelper(ctx context.Context, vol string) (func(context.Context, ...string) error, func(), error) {
	img, err := e.importSelf(ctx, "runs the volume plugin's staged-restore swap", e.labelsFor(ctx, vol))
	if err != nil {
		return nil, nil, err
	}
	run := func(ctx context.Context, args ...string) error {
		hc := &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: helperMount}}}
		return img.run(ctx, hc, nil, nil, args...)
	}
	return run, img.remove, nil
}

// selfImage is an image imported for the occasion that holds nothing but
// this plugin's binary (and, for a dynamically linked one, its loader and
// libraries, taken from this host): containers started from it run the
// plugin as its own helper (helperMain) next to a volume, on the Engine's
// machine. Nothing is pulled.
type selfImage struct {
	e      *engine
	ref    string
	labels map[string]string // of the image and of each container
}

// importSelf imports the helper image. It needs an Engine of this
// machine's OS and architecture. The caller removes the image.
func (e *engine) importSelf(ctx context.Context, purpose string, labels map[string]string) (*selfImage, error) {
	info, err := e.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask the Engine its architecture: %w", err)
	}
	if info.OSType != "linux" || !sameArch(info.Architecture) {
		return nil, fmt.Errorf("the Engine runs %s/%s, this plugin %s/%s", info.OSType, info.Architecture, runtime.GOOS, runtime.GOARCH)
	}
	e.sweepLeftovers(ctx)
	files, err := selfFiles()
	if err != nil {
		return nil, err
	}
	labels = withOwner(labels)
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, err
	}
	img := &selfImage{e: e, ref: "mbk-volume-stage-helper:" + hex.EncodeToString(rb[:]), labels: labels}
	// Labelled like its containers, so that a drill's teardown finds an
	// image a killed run left.
	var changes []string
	for k, v := range labels {
		changes = append(changes, fmt.Sprintf("LABEL %s=%s", k, v))
	}
	sort.Strings(changes)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeImageTar(pw, files)) }()
	err = e.importTar(ctx, img.ref, pr, "mbk: "+purpose, changes...)
	pr.Close()
	if err != nil {
		img.remove()
		return nil, err
	}
	return img, nil
}

// remove removes the image, with its own context: it runs after the
// caller's ended too.
func (s *selfImage) remove() {
	rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := s.e.ImageRemove(rctx, s.ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !docker.IsNotFound(err) {
		s.e.log.Warn("could not remove the helper image", "image", s.ref, "error", err)
	}
}

// run runs `<binary> mbk-volume-stage-helper args...` in a container with
// hc's mounts, to its exit, and removes the container. stdin, when not nil,
// is sent to the helper's standard input (then closed); its standard
// output goes to stdout when not nil. Its standard error is the helper's
// log: logged at debug level, and its last "error: " line is the error
// when it exits non-zero.
func (s *selfImage) run(ctx context.Context, hc *container.HostConfig, stdin io.Reader, stdout io.Writer, args ...string) error {
	e := s.e
	var nb [6]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	name := helperPrefix + hex.EncodeToString(nb[:])
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := e.ContainerRemove(rctx, name, container.RemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			e.log.Warn("could not remove helper container", "container", name, "error", err)
		}
	}()
	labels := map[string]string{helperLabel: "volume"}
	for k, v := range s.labels {
		labels[k] = v
	}
	withStdin := stdin != nil
	// What it says reaches this plugin through the attach stream; a
	// logging driver would also write all of it to disk (a walk's output
	// is the archive).
	if hc.LogConfig.Type == "" {
		hc.LogConfig = container.LogConfig{Type: "none"}
	}
	_, err := e.ContainerCreate(ctx,
		&container.Config{
			Image:           s.ref,
			Cmd:             append([]string{selfPath, helperArg}, args...),
			Env:             []string{"LD_LIBRARY_PATH=" + selfLibDir},
			Labels:          labels,
			NetworkDisabled: true,
			AttachStdin:     withStdin,
			AttachStdout:    true,
			AttachStderr:    true,
			OpenStdin:       withStdin,
			StdinOnce:       withStdin,
		},
		hc, nil, nil, name)
	if err != nil {
		return fmt.Errorf("create the helper container: %w", err)
	}
	// Attached before it starts, so that no output is lost.
	hj, err := e.ContainerAttach(ctx, name, container.AttachOptions{Stream: true, Stdin: withStdin, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attach to the helper container: %w", err)
	}
	defer hj.Close()
	// The hijacked connection does not watch the context.
	stop := context.AfterFunc(ctx, hj.Close)
	defer stop()
	waitC, errC := e.ContainerWait(ctx, name, container.WaitConditionNextExit)
	if err := e.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return fmt.Errorf("start the helper container: %w", err)
	}
	sent := make(chan error, 1)
	if withStdin {
		go func() {
			_, err := io.Copy(hj.Conn, stdin)
			if cerr := hj.CloseWrite(); err == nil {
				err = cerr
			}
			sent <- err
		}()
	} else {
		sent <- nil
	}
	if stdout == nil {
		stdout = io.Discard
	}
	var logs tailBuffer
	_, copyErr := stdcopy.StdCopy(stdout, &logs, hj.Reader)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		return fmt.Errorf("wait for the helper container: %w", err)
	}
	// The helper may exit without reading all its input: closing the
	// connection ends the copy. One that failed may have left it waiting
	// for more input, which ends when the caller's reader does.
	hj.Close()
	var sendErr error
	if code == 0 {
		sendErr = <-sent
	}
	out := strings.TrimSpace(logs.String())
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			e.log.Debug("helper: " + l)
		}
	}
	if code != 0 {
		msg := out
		if i := strings.LastIndex(msg, "error: "); i >= 0 {
			msg = msg[i+len("error: "):]
		}
		return fmt.Errorf("helper %s (exit %d): %s", args[0], code, msg)
	}
	if copyErr != nil {
		return fmt.Errorf("read the helper's output: %w", copyErr)
	}
	if sendErr != nil {
		return fmt.Errorf("send the helper its input: %w", sendErr)
	}
	return nil
}

// tailBuffer keeps the last 64 KiB written to it: a helper's log.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 64 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

const (
	selfPath   = "/mbk-volume-helper"
	selfLibDir = "/mbk-lib"
)

func sameArch(engine string) bool {
	switch runtime.GOARCH {
	case "amd64":
		return engine == "x86_64" || engine == "amd64"
	case "arm64":
		return engine == "aarch64" || engine == "arm64"
	}
	return engine == runtime.GOARCH
}

// selfFiles lists what the helper image holds, image path -> host path:
// this binary, and for a dynamically linked one its loader (at the path
// the binary names) and the libraries it needs, recursively.
func selfFiles() (map[string]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this plugin's binary: %w", err)
	}
	files := map[string]string{selfPath: exe}
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("read this plugin's binary: %w", err)
	}
	defer f.Close()
	interp := ""
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return nil, err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		return files, nil // static
	}
	files[interp] = interp
	dirs := []string{filepath.Dir(interp)}
	for _, g := range []string{"/lib/*-linux-*", "/usr/lib/*-linux-*"} {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	dirs = append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
	queue, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		lib := queue[0]
		queue = queue[1:]
		if seen[lib] {
			continue
		}
		seen[lib] = true
		found := ""
		for _, d := range dirs {
			if fi, err := os.Stat(filepath.Join(d, lib)); err == nil && fi.Mode().IsRegular() {
				found = filepath.Join(d, lib)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("library %s of this plugin's binary not found", lib)
		}
		files[path.Join(selfLibDir, lib)] = found
		if lf, err := elf.Open(found); err == nil {
			more, _ := lf.ImportedLibraries()
			queue = append(queue, more...)
			lf.Close()
		}
	}
	return files, nil
}

// writeImageTar writes files (image path -> host path, symlinks followed)
// and their parent directories as an image's filesystem.
func writeImageTar(w io.Writer, files map[string]string) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	var names []string
	for dst := range files {
		names = append(names, dst)
		for d := path.Dir(dst); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	sort.Strings(names)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: time.Now()}); err != nil {
			return err
		}
	}
	for _, dst := range names {
		src, err := os.Open(files[dst])
		if err != nil {
			return err
		}
		fi, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: 0o755, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		if err == nil {
			_, err = io.CopyN(tw, src, fi.Size())
		}
		src.Close()
		if err != nil {
			return fmt.Errorf("helper image: %s: %w", files[dst], err)
		}
	}
	return tw.Close()
}

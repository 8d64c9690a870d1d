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
		st, err := p.copyInto(ctx, e, h.id, helperMount, ts, first, pol)
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
	st, err := p.copyInto(ctx, e, h.id, helperMount+"/"+stage+"/"+stageNew, ts, first, pol)
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
	info, err := e.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("ask the Engine its architecture: %w", err)
	}
	if info.OSType != "linux" || !sameArch(info.Architecture) {
		return nil, nil, fmt.Errorf("the Engine runs %s/%s, this plugin %s/%s", info.OSType, info.Architecture, runtime.GOOS, runtime.GOARCH)
	}
	files, err := selfFiles()
	if err != nil {
		return nil, nil, err
	}
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, nil, err
	}
	ref := "mbk-volume-stage-helper:" + hex.EncodeToString(rb[:])
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeImageTar(pw, files)) }()
	err = e.importTar(ctx, ref, pr, "mbk: runs the volume plugin's staged-restore swap")
	pr.Close()
	cleanup := func() {
		rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := e.ImageRemove(rctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			e.log.Warn("could not remove the helper image", "image", ref, "error", err)
		}
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	run := func(ctx context.Context, args ...string) error {
		var nb [6]byte
		if _, err := rand.Read(nb[:]); err != nil {
			return err
		}
		name := helperPrefix + hex.EncodeToString(nb[:])
		defer func() {
			rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			if err := e.ContainerRemove(rctx, name, container.RemoveOptions{Force: true}); err != nil {
				e.log.Warn("could not remove helper container", "container", name, "error", err)
			}
		}()
		_, err := e.ContainerCreate(ctx,
			&container.Config{
				Image:           ref,
				Cmd:             append([]string{selfPath, helperArg}, args...),
				Env:             []string{"LD_LIBRARY_PATH=" + selfLibDir},
				Labels:          map[string]string{helperLabel: "volume"},
				NetworkDisabled: true,
			},
			&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: helperMount}}},
			nil, nil, name)
		if err != nil {
			return fmt.Errorf("create the helper container: %w", err)
		}
		waitC, errC := e.ContainerWait(ctx, name, container.WaitConditionNextExit)
		if err := e.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
			return fmt.Errorf("start the helper container: %w", err)
		}
		var code int64
		select {
		case w := <-waitC:
			code = w.StatusCode
		case err := <-errC:
			return fmt.Errorf("wait for the helper container: %w", err)
		}
		var out bytes.Buffer
		if rc, err := e.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true}); err == nil {
			stdcopy.StdCopy(&out, &out, rc)
			rc.Close()
		}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l != "" {
				e.log.Debug("helper: " + l)
			}
		}
		if code != 0 {
			msg := strings.TrimSpace(out.String())
			if i := strings.LastIndex(msg, "error: "); i >= 0 {
				msg = msg[i+len("error: "):]
			}
			return fmt.Errorf("helper %s (exit %d): %s", args[0], code, msg)
		}
		return nil
	}
	return run, cleanup, nil
}

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

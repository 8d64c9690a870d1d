package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/docker"
)

const (
	helperPrefix = "mbk-volume-helper-"
	helperLabel  = "io.mbk.helper"
	helperMount  = "/data"
	scratchRef   = "mbk-scratch:latest"
	// cleanupTimeout bounds removals run after the caller's context ended.
	cleanupTimeout = 30 * time.Second
)

// engine is the Docker side of the plugin.
type engine struct {
	*docker.Client
	log   hclog.Logger
	swept sync.Once // sweepLeftovers
}

func newEngine(log hclog.Logger) (*engine, error) {
	c, err := docker.New()
	if err != nil {
		return nil, err
	}
	return &engine{Client: c, log: log}, nil
}

func (e *engine) inspectVolume(ctx context.Context, name string) (volume.Volume, error) {
	v, err := e.VolumeInspect(ctx, name)
	if docker.IsNotFound(err) {
		return v, fmt.Errorf("volume %q does not exist", name)
	}
	if err != nil {
		return v, fmt.Errorf("inspect volume %q: %w", name, err)
	}
	return v, nil
}

// containersUsing lists the containers that mount a volume. The Engine's
// "volume" filter also matches mount destinations, so mounts are re-checked.
func (e *engine) containersUsing(ctx context.Context, name string, runningOnly bool) ([]container.Summary, error) {
	f := filters.NewArgs(filters.Arg("volume", name))
	if runningOnly {
		f.Add("status", "running")
	}
	list, err := e.ContainerList(ctx, container.ListOptions{All: !runningOnly, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers using volume %q: %w", name, err)
	}
	var out []container.Summary
	for _, c := range list {
		for _, m := range c.Mounts {
			if m.Type == mount.TypeVolume && m.Name == name {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}

// mountOf returns where a running container mounts the whole volume, or ""
// when it mounts only a subpath of it.
func (e *engine) mountOf(ctx context.Context, id, name string) (string, error) {
	info, err := e.ContainerInspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.HostConfig != nil {
		for _, m := range info.HostConfig.Mounts {
			if m.Type == mount.TypeVolume && m.Source == name && m.VolumeOptions != nil && m.VolumeOptions.Subpath != "" {
				return "", nil
			}
		}
	}
	for _, m := range info.Mounts {
		if m.Type == mount.TypeVolume && m.Name == name {
			return m.Destination, nil
		}
	}
	return "", nil
}

// helper is a created, never started, container mounting one volume at /data.
type helper struct {
	id, name string
}

// createHelper creates a helper container. The returned remove function is
// never nil and uses its own context: it must run after the caller's ended.
func (e *engine) createHelper(ctx context.Context, vol string, readOnly bool) (helper, func(), error) {
	noop := func() {}
	e.sweepLeftovers(ctx)
	img, err := e.helperImage(ctx)
	if err != nil {
		return helper{}, noop, err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return helper{}, noop, fmt.Errorf("helper container name: %w", err)
	}
	name := helperPrefix + hex.EncodeToString(b[:])
	remove := func() {
		rctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		// RemoveVolumes drops anonymous volumes an image might declare;
		// named volumes are never removed by it.
		err := e.ContainerRemove(rctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !docker.IsNotFound(err) {
			e.log.Warn("could not remove helper container", "container", name, "error", err)
		}
	}
	resp, err := e.ContainerCreate(ctx,
		&container.Config{
			Image:           img,
			Cmd:             []string{"/mbk-helper-is-never-started"},
			Labels:          withOwner(e.labelsFor(ctx, vol)),
			NetworkDisabled: true,
		},
		&container.HostConfig{Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: vol, Target: helperMount, ReadOnly: readOnly,
		}}},
		nil, nil, name)
	if err != nil {
		// A cancelled create may still have happened on the Engine's side.
		remove()
		return helper{}, noop, fmt.Errorf("create helper container for volume %q: %w", vol, err)
	}
	e.log.Debug("created helper container", "container", name, "volume", vol, "image", img)
	return helper{id: resp.ID, name: name}, remove, nil
}

// helperImage picks an image for a container that never runs: any will do.
// mbk-scratch:latest first, then the smallest local image, then a freshly
// imported empty one. Nothing is ever pulled.
func (e *engine) helperImage(ctx context.Context) (string, error) {
	list, err := e.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list images: %w", err)
	}
	for _, im := range list {
		for _, tag := range im.RepoTags {
			if tag == scratchRef {
				return scratchRef, nil
			}
		}
	}
	if len(list) > 0 {
		sort.Slice(list, func(i, j int) bool { return list[i].Size < list[j].Size })
		return list[0].ID, nil
	}
	if err := e.importScratch(ctx, scratchRef); err != nil {
		return "", err
	}
	return scratchRef, nil
}

// importScratch creates an image with an empty filesystem from an empty tar.
func (e *engine) importScratch(ctx context.Context, ref string) error {
	var empty bytes.Buffer
	if err := tar.NewWriter(&empty).Close(); err != nil {
		return err
	}
	if err := e.importTar(ctx, ref, &empty, "mbk: empty image for never-started helper containers"); err != nil {
		return err
	}
	e.log.Info("imported an empty image for helper containers", "image", ref)
	return nil
}

// importTar imports a filesystem tar as image ref, with Dockerfile-style
// changes ("LABEL k=v").
func (e *engine) importTar(ctx context.Context, ref string, src io.Reader, msg string, changes ...string) error {
	rc, err := e.ImageImport(ctx, image.ImportSource{Source: src, SourceName: "-"}, ref,
		image.ImportOptions{Message: msg, Changes: changes})
	if err != nil {
		return fmt.Errorf("import empty image %s: %w", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("import image %s: %w", ref, err)
		}
		if m.Error != "" {
			return fmt.Errorf("import image %s: %s", ref, m.Error)
		}
	}
	return nil
}

// containerDir finds the running container name and resolves dir inside it.
func (e *engine) containerDir(ctx context.Context, name, dir string) (container.InspectResponse, string, error) {
	info, err := e.FindRunning(ctx, docker.Target{Container: name})
	if err != nil {
		return info, "", err
	}
	dir, err = e.resolveDir(ctx, info.ID, name, dir)
	return info, dir, err
}

// resolveDir checks that dir is a directory in the container, following a
// symlink once (a dataroot is often a link to a mounted disk).
func (e *engine) resolveDir(ctx context.Context, id, label, dir string) (string, error) {
	for range 2 {
		st, err := e.ContainerStatPath(ctx, id, dir)
		if docker.IsNotFound(err) {
			return "", fmt.Errorf("path %q does not exist in container %q", dir, label)
		}
		if err != nil {
			return "", fmt.Errorf("stat %q in container %q: %w", dir, label, err)
		}
		if st.Mode&os.ModeSymlink != 0 && st.LinkTarget != "" {
			dir = st.LinkTarget
			continue
		}
		if !st.Mode.IsDir() {
			return "", fmt.Errorf("path %q in container %q is not a directory", dir, label)
		}
		return path.Clean(dir), nil
	}
	return "", fmt.Errorf("path %q in container %q is a chain of symlinks", dir, label)
}

// firstEntry returns the first entry below dir in the container, "" when
// dir is empty. It reads only as far as the second header.
func (e *engine) firstEntry(ctx context.Context, id, label, dir string) (string, error) {
	rc, _, err := e.CopyFromContainer(ctx, id, dir)
	if err != nil {
		return "", fmt.Errorf("read %q in %s: %w", dir, label, err)
	}
	defer rc.Close()
	ts := newTarStream(rc)
	root, err := ts.Next()
	if err != nil {
		return "", fmt.Errorf("read %q in %s: %w", dir, label, err)
	}
	h, err := ts.Next()
	if errors.Is(err, io.EOF) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %q in %s: %w", dir, label, err)
	}
	prefix := strings.TrimSuffix(root.Name, "/") + "/"
	return strings.TrimSuffix(strings.TrimPrefix(h.Name, prefix), "/"), nil
}

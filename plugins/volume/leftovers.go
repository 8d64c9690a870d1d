package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/mbk-backup/mbk/core/docker"
)

// ownerLabel marks each helper container and imported helper image with
// the process that made it, "<host>/<pid>". A run killed (SIGKILL, a power
// cut) before it removed them leaves them on the Engine, an image of this
// plugin's binary each time; the next run that makes a helper removes those
// whose process on this host is gone. Another machine's, and a live
// process's (another pipeline's run at the same time), are left alone.
const ownerLabel = "io.mbk.helper.owner"

// withOwner is labels and this process's owner label.
func withOwner(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	host, _ := os.Hostname()
	out[ownerLabel] = fmt.Sprintf("%s/%d", host, os.Getpid())
	return out
}

// deadOwner says whether an owner label names a process of this host that
// no longer runs.
func deadOwner(owner string) bool {
	host, p, ok := strings.Cut(owner, "/")
	me, _ := os.Hostname()
	pid, err := strconv.Atoi(p)
	if !ok || err != nil || pid <= 0 || host != me {
		return false
	}
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	// A killed process nobody has reaped yet still answers signals.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z' || stat[i+2] == 'X'
	}
	return false
}

// sweepLeftovers removes, once per engine, the helper containers and
// images of processes of this host that are gone.
func (e *engine) sweepLeftovers(ctx context.Context) {
	e.swept.Do(func() {
		byOwner := filters.NewArgs(filters.Arg("label", ownerLabel))
		cs, err := e.ContainerList(ctx, container.ListOptions{All: true, Filters: byOwner})
		if err != nil {
			e.log.Warn("could not list helper containers a killed run may have left", "error", err)
			return
		}
		for _, c := range cs {
			if !deadOwner(c.Labels[ownerLabel]) {
				continue
			}
			if err := e.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !docker.IsNotFound(err) {
				e.log.Warn("could not remove a helper container a killed run left", "container", c.ID, "error", err)
				continue
			}
			e.log.Info("removed a helper container a killed run left", "container", strings.TrimPrefix(firstName(c.Names), "/"), "owner", c.Labels[ownerLabel])
		}
		ims, err := e.ImageList(ctx, image.ListOptions{Filters: byOwner})
		if err != nil {
			e.log.Warn("could not list helper images a killed run may have left", "error", err)
			return
		}
		for _, im := range ims {
			if !deadOwner(im.Labels[ownerLabel]) {
				continue
			}
			if _, err := e.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !docker.IsNotFound(err) {
				e.log.Warn("could not remove a helper image a killed run left", "image", im.ID, "error", err)
				continue
			}
			e.log.Info("removed a helper image a killed run left", "image", strings.Join(im.RepoTags, ","), "owner", im.Labels[ownerLabel])
		}
	})
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

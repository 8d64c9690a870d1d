package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"

	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/sdk"
)

// drillLabel marks everything a drill makes: the sandbox volume, and the
// helper containers and images made while restoring into it or checking
// it. Its value is the drill's label, so that Teardown finds all of it,
// also after mbk was killed.
const drillLabel = sdk.DrillLabel

// nameRe is what the Engine accepts as a volume name; a drill's label must
// be one too, since it starts the sandbox volume's name.
var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func checkLabel(label string) error {
	if !nameRe.MatchString(label) {
		return fmt.Errorf("drill label %q: want letters, digits, '_', '.' and '-', starting with a letter or digit", label)
	}
	return nil
}

// labelsFor are the labels of a helper container (or image) made for vol:
// the helper mark, and the drill's label when vol is a drill's sandbox.
func (e *engine) labelsFor(ctx context.Context, vol string) map[string]string {
	labels := map[string]string{helperLabel: "volume"}
	if v, err := e.VolumeInspect(ctx, vol); err == nil && v.Labels[drillLabel] != "" {
		labels[drillLabel] = v.Labels[drillLabel]
	}
	return labels
}

var _ sdk.Sandboxer = (*plugin)(nil)

// Sandbox creates an empty volume, <label>-<artifact>, labelled
// mbk.drill=<label>, and points the restore at it with target_volume. That
// works whatever the stage reads (a volume, a container path, a host
// directory): a restore into a fresh volume is the ordinary restore path.
func (p *plugin) Sandbox(ctx context.Context, req sdk.SandboxRequest) (sdk.Sandbox, error) {
	c, err := p.decode(req.Config)
	if err != nil {
		return sdk.Sandbox{}, err
	}
	if req.Artifact != artifactID {
		return sdk.Sandbox{}, fmt.Errorf("plugin volume has no artifact %q", req.Artifact)
	}
	if err := checkLabel(req.Label); err != nil {
		return sdk.Sandbox{}, err
	}
	name := req.Label + "-" + c.Name
	if !nameRe.MatchString(name) {
		return sdk.Sandbox{}, fmt.Errorf("sandbox volume name %q is not a valid volume name: give the stage an artifact name of letters, digits, '_', '.' and '-'", name)
	}
	e, err := newEngine(p.log)
	if err != nil {
		return sdk.Sandbox{}, err
	}
	defer e.Close()
	// The Engine's create returns an existing volume of that name as if it
	// had made it: a drill must never restore into one it did not make.
	if _, err := e.VolumeInspect(ctx, name); err == nil {
		return sdk.Sandbox{}, fmt.Errorf("sandbox volume %q already exists: a drill restores only into a volume it made", name)
	} else if !docker.IsNotFound(err) {
		return sdk.Sandbox{}, fmt.Errorf("inspect volume %q: %w", name, err)
	}
	v, err := e.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: map[string]string{drillLabel: req.Label}})
	if err != nil {
		return sdk.Sandbox{}, fmt.Errorf("create sandbox volume %q: %w", name, err)
	}
	if v.Labels[drillLabel] != req.Label {
		return sdk.Sandbox{}, fmt.Errorf("sandbox volume %q already existed (made meanwhile by someone else): not restoring into it", name)
	}
	summary := fmt.Sprintf("created volume %q (label %s=%s) to restore %s into", name, drillLabel, req.Label, c.source())
	p.log.Info(summary)
	return sdk.Sandbox{Options: map[string]string{"target_volume": name}, Summary: summary}, nil
}

// Teardown removes what the drill labelled label made: helper containers
// first (a volume in use cannot be removed, nor an image a container
// uses), with any unlabelled helper still mounting a sandbox volume, then
// the volumes, then the helper images. Finding nothing is not an error.
func (p *plugin) Teardown(ctx context.Context, _ sdk.Config, label string) (string, error) {
	if err := checkLabel(label); err != nil {
		return "", err
	}
	e, err := newEngine(p.log)
	if err != nil {
		return "", err
	}
	defer e.Close()
	f := filters.NewArgs(filters.Arg("label", drillLabel+"="+label))
	var errs []error
	var vols []string
	ctrs := 0
	removeCtr := func(id string) {
		err := e.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			ctrs++
		case !docker.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove container %s: %w", id, err))
		}
	}

	list, err := e.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return "", fmt.Errorf("list the drill's containers: %w", err)
	}
	for _, c := range list {
		removeCtr(c.ID)
	}
	vl, err := e.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list the drill's volumes: %w", err)
	}
	for _, v := range vl.Volumes {
		users, err := e.containersUsing(ctx, v.Name, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, u := range users {
			if u.Labels[helperLabel] != "" {
				removeCtr(u.ID)
			}
		}
		err = e.VolumeRemove(ctx, v.Name, true)
		switch {
		case err == nil:
			vols = append(vols, fmt.Sprintf("%q", v.Name))
		case !docker.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove volume %q: %w", v.Name, err))
		}
	}
	il, err := e.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list the drill's images: %w", err)
	}
	imgs := 0
	for _, im := range il {
		_, err := e.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		switch {
		case err == nil:
			imgs++
		case !docker.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove image %s: %w", im.ID, err))
		}
	}

	var done []string
	if len(vols) > 0 {
		done = append(done, plural(len(vols), "volume")+" "+strings.Join(vols, ", "))
	}
	if ctrs > 0 {
		done = append(done, plural(ctrs, "helper container"))
	}
	if imgs > 0 {
		done = append(done, plural(imgs, "helper image"))
	}
	summary := fmt.Sprintf("nothing left under %s=%s", drillLabel, label)
	if len(done) > 0 {
		summary = "removed " + strings.Join(done, ", ")
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("tear down drill %q (%s): %w", label, summary, err)
	}
	p.log.Info(summary, "drill", label)
	return summary, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

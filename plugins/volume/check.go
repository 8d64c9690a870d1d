package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/sdk"
)

var _ sdk.Checker = (*plugin)(nil)

// Check checks a restored dataroot where the restore options say it is
// (target_volume, target_path, else the stage's own source), reached as a
// restore reaches it:
//
//   - a host directory, or a volume whose directory this process can open,
//     is checked here (treecheck.go);
//   - any other volume, and a container path, through the Engine: a helper
//     container started from an image holding only this plugin's binary
//     (selfhelper.go) runs the same checks next to the data, mounting the
//     volume read-only at /data (a container path: the container's mounts,
//     read-only, with VolumesFrom). The references go to its standard input
//     as the file the core wrote; it answers with the checks as JSON on its
//     standard output and its log on standard error.
//
// A finding is a failed check, never an error: errors are for a check that
// could not run (no such volume, an unreadable directory, a broken helper).
func (p *plugin) Check(ctx context.Context, req sdk.CheckRequest) (sdk.CheckResult, error) {
	c, err := p.decode(req.Config)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	if req.Artifact != artifactID {
		return sdk.CheckResult{}, fmt.Errorf("plugin volume has no artifact %q", req.Artifact)
	}
	o, err := parseOptions(req.Options)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	spec := checkSpec{
		Refs:     req.RefsIn != "",
		Sample:   req.Sample,
		Recorded: recordedIn(req.Details),
		Exclude:  excludedIn(req.Details, c.Exclude),
	}
	tg := c.target(o)
	var checks []sdk.Check
	switch {
	case tg.hostDir != "":
		checks, err = p.checkHost(ctx, tg.hostDir, spec, req.RefsIn)
	case tg.volume != "":
		checks, err = p.checkVolume(ctx, tg.volume, c.Read, spec, req.RefsIn)
	default:
		checks, err = p.checkContainer(ctx, tg.container, tg.path, spec, req.RefsIn)
	}
	if err != nil {
		return sdk.CheckResult{}, fmt.Errorf("check %s: %w", tg, err)
	}
	return sdk.CheckResult{Checks: checks}, nil
}

func (p *plugin) checkHost(ctx context.Context, dir string, spec checkSpec, refsIn string) ([]sdk.Check, error) {
	root, err := hostRoot(dir)
	if err != nil {
		return nil, err
	}
	t, err := openTree(root, p.log)
	if err != nil {
		return nil, err
	}
	defer t.close()
	return t.run(ctx, spec, func(fn func(sdk.Ref) error) error { return sdk.ReadRefs(refsIn, fn) })
}

func (p *plugin) checkVolume(ctx context.Context, vol, read string, spec checkSpec, refsIn string) ([]sdk.Check, error) {
	e, err := newEngine(p.log)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	v, err := e.inspectVolume(ctx, vol)
	if err != nil {
		return nil, err
	}
	if dir, ok := localDir(v, read); ok {
		p.log.Info("checking the volume's directory directly", "volume", vol, "path", dir)
		return p.checkHost(ctx, dir, spec, refsIn)
	}
	hc := &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: helperMount, ReadOnly: true}}}
	return p.checkEngine(ctx, e, hc, helperMount, e.labelsFor(ctx, vol), spec, refsIn)
}

func (p *plugin) checkContainer(ctx context.Context, name, dir string, spec checkSpec, refsIn string) ([]sdk.Check, error) {
	e, err := newEngine(p.log)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	info, dir, err := e.containerDir(ctx, name, dir)
	if err != nil {
		return nil, err
	}
	// The helper sees the container's volumes and bind mounts, not its own
	// filesystem.
	if !onMount(info, dir) {
		return nil, fmt.Errorf("%q is in the container's own filesystem, not on a volume or bind mount: a helper container cannot reach it; restore into a volume (target_volume) to check it", dir)
	}
	hc := &container.HostConfig{VolumesFrom: []string{info.ID + ":ro"}}
	return p.checkEngine(ctx, e, hc, dir, map[string]string{helperLabel: "volume"}, spec, refsIn)
}

// checkEngine runs the checks in a helper container (see Check).
func (p *plugin) checkEngine(ctx context.Context, e *engine, hc *container.HostConfig, root string, labels map[string]string, spec checkSpec, refsIn string) ([]sdk.Check, error) {
	arg, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var stdin io.Reader
	if spec.Refs {
		f, err := os.Open(refsIn)
		if err != nil {
			return nil, fmt.Errorf("open the references: %w", err)
		}
		defer f.Close()
		stdin = f
	}
	img, err := e.importSelf(ctx, "runs the volume plugin's restore checks", labels)
	if err != nil {
		return nil, fmt.Errorf("checking through the Engine needs a helper container running this plugin: %w", err)
	}
	defer img.remove()
	p.log.Info("checking through a helper container", "root", root)
	var out bytes.Buffer
	if err := img.run(ctx, hc, stdin, &out, checkCmd, root, string(arg)); err != nil {
		return nil, err
	}
	var checks []sdk.Check
	if err := json.Unmarshal(out.Bytes(), &checks); err != nil || len(checks) == 0 {
		return nil, fmt.Errorf("the helper's answer %.200q: %v", out.String(), err)
	}
	return checks, nil
}

// checkCmd, after helperArg, runs the checks in a helper container:
// `check ROOT SPEC`, SPEC a checkSpec in JSON, the references on stdin.
const checkCmd = "check"

// checkMain is the helper's side of checkEngine.
func checkMain(args []string, log hclog.Logger) error {
	if len(args) != 2 {
		return errors.New("usage: check ROOT SPEC")
	}
	var spec checkSpec
	if err := json.Unmarshal([]byte(args[1]), &spec); err != nil {
		return fmt.Errorf("bad check spec: %w", err)
	}
	t, err := openTree(args[0], log)
	if err != nil {
		return err
	}
	defer t.close()
	checks, err := t.run(context.Background(), spec, func(fn func(sdk.Ref) error) error {
		return sdk.ScanRefs(os.Stdin, "stdin", fn)
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(checks)
}

// recordedIn returns the file count and bytes a backup recorded in its
// details (stats.details): int64 in the plugin, float64 once through JSON.
func recordedIn(d map[string]any) *recorded {
	files, ok1 := wholeNumber(d["files"])
	size, ok2 := wholeNumber(d["bytes"])
	if !ok1 || !ok2 {
		return nil
	}
	return &recorded{Files: files, Bytes: size}
}

func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		if n < 0 || n != math.Trunc(n) || n > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// excludedIn returns the exclude patterns a backup recorded, else the
// stage's.
func excludedIn(d map[string]any, fallback []string) []string {
	switch v := d["exclude_patterns"].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fallback
			}
			out = append(out, s)
		}
		return out
	}
	return fallback
}

package main

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/sdk"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0"

// defaultExclude are the dataroot entries Moodle regenerates or only holds
// for a while: caches (cache, localcache), temporary files (temp), PHP
// sessions (sessions) and the maintenance-mode flag page, which a restore
// must not bring back (climaintenance.html).
var defaultExclude = []string{"cache", "localcache", "temp", "sessions", "climaintenance.html"}

const (
	artifactID = "0"
	infoFile   = "MOODLEDATA_INFO.txt"
)

type plugin struct {
	log hclog.Logger
}

var (
	_ sdk.Source      = (*plugin)(nil)
	_ sdk.Validator   = (*plugin)(nil)
	_ sdk.Preflighter = (*plugin)(nil)
)

// config is the archive stage body.
type config struct {
	Volume    string   `cty:"volume"`
	Container string   `cty:"container"`
	Path      string   `cty:"path"`
	Exclude   []string `cty:"exclude"`
	Name      string   `cty:"artifact"`
	// Read is how a volume is read: auto (its directory on this host when
	// mbk runs beside the Engine, else the archive API) or engine.
	Read string `cty:"read"`
	// Filedir is how filedir and trashdir are kept: archive (in the tar,
	// like everything else) or pool (in the core's pool, once for all
	// sets).
	Filedir string `cty:"filedir"`
}

func (p *plugin) Describe() sdk.Info {
	return sdk.Info{
		Name:        "volume",
		Version:     version,
		Kinds:       []string{sdk.KindArchive},
		Description: "Archives Moodle's dataroot from a Docker volume, a container path or a host directory as a tar stream, and restores it.",
	}
}

func (p *plugin) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindArchive {
		return sdk.Schema{}, fmt.Errorf("plugin volume serves the %q kind only, not %q", sdk.KindArchive, kind)
	}
	excl := make([]cty.Value, len(defaultExclude))
	for i, e := range defaultExclude {
		excl[i] = cty.StringVal(e)
	}
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "volume", Type: sdk.String,
			Description: "Named Docker volume holding moodledata. Exclusive with container/path."},
		{Name: "container", Type: sdk.String,
			Description: "Running container (name or ID) holding moodledata at `path`."},
		{Name: "path", Type: sdk.String,
			Description: "Absolute path of moodledata: inside `container` when set, else on the host."},
		{Name: "exclude", Type: sdk.List(sdk.String), Default: cty.ListVal(excl),
			Description: "Patterns relative to the source root, path.Match globs per component; a pattern without a slash matches a top-level name; a matched directory is excluded with everything below it."},
		{Name: "read", Type: sdk.String, Default: cty.StringVal("auto"),
			Description: "How a volume is read: auto (straight from its directory when mbk runs on the Docker host and the volume is a plain local one; through the Engine's archive API otherwise) or engine (always the archive API)."},
		{Name: "filedir", Type: sdk.String, Default: cty.StringVal("archive"),
			Description: "How filedir and trashdir are kept: archive (in the set's tar, self-contained) or pool (each file's content stored once in a pool beside the sets, shared by every set of the root; the tar keeps the rest and a listing)."},
		{Name: "artifact", Type: sdk.String, Default: cty.StringVal("moodledata"),
			Description: "Base name of the artifact file (<artifact>_<set>.tar.gz)."},
	}, RestoreOptions: restoreOptions}, nil
}

func (p *plugin) decode(cfg sdk.Config) (config, error) {
	c := config{Name: "moodledata", Exclude: defaultExclude, Read: "auto", Filedir: "archive"}
	if err := cfg.Decode(&c); err != nil {
		return c, err
	}
	if ds := c.check(); ds.HasErrors() {
		return c, fmt.Errorf("%s", ds[0].Summary)
	}
	return c, nil
}

// check is the pure validation shared by ValidateConfig and every call.
func (c config) check() sdk.Diagnostics {
	var ds sdk.Diagnostics
	switch {
	case c.Volume != "" && (c.Container != "" || c.Path != ""):
		ds = append(ds, sdk.Errorf("volume", "set either volume, or container and path, or path alone, not several"))
	case c.Volume == "" && c.Path == "" && c.Container == "":
		ds = append(ds, sdk.Errorf("", "no source: set volume, or container and path, or path (a host directory)"))
	case c.Container != "" && c.Path == "":
		ds = append(ds, sdk.Errorf("path", "container %q needs path: the directory inside it that holds moodledata", c.Container))
	}
	if c.Path != "" {
		if !path.IsAbs(c.Path) {
			ds = append(ds, sdk.Errorf("path", "path %q must be absolute", c.Path))
		} else if path.Clean(c.Path) == "/" {
			ds = append(ds, sdk.Errorf("path", "path must name a directory below /, not / itself"))
		}
	}
	if _, err := newExcluder(c.Exclude); err != nil {
		ds = append(ds, sdk.Errorf("exclude", "%v", err))
	}
	if c.Name == "" || strings.ContainsAny(c.Name, `/\`) || c.Name == "." || c.Name == ".." {
		ds = append(ds, sdk.Errorf("artifact", "artifact %q must be a plain file name", c.Name))
	}
	if c.Filedir != "archive" && c.Filedir != "pool" {
		ds = append(ds, sdk.Errorf("filedir", "filedir must be archive or pool, not %q", c.Filedir))
	}
	if c.Read != "auto" && c.Read != "engine" {
		ds = append(ds, sdk.Errorf("read", "read must be auto or engine, not %q", c.Read))
	}
	return ds
}

func (c config) source() string {
	switch {
	case c.Volume != "":
		return fmt.Sprintf("volume %q", c.Volume)
	case c.Container != "":
		return fmt.Sprintf("path %q in container %q", c.Path, c.Container)
	default:
		return fmt.Sprintf("host directory %q", c.Path)
	}
}

func (p *plugin) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	c := config{Name: "moodledata", Exclude: defaultExclude, Read: "auto", Filedir: "archive"}
	if err := cfg.Decode(&c); err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	return c.check()
}

// Preflight checks that the source exists and can be read, changing nothing.
func (p *plugin) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	c, err := p.decode(cfg)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	if c.Volume == "" && c.Container == "" {
		if _, err := hostRoot(c.Path); err != nil {
			return sdk.Diagnostics{sdk.Errorf("path", "%v", err)}
		}
		return nil
	}
	e, err := newEngine(p.log)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	defer e.Close()
	if c.Volume != "" {
		if _, err := e.inspectVolume(ctx, c.Volume); err != nil {
			return sdk.Diagnostics{sdk.Errorf("volume", "%v", err)}
		}
		return nil
	}
	ctr, err := e.FindRunning(ctx, docker.Target{Container: c.Container})
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("container", "%v", err)}
	}
	if _, err := e.resolveDir(ctx, ctr.ID, c.Container, c.Path); err != nil {
		return sdk.Diagnostics{sdk.Errorf("path", "%v", err)}
	}
	return nil
}

func (p *plugin) Plan(_ context.Context, cfg sdk.Config) ([]sdk.Artifact, error) {
	c, err := p.decode(cfg)
	if err != nil {
		return nil, err
	}
	return []sdk.Artifact{{ID: artifactID, Name: c.Name, Format: "tar", Pool: c.Filedir == "pool"}}, nil
}

// hostRoot resolves a host directory once, so a symlinked dataroot is read
// (and written) where it really lives.
func hostRoot(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("host directory %q does not exist", dir)
		}
		return "", fmt.Errorf("resolve host directory %q: %w", dir, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("host directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("host path %q is not a directory", dir)
	}
	return real, nil
}

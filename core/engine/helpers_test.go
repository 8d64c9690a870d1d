package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/checksum"
	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/redact"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/retain"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/mbktest"
)

// The engine's tests drive real plugins over go-plugin, as mbk does: the
// built-in ones (sha256, policy) served inside this test binary over the
// protocol, the way mbk serves them, and plugin binaries built once here.

// pluginDir holds mbk-plugin-faulty (a dump that misbehaves on request and
// a retention policy that lies), mbk-plugin-sftp and mbk-plugin-webhook.
var pluginDir string

var builtins = map[string]func(hclog.Logger) sdk.Plugin{
	"sha256": func(log hclog.Logger) sdk.Plugin { return &checksum.Plugin{Version: "test", Log: log} },
	"policy": func(log hclog.Logger) sdk.Plugin { return &retain.Plugin{Version: "test", Log: log} },
}

func TestMain(m *testing.M) {
	mbktest.Main(m, &pluginDir, map[string]string{
		pluginhost.Prefix + "faulty":  "../../cmd/mbk/testdata/faulty",
		pluginhost.Prefix + "sftp":    "../../plugins/sftp",
		pluginhost.Prefix + "webhook": "../../plugins/webhook",
	})
}

// testLog writes the engine's log to the test's.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pipeline is one pipeline, loaded from an HCL body and prepared: its
// plugins run until the test ends.
type pipeline struct {
	p      *config.Pipeline
	stages []*engine.Stage
	engine *engine.Engine
}

// prepare writes `pipeline "test" { root = ROOT; stages }` to a file, loads
// it and starts its plugins, as mbk's commands do.
func prepare(t *testing.T, root, stages string) *pipeline {
	t.Helper()
	file := filepath.Join(t.TempDir(), "test.hcl")
	src := fmt.Sprintf("plugin_dir = %q\n\npipeline \"test\" {\n  root    = %q\n  timeout = \"2m\"\n%s\n}\n", pluginDir, root, stages)
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	loader := config.NewLoader(nil)
	f, diags := loader.Load(file)
	if diags.HasErrors() {
		t.Fatalf("%s: %v\n%s", file, diags, src)
	}
	p, err := f.Pipeline("")
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "mbk", Output: testLog{t}, Level: hclog.Debug})
	h := pluginhost.New(pluginhost.Options{PluginDir: pluginDir, Builtins: builtins, Logger: log.Named("plugin")})
	t.Cleanup(h.Close)
	prepared, diags := engine.Prepare(context.Background(), h, p)
	if diags.HasErrors() {
		t.Fatalf("prepare: %v", diags)
	}
	return &pipeline{p: p, stages: prepared, engine: &engine.Engine{Host: h, Log: log, Redact: &redact.Redactor{}, Version: "test"}}
}

// backup runs the pipeline once and wants its set committed with nothing
// failing after. A run stops each plugin after its last stage: they are
// started again, as for the next command.
func (pl *pipeline) backup(t *testing.T) *engine.Result {
	t.Helper()
	res := pl.engine.Run(context.Background(), pl.p, pl.stages)
	if res.ExitCode() != engine.ExitOK {
		t.Fatalf("run: exit %d: %v %v", res.ExitCode(), res.Err, res.Later)
	}
	for _, s := range pl.stages {
		client, _, err := pl.engine.Host.Get(context.Background(), s.Plugin)
		if err != nil {
			t.Fatal(err)
		}
		s.Client = client
	}
	return res
}

// stage finds the pipeline's stage of kind named name.
func (pl *pipeline) stage(t *testing.T, kind, name string) *engine.Stage {
	t.Helper()
	for _, s := range pl.stages {
		if s.Kind == kind && s.Name == name {
			return s
		}
	}
	t.Fatalf("no %s stage %q", kind, name)
	return nil
}

// okDump is a dump stage that succeeds, which every pipeline needs.
const okDump = `
  stage "dump" "faulty" {
    mode = "ok"
  }`

// makeSets lays sets out under root by hand, dated by their names: complete
// ones, then incomplete ones (see makeSet).
func makeSets(t *testing.T, root string, complete []string, incomplete ...string) {
	t.Helper()
	for _, name := range complete {
		makeSet(t, root, name, true)
	}
	for _, name := range incomplete {
		makeSet(t, root, name, false)
	}
}

// makeSet lays a set out under root by hand, dated by its name: complete
// when its manifest says so, else without a manifest, as a run killed
// before its commit would have left it had it been renamed.
func makeSet(t *testing.T, root, name string, complete bool) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, repo.DirMode); err != nil {
		t.Fatal(err)
	}
	if !complete {
		return
	}
	if err := repo.WriteManifest(dir, &repo.Manifest{Format: 1, Pipeline: "test", Set: name, Status: repo.StatusComplete}); err != nil {
		t.Fatal(err)
	}
}

// setsIn lists the set directories under root, oldest first.
func setsIn(t *testing.T, root string) []string {
	t.Helper()
	sets, err := repo.List(root, time.Local)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range sets {
		out = append(out, s.Name)
	}
	return out
}

// newRoot is an empty private root for a pipeline's sets.
func newRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "backups")
	if err := os.Mkdir(root, repo.DirMode); err != nil {
		t.Fatal(err)
	}
	return root
}

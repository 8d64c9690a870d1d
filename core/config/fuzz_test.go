package config_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/spec"
)

// fuzzSchema stands for a plugin's schema: one attribute of each shape the
// plugins declare.
var fuzzSchema = spec.Schema{Attributes: []spec.Attribute{
	{Name: "container", Type: spec.String},
	{Name: "password", Type: spec.String, Sensitive: true},
	{Name: "port", Type: spec.Int},
	{Name: "to", Type: spec.List(spec.String)},
	{Name: "tls", Type: spec.Bool},
}}

// FuzzLoad feeds the pipeline loader arbitrary bytes: it must report what
// is wrong, never panic, and its diagnostics must render the way
// `mbk validate` prints them. Seeds: the shipped pipelines and the corpus
// in testdata/fuzz/FuzzLoad. Bounded in CI by `make test-faults`; a longer
// run: go test -run XXX -fuzz FuzzLoad -fuzztime 30m ./core/config/
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../pipelines/*.hcl")
	if len(seeds) == 0 {
		f.Fatal("no seed pipelines in ../../pipelines")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.hcl")
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		loader := config.NewLoader(nil)
		file, diags := loader.Load(path)
		if err := loader.WriteDiagnostics(io.Discard, diags, 100, false); err != nil {
			t.Fatalf("diagnostics do not render: %v", err)
		}
		if diags.HasErrors() {
			return
		}
		// A file without errors is usable: every pipeline has a name (an
		// empty one can never be chosen with --pipeline once the file has a
		// second pipeline) and a root, and every stage a kind, a plugin and
		// a name.
		if file == nil || len(file.Pipelines) == 0 {
			t.Fatalf("no error, yet no pipeline")
		}
		for _, p := range file.Pipelines {
			if p.Name == "" {
				t.Fatalf(`pipeline "" accepted: a pipeline without a name cannot be chosen with --pipeline once the file holds another`)
			}
			if p.Root == "" || p.Location == nil {
				t.Fatalf("pipeline %q accepted without root or timezone", p.Name)
			}
			for _, s := range p.Stages {
				if s.Kind == "" || s.Plugin == "" || s.Name == "" {
					t.Fatalf("stage accepted without kind, plugin or name: %+v", s)
				}
				// What the engine does next with the plugin's schema.
				set, d := s.Decode(fuzzSchema)
				if err := loader.WriteDiagnostics(io.Discard, d, 100, false); err != nil {
					t.Fatalf("stage diagnostics do not render: %v", err)
				}
				if !d.HasErrors() {
					if _, err := wire.EncodeConfig(s.Kind, set.Config, fuzzSchema); err != nil {
						t.Fatalf("a stage decoded without error does not encode: %v", err)
					}
				}
			}
		}
	})
}

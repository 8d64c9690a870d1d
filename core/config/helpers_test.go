package config_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/spec"
)

// writeFile writes a file under dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// load writes src as pipeline.hcl in a fresh directory and loads it. Load
// must never panic: a panic is reported as a test failure with the source.
func load(t *testing.T, src string, vars map[string]string) (f *config.File, diags hcl.Diagnostics) {
	t.Helper()
	path := writeFile(t, t.TempDir(), "pipeline.hcl", src)
	return loadPath(t, path, vars)
}

func loadPath(t *testing.T, path string, vars map[string]string) (f *config.File, diags hcl.Diagnostics) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Load panicked: %v", r)
		}
	}()
	return config.NewLoader(vars).Load(path)
}

// mustLoad loads src and fails on any error diagnostic.
func mustLoad(t *testing.T, src string, vars map[string]string) *config.File {
	t.Helper()
	f, diags := load(t, src, vars)
	if diags.HasErrors() {
		t.Fatalf("Load: unexpected errors:\n%s", diagText(diags))
	}
	return f
}

func diagText(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		line := 0
		if d.Subject != nil {
			line = d.Subject.Start.Line
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		b.WriteString(sev + " line " + strconv.Itoa(line) + ": " + d.Summary + ": " + d.Detail + "\n")
	}
	return b.String()
}

// lineOf is the 1-based number of the first line of src containing marker,
// so expected diagnostic lines follow the source as it is edited.
func lineOf(t *testing.T, src, marker string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in source", marker)
	return 0
}

// wantDiag finds the diagnostic of the given severity whose summary or detail
// contains every fragment, and checks the line its subject starts on.
func wantDiag(t *testing.T, diags hcl.Diagnostics, sev hcl.DiagnosticSeverity, line int, fragments ...string) *hcl.Diagnostic {
	t.Helper()
	for _, d := range diags {
		if d.Severity != sev {
			continue
		}
		text := d.Summary + "\n" + d.Detail
		ok := true
		for _, f := range fragments {
			if !strings.Contains(text, f) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if line > 0 {
			if d.Subject == nil {
				t.Errorf("diagnostic %q has no subject; want line %d", d.Summary, line)
			} else if d.Subject.Start.Line != line {
				t.Errorf("diagnostic %q points at line %d, want %d", d.Summary, d.Subject.Start.Line, line)
			}
		}
		return d
	}
	t.Errorf("no diagnostic containing %q; got:\n%s", fragments, diagText(diags))
	return nil
}

func countErrors(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// probeSchema accepts any value in `value`, so a test can read what an
// expression evaluated to through the public Stage.Decode.
var probeSchema = spec.Schema{Attributes: []spec.Attribute{{Name: "value", Type: spec.TypeOf(cty.DynamicPseudoType, false)}}}

// probe loads preamble plus a pipeline whose notify stage holds
// `value = expr`, and returns the decoded value.
func probe(t *testing.T, dir, preamble, expr string, vars map[string]string) (cty.Value, hcl.Diagnostics) {
	t.Helper()
	src := preamble + "\npipeline \"p\" {\n  root = \"/backups\"\n  stage \"notify\" \"probe\" {\n    value = " + expr + "\n  }\n}\n"
	f, diags := loadPath(t, writeFile(t, dir, "pipeline.hcl", src), vars)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	p, err := f.Pipeline("p")
	if err != nil {
		t.Fatal(err)
	}
	s := p.StagesOf("notify")[0]
	set, d := s.Decode(probeSchema)
	if d.HasErrors() {
		return cty.NilVal, append(diags, d...)
	}
	return set.Config.GetAttr("value"), diags
}

package config_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/config"
)

func TestVariables(t *testing.T) {
	const decls = `
variable "days" {
  type    = number
  default = 7
}
variable "to" {
  type    = list(string)
  default = ["ops@example.org"]
}
variable "name" {
  default = "moodle"
}
variable "flag" {
  type    = bool
  default = false
}
`
	tests := []struct {
		name string
		vars map[string]string
		env  map[string]string
		expr string
		want cty.Value
	}{
		{"number default", nil, nil, "var.days", cty.NumberIntVal(7)},
		{"list default", nil, nil, "var.to", cty.ListVal([]cty.Value{cty.StringVal("ops@example.org")})},
		{"untyped default", nil, nil, "var.name", cty.StringVal("moodle")},
		{"--var number parsed from text", map[string]string{"days": "14"}, nil, "var.days", cty.NumberIntVal(14)},
		{"--var list parsed from text", map[string]string{"to": `["a@x", "b@y"]`}, nil, "var.to",
			cty.ListVal([]cty.Value{cty.StringVal("a@x"), cty.StringVal("b@y")})},
		{"--var bool parsed from text", map[string]string{"flag": "true"}, nil, "var.flag", cty.True},
		{"--var untyped stays text", map[string]string{"name": "[1]"}, nil, "var.name", cty.StringVal("[1]")},
		{"MBK_VAR_ number", nil, map[string]string{"MBK_VAR_days": "21"}, "var.days", cty.NumberIntVal(21)},
		{"MBK_VAR_ list", nil, map[string]string{"MBK_VAR_to": `["c@z"]`}, "var.to", cty.ListVal([]cty.Value{cty.StringVal("c@z")})},
		{"--var wins over MBK_VAR_", map[string]string{"days": "3"}, map[string]string{"MBK_VAR_days": "21"}, "var.days", cty.NumberIntVal(3)},
		{"used in a template", map[string]string{"days": "5"}, nil, `"keep ${var.days} days"`, cty.StringVal("keep 5 days")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, diags := probe(t, t.TempDir(), decls, tt.expr, tt.vars)
			if diags.HasErrors() {
				t.Fatalf("unexpected errors:\n%s", diagText(diags))
			}
			if !got.RawEquals(tt.want) {
				t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestVariableErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		vars   map[string]string
		env    map[string]string
		marker string // the line the error points at; "" for none
		frags  []string
	}{
		{
			name:   "no value",
			src:    "variable \"password\" {\n  type = string\n}\n",
			marker: `variable "password"`,
			frags:  []string{"Variable has no value", "--var password=VALUE", "MBK_VAR_password"},
		},
		{
			name:   "number from bad text",
			src:    "variable \"days\" {\n  type = number\n  default = 7\n}\n",
			vars:   map[string]string{"days": "a week"},
			marker: `variable "days"`,
			frags:  []string{"Invalid value for variable", "--var days"},
		},
		{
			name:   "MBK_VAR_ of the wrong type",
			src:    "variable \"days\" {\n  type = number\n  default = 7\n}\n",
			env:    map[string]string{"MBK_VAR_days": `["x"]`},
			marker: `variable "days"`,
			frags:  []string{"Variable \"days\" must be number"},
		},
		{
			name:   "default of the wrong type",
			src:    "variable \"days\" {\n  type = number\n  default = \"seven\"\n}\n",
			marker: `default = "seven"`,
			frags:  []string{"Variable \"days\" must be number"},
		},
		{
			name:  "undeclared --var",
			src:   "variable \"days\" {\n  default = 7\n}\n",
			vars:  map[string]string{"dayz": "3"},
			frags: []string{"Undeclared variable", "--var dayz"},
		},
		{
			name:   "declared twice",
			src:    "variable \"a\" {\n  default = 1\n}\nvariable \"a\" {\n  default = 2\n}\n",
			marker: "", // the second declaration; checked below by count
			frags:  []string{"Duplicate variable", `"a"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			src := tt.src + "pipeline \"p\" {\n  root = \"/b\"\n}\n"
			_, diags := load(t, src, tt.vars)
			line := 0
			if tt.marker != "" {
				line = lineOf(t, src, tt.marker)
			}
			wantDiag(t, diags, hcl.DiagError, line, tt.frags...)
		})
	}
}

func TestSensitiveVariableIsASecret(t *testing.T) {
	src := `
variable "db_password" {
  type      = string
  sensitive = true
}
variable "plain" {
  default = "not-a-secret"
}
pipeline "p" {
  root = "/b/${var.plain}"
}
`
	f := mustLoad(t, src, map[string]string{"db_password": "s3cr3t-pw"})
	p, _ := f.Pipeline("")
	if got := p.Secrets(); len(got) != 1 || got[0] != "s3cr3t-pw" {
		t.Errorf("Secrets() = %q, want [s3cr3t-pw]", got)
	}
}

func TestLocals(t *testing.T) {
	t.Run("any order, across blocks", func(t *testing.T) {
		pre := `
locals {
  c = "${local.b}-c"
}
locals {
  b = "${local.a}-b"
  d = upper(local.c)
}
locals {
  a = "a${var.n}"
}
variable "n" {
  default = "1"
}
`
		got, diags := probe(t, t.TempDir(), pre, "local.d", nil)
		if diags.HasErrors() {
			t.Fatalf("unexpected errors:\n%s", diagText(diags))
		}
		if want := cty.StringVal("A1-B-C"); !got.RawEquals(want) {
			t.Errorf("local.d = %#v, want %#v", got, want)
		}
	})
	t.Run("circular", func(t *testing.T) {
		src := "locals {\n  a = local.b\n  b = \"${local.c}x\"\n  c = local.a\n  ok = 1\n}\npipeline \"p\" {\n  root = \"/b\"\n}\n"
		_, diags := load(t, src, nil)
		for _, name := range []string{"a", "b", "c"} {
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, "  "+name+" = "), "Circular locals", "local."+name+" ")
		}
		if n := countErrors(diags); n != 3 {
			t.Errorf("got %d errors, want 3 (one per local in the cycle):\n%s", n, diagText(diags))
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		src := "locals {\n  a = 1\n}\nlocals {\n  a = 2\n}\npipeline \"p\" {\n  root = \"/b\"\n}\n"
		_, diags := load(t, src, nil)
		wantDiag(t, diags, hcl.DiagError, 5, "Duplicate local", "local.a")
	})
}

func TestEnvFunction(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		t.Setenv("MBK_TEST_HOST", "db.internal")
		got, diags := probe(t, t.TempDir(), "", `env("MBK_TEST_HOST")`, nil)
		if diags.HasErrors() || !got.RawEquals(cty.StringVal("db.internal")) {
			t.Fatalf("got %#v, %s", got, diagText(diags))
		}
	})
	t.Run("set but empty is set", func(t *testing.T) {
		t.Setenv("MBK_TEST_EMPTY", "")
		got, diags := probe(t, t.TempDir(), "", `env("MBK_TEST_EMPTY", "fallback")`, nil)
		if diags.HasErrors() || !got.RawEquals(cty.StringVal("")) {
			t.Fatalf("got %#v, %s", got, diagText(diags))
		}
	})
	t.Run("unset with fallback", func(t *testing.T) {
		got, diags := probe(t, t.TempDir(), "", `env("MBK_TEST_SURELY_UNSET", "3306")`, nil)
		if diags.HasErrors() || !got.RawEquals(cty.StringVal("3306")) {
			t.Fatalf("got %#v, %s", got, diagText(diags))
		}
	})
	t.Run("unset names the variable", func(t *testing.T) {
		_, diags := probe(t, t.TempDir(), "", `env("MBK_TEST_SURELY_UNSET")`, nil)
		wantDiag(t, diags, hcl.DiagError, 0, "MBK_TEST_SURELY_UNSET", "is not set")
	})
	t.Run("in a variable default", func(t *testing.T) {
		t.Setenv("MBK_TEST_DAYS", "9")
		pre := "variable \"days\" {\n  type = number\n  default = env(\"MBK_TEST_DAYS\")\n}\n"
		got, diags := probe(t, t.TempDir(), pre, "var.days", nil)
		if diags.HasErrors() || !got.RawEquals(cty.NumberIntVal(9)) {
			t.Fatalf("got %#v, %s", got, diagText(diags))
		}
	})
	t.Run("too many arguments", func(t *testing.T) {
		_, diags := probe(t, t.TempDir(), "", `env("A", "b", "c")`, nil)
		wantDiag(t, diags, hcl.DiagError, 0, "at most one fallback")
	})
}

func TestEnvFile(t *testing.T) {
	t.Run("read relative to the file", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "conf/.env", "MBK_TEST_FROM_FILE=from-file\nMBK_TEST_BOTH=file\n")
		t.Setenv("MBK_TEST_BOTH", "shell")
		// The working directory is the package's, not dir: a relative
		// env_file must be found next to the pipeline file anyway.
		pre := "env_file = \".env\"\n"
		src := pre + "pipeline \"p\" {\n  root = \"/b/${env(\"MBK_TEST_FROM_FILE\")}/${env(\"MBK_TEST_BOTH\")}\"\n}\n"
		f, diags := loadPath(t, writeFile(t, dir, "conf/pipeline.hcl", src), nil)
		if len(diags) > 0 {
			t.Fatalf("unexpected diagnostics:\n%s", diagText(diags))
		}
		p, _ := f.Pipeline("p")
		if p.Root != "/b/from-file/shell" {
			t.Errorf("root = %q, want /b/from-file/shell (env_file read, shell wins)", p.Root)
		}
		if f.EnvFile != ".env" {
			t.Errorf("EnvFile = %q", f.EnvFile)
		}
	})
	t.Run("missing is a warning", func(t *testing.T) {
		src := "env_file = \"missing.env\"\npipeline \"p\" {\n  root = env(\"MBK_TEST_ROOT\", \"/fallback\")\n}\n"
		f, diags := load(t, src, nil)
		if diags.HasErrors() {
			t.Fatalf("unexpected errors:\n%s", diagText(diags))
		}
		wantDiag(t, diags, hcl.DiagWarning, 1, "env_file not found", "missing.env")
		if p, _ := f.Pipeline("p"); p.Root != "/fallback" {
			t.Errorf("root = %q", p.Root)
		}
	})
	t.Run("missing, then env() without fallback fails naming the variable", func(t *testing.T) {
		src := "env_file = \"missing.env\"\npipeline \"p\" {\n  root = env(\"MBK_TEST_ROOT\")\n}\n"
		_, diags := load(t, src, nil)
		wantDiag(t, diags, hcl.DiagWarning, 1, "env_file not found")
		wantDiag(t, diags, hcl.DiagError, 3, "MBK_TEST_ROOT")
	})
	t.Run("unreadable is an error", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
			t.Fatal(err)
		}
		src := "env_file = \"adir\"\npipeline \"p\" {\n  root = \"/b\"\n}\n"
		_, diags := loadPath(t, writeFile(t, dir, "p.hcl", src), nil)
		wantDiag(t, diags, hcl.DiagError, 1, "Cannot read env_file")
	})
}

func TestPluginDirRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	src := "plugin_dir = \"plugins\"\npipeline \"p\" {\n  root = \"/b\"\n}\n"
	f, diags := loadPath(t, writeFile(t, dir, "p.hcl", src), nil)
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if want := filepath.Join(dir, "plugins"); f.PluginDir != want {
		t.Errorf("PluginDir = %q, want %q", f.PluginDir, want)
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	b := writeFile(t, dir, "d/b.hcl", "")
	a := writeFile(t, dir, "d/a.hcl", "")
	writeFile(t, dir, "d/notes.txt", "")
	single := writeFile(t, dir, "single.conf", "")
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}

	got, err := config.Expand([]string{filepath.Join(dir, "d"), single})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{a, b, single}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Expand = %q, want %q", got, want)
	}

	if _, err := config.Expand([]string{filepath.Join(dir, "empty")}); err == nil || !strings.Contains(err.Error(), "no *.hcl pipeline files") {
		t.Errorf("empty directory: err = %v", err)
	}
	if _, err := config.Expand([]string{filepath.Join(dir, "nope.hcl")}); err == nil {
		t.Error("missing path: no error")
	}
}

func TestFilePipeline(t *testing.T) {
	f := mustLoad(t, "pipeline \"a\" {\n  root = \"/a\"\n}\npipeline \"b\" {\n  root = \"/b\"\n}\n", nil)
	if p, err := f.Pipeline("b"); err != nil || p.Root != "/b" {
		t.Errorf("Pipeline(b) = %v, %v", p, err)
	}
	if _, err := f.Pipeline(""); err == nil || !strings.Contains(err.Error(), "2 pipelines (a, b)") || !strings.Contains(err.Error(), "--pipeline") {
		t.Errorf("Pipeline(\"\") with two: err = %v", err)
	}
	if _, err := f.Pipeline("c"); err == nil || !strings.Contains(err.Error(), `no pipeline "c"`) {
		t.Errorf("Pipeline(c): err = %v", err)
	}
}

// TestPluginPins: `plugin "NAME" { sha256 = "..." }` pins a binary; every
// mistake in a pin is an error at its line.
func TestPluginPins(t *testing.T) {
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	src := `variable "policy_sum" {
  default = "` + strings.ToUpper(sum) + `"
}
plugin "mysql" {
  sha256 = "` + sum + `"
}
plugin "policy" {
  sha256 = var.policy_sum
}
pipeline "p" {
  root = "/b"
}
`
	f := mustLoad(t, src, nil)
	if len(f.Pins) != 2 || hex.EncodeToString(f.Pins["mysql"]) != sum || hex.EncodeToString(f.Pins["policy"]) != sum {
		t.Errorf("Pins = %x", f.Pins)
	}

	for _, tc := range []struct {
		name, block, marker, summary, detail string
	}{
		{"short", `plugin "mysql" {
  sha256 = "abc123"
}`, "abc123", "Invalid sha256", "64 hexadecimal digits sha256sum prints for the binary mbk-plugin-mysql"},
		{"not hex", `plugin "mysql" {
  sha256 = "` + strings.Repeat("zz", 32) + `"
}`, "zzzz", "Invalid sha256", ""},
		{"missing", `plugin "mysql" {
}`, `plugin "mysql"`, "Missing required argument", "sha256"},
		{"unknown attribute", `plugin "mysql" {
  sha256 = "` + sum + `"
  path   = "/opt/x"
}`, "path", "Unsupported argument", ""},
		{"bad name", `plugin "../x" {
  sha256 = "` + sum + `"
}`, "../x", "Invalid plugin name", "mbk-plugin-NAME"},
		{"duplicate", `plugin "mysql" {
  sha256 = "` + sum + `"
}
plugin "mysql" { # again
  sha256 = "` + sum + `"
}`, "# again", "Duplicate plugin block", "already pinned at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.block + "\npipeline \"p\" {\n  root = \"/b\"\n}\n"
			_, diags := load(t, src, nil)
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, tc.marker), tc.summary, tc.detail)
		})
	}
}

// TestSyntaxErrorsCapped: a file of stray bytes makes a syntax error per
// byte; the first ten are reported, then one that says how many more there
// were. (Each was printed with its line: the fuzzer's 7 KB file of them took
// seconds a try, and its minimization hung CI's fuzz run.)
func TestSyntaxErrorsCapped(t *testing.T) {
	src := "pipeline \"t\" {\n  ro" + strings.Repeat("\x18", 5000) + "ot = \"/tmp/b\"\n}\n"
	_, diags := load(t, src, nil)
	if len(diags) != 11 {
		t.Fatalf("%d diagnostics, want 10 and the one saying how many more", len(diags))
	}
	last := diags[10]
	var more int
	if _, err := fmt.Sscanf(last.Detail, "%d more are not shown", &more); err != nil || last.Severity != hcl.DiagError ||
		last.Summary != "Too many syntax errors" || more < 5000-10 {
		t.Errorf("last diagnostic: %s: %s; want at least %d more", last.Summary, last.Detail, 5000-10)
	}
	// Fewer than the cap: every one reported, nothing added.
	_, diags = load(t, "pipeline \"t\" {\n  ro"+strings.Repeat("\x18", 3)+"ot = \"/tmp/b\"\n}\n", nil)
	if len(diags) < 3 || len(diags) > 10 || diags[len(diags)-1].Summary == "Too many syntax errors" {
		t.Errorf("%d diagnostics for 3 stray bytes, want them all and no more", len(diags))
	}
}

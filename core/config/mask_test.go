package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/spec"
)

// TestDiagnosticsMaskSecrets: a diagnostic quotes the lines it points at and
// the values its expression read; neither shows a secret. Each case puts a
// secret where a diagnostic quotes it: the default of a sensitive variable
// of the wrong type, a function call in a local whose name says secret, a
// sensitive attribute (by the plugin's schema) of the wrong type, a setting
// the plugin refused, a sensitive variable read by a non-sensitive setting
// of the wrong type, and a setting whose error repeats the value. Every
// diagnostic still names the file, the line and the attribute.
func TestDiagnosticsMaskSecrets(t *testing.T) {
	secrets := []string{"Var-S3cret-1", "Local-S3cret-2", "Stage-S3cret-3", "Stage-S3cret-4", "Var-S3cret-5", "Var-S3cret-6"}
	src := `variable "db_password" {
  type      = number
  default   = "Var-S3cret-1"
  sensitive = true
}
variable "pw" {
  default   = "Var-S3cret-5"
  sensitive = true
}
variable "smtp_pass" {
  default   = "Var-S3cret-6"
  sensitive = true
}
locals {
  api_token = upper("Local-S3cret-2", "extra")
}
pipeline "p" {
  root    = "/b"
  timeout = var.smtp_pass
  stage "dump" "mysql" {
    container  = "db"
    password   = ["Stage-S3cret-3"]
    port       = var.pw
    databases  = ["-pStage-S3cret-4"]
  }
}
`
	path := writeFile(t, t.TempDir(), "secret.hcl", src)
	loader := config.NewLoader(nil)
	f, diags := loader.Load(path)
	if f == nil {
		t.Fatalf("no file: %v", diags)
	}
	p, err := f.Pipeline("p")
	if err != nil {
		t.Fatal(err)
	}
	_, d := p.Stages[0].Decode(dbSchema)
	diags = append(diags, d...)
	diags = append(diags, p.Stages[0].PluginDiagnostics(spec.Diagnostics{spec.Errorf("databases", "a password option (-p) is not allowed")})...)

	var b strings.Builder
	if err := loader.WriteDiagnostics(&b, diags, 100, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, sec := range secrets {
		if strings.Contains(out, sec) {
			t.Errorf("the diagnostics show %q", sec)
		}
	}
	for _, want := range []struct{ line, text string }{
		{`default   = "Var-S3cret-1"`, `default   = "************"`},
		{"api_token", `api_token = upper("**************", "*****")`},
		{"password   = [", `password   = ["**************"]`},
		{"databases  = [", `databases  = ["****************"]`},
		{"port       = var.pw", "port       = var.pw"},
		{"timeout = var.smtp_pass", "timeout = var.smtp_pass"},
	} {
		n := lineOf(t, src, want.line)
		if !strings.Contains(out, fmt.Sprintf("on %s line %d", path, n)) || !strings.Contains(out, fmt.Sprintf("%4d: ", n)+srcIndent(src, n)+want.text) {
			t.Errorf("line %d is not quoted as %q", n, want.text)
		}
	}
	if strings.Contains(out, "var.pw as") || strings.Contains(out, "var.smtp_pass as") {
		t.Errorf("the values of sensitive variables are shown:\n%s", out)
	}
	if t.Failed() {
		t.Logf("the diagnostics:\n%s", out)
	}

	t.Run("a file that does not parse", func(t *testing.T) {
		src := "pipeline \"p\" {\n  root = \"/b\"\n  stage \"notify\" \"smtp\" {\n    password = \"Unterminated-S3cret\n  }\n}\n"
		loader := config.NewLoader(nil)
		_, diags := loader.Load(writeFile(t, t.TempDir(), "broken.hcl", src))
		if !diags.HasErrors() {
			t.Fatal("the file parsed")
		}
		var b strings.Builder
		if err := loader.WriteDiagnostics(&b, diags, 100, false); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "S3cret") || !strings.Contains(b.String(), "password = ****") {
			t.Errorf("the value is not masked:\n%s", b.String())
		}
	})

	t.Run("what is not secret is shown", func(t *testing.T) {
		src := "pipeline \"p\" {\n  root    = \"/b\"\n  timeout = \"soon\"\n  stage \"dump\" \"mysql\" {\n    container = \"db\"\n    password  = env(\"DB_PASS_UNSET_FOR_TEST\")\n  }\n}\n"
		loader := config.NewLoader(nil)
		_, diags := loader.Load(writeFile(t, t.TempDir(), "plain.hcl", src))
		var b strings.Builder
		if err := loader.WriteDiagnostics(&b, diags, 100, false); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`timeout = "soon"`, `timeout "soon" is not a positive duration`} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("lacks %q:\n%s", want, b.String())
			}
		}
	})
}

// srcIndent is the leading blanks of line n (1-based) of src.
func srcIndent(src string, n int) string {
	l := strings.Split(src, "\n")[n-1]
	return l[:len(l)-len(strings.TrimLeft(l, " \t"))]
}

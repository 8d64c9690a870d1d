package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestEnvFileModes: an env_file whose values reach sensitive settings must
// be its user's own and private. Readable by its group: a warning with the
// chmod to run; readable or writable by every user, or owned by another
// user: refused. Each names the file and the variables, never a value. A
// file whose values reach no sensitive setting, or whose variable the
// process environment overrides, is not held to it.
func TestEnvFileModes(t *testing.T) {
	const secret = "Env-S3cret-value"
	tests := []struct {
		name     string
		mode     os.FileMode
		uid      int    // -1: unchanged
		password string // the setting's expression
		export   bool
		sev      hcl.DiagnosticSeverity
		summary  string
		detail   string
	}{
		{"private", 0o600, -1, `env("DB_PASS")`, false, 0, "", ""},
		{"group-readable", 0o640, -1, `env("DB_PASS")`, false, hcl.DiagWarning, "env_file is readable by its group", "(mode 0640) and holds DB_PASS, which reaches sensitive settings"},
		{"world-readable", 0o644, -1, `env("DB_PASS")`, false, hcl.DiagError, "env_file is open to every user", "(mode 0644) and holds DB_PASS, which reaches sensitive settings. Run: chmod 600 "},
		{"world-writable", 0o602, -1, `env("DB_PASS")`, false, hcl.DiagError, "env_file is open to every user", "mode 0602"},
		{"another user's", 0o600, 65534, `env("DB_PASS")`, false, hcl.DiagError, "env_file belongs to another user", "is owned by uid 65534, not by the user mbk runs as"},
		{"world-readable, but no secret from it", 0o644, -1, `"a-literal-password"`, false, 0, "", ""},
		{"world-readable, but the environment wins", 0o644, -1, `env("DB_PASS")`, true, 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			env := writeFile(t, dir, "site.env", "DB_PASS="+secret+"\nDB_HOST=db.example.org\n")
			if err := os.Chmod(env, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.uid >= 0 {
				if os.Geteuid() != 0 {
					t.Fatal("giving a file to another user takes root: run as root (CI does)")
				}
				if err := os.Chown(env, tc.uid, tc.uid); err != nil {
					t.Fatal(err)
				}
			}
			if tc.export {
				t.Setenv("DB_PASS", "exported-"+secret)
			}
			src := "env_file = \"site.env\"\npipeline \"p\" {\n  root = \"/b\"\n  stage \"dump\" \"mysql\" {\n    container = env(\"DB_HOST\")\n    password  = " + tc.password + "\n  }\n}\n"
			f, diags := loadPath(t, writeFile(t, dir, "p.hcl", src), nil)
			if diags.HasErrors() {
				t.Fatal(diagText(diags))
			}
			p, _ := f.Pipeline("p")
			set, d := p.Stages[0].Decode(dbSchema)
			if d.HasErrors() {
				t.Fatal(diagText(d))
			}
			got := f.CheckEnvFile(append(p.Secrets(), set.Secrets...))
			if tc.summary == "" {
				if len(got) != 0 {
					t.Fatalf("want nothing, got:\n%s", diagText(got))
				}
				return
			}
			d0 := wantDiag(t, got, tc.sev, lineOf(t, src, "env_file"), tc.summary, tc.detail, env)
			if d0 != nil && strings.Contains(d0.Detail, secret) {
				t.Errorf("the diagnostic shows the value: %s", d0.Detail)
			}
			if tc.sev == hcl.DiagWarning || tc.sev == hcl.DiagError && tc.uid < 0 {
				wantDiag(t, got, tc.sev, 0, "Run: chmod 600 "+env)
			}
			if tc.uid >= 0 {
				wantDiag(t, got, tc.sev, 0, "chown 0 "+env+" && chmod 600 "+env)
			}
		})
	}
}

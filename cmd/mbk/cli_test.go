package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The pipelines the project ships must always validate: the README tells
// users to start from them.
func TestShippedPipelinesValidate(t *testing.T) {
	dir, err := filepath.Abs("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"MYSQL_PASSWORD=x", "SMTP_USER=backups@example.com", "SMTP_PASSWORD=y"}
	r := mbk(t, runOpts{env: env}, "validate", dir)
	if r.code != 0 {
		t.Fatalf("validate pipelines/: %s", r)
	}
	for _, want := range []string{`pipeline "testing"`, `pipeline "production"`, `pipeline "demo"`, `schedule "0 2 * * *"`, `schedule "0 3 * * *"`, "3 file(s) valid"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("validate output lacks %q\n%s", want, r)
		}
	}
	// Without the secrets, the error names the variable and the file.
	r = mbk(t, runOpts{}, "validate", filepath.Join(dir, "production.hcl"))
	if r.code != 1 || !strings.Contains(r.stderr, "MYSQL_PASSWORD is not set") {
		t.Fatalf("want an error naming MYSQL_PASSWORD: %s", r)
	}
}

func TestPluginsVersionAndHelp(t *testing.T) {
	r := mbk(t, runOpts{}, "plugins")
	if r.code != 0 {
		t.Fatalf("plugins: %s", r)
	}
	for _, want := range []string{"mysql", "volume", "smtp", "sha256", "policy", "built-in", "dump", "archive", "notify"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mbk plugins lacks %q\n%s", want, r)
		}
	}
	if v := mbk(t, runOpts{}, "version"); v.code != 0 || !strings.Contains(v.stdout, "plugin protocol 1") {
		t.Errorf("version: %s", v)
	}
	for _, cmd := range []string{"validate", "run", "list", "info", "verify", "restore", "prune", "notify", "plugins"} {
		if h := mbk(t, runOpts{}, cmd, "--help"); h.code != 0 || !strings.Contains(h.stdout, "Usage:") {
			t.Errorf("%s --help: %s", cmd, h)
		}
	}
	if c := mbk(t, runOpts{}, "completion", "bash"); c.code != 0 || !strings.Contains(c.stdout, "bash completion") {
		t.Errorf("completion: %s", c)
	}
	if u := mbk(t, runOpts{}, "run"); u.code != 2 {
		t.Errorf("a usage mistake should exit 2: %s", u)
	}
}

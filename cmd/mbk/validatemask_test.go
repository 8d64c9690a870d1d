package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidateMasksSecrets: `mbk validate` quotes the source line of every
// diagnostic, and none shows a secret: the default of a sensitive variable
// of the wrong type; the real plugins' sensitive settings given the wrong
// type (mysql's password, s3's secret_key, sftp's key_passphrase, by their
// schemas' Sensitive flags); a setting the mysql plugin refuses because it
// carries a password (extra_args = ["-cpSECRET"]); a sensitive variable
// read by a setting of the wrong type (HCL would print its value). The
// lines are still quoted, their secret parts starred, and each error names
// the file and line.
func TestValidateMasksSecrets(t *testing.T) {
	secrets := map[string]string{
		"variable": "Var-Secret-7Qz", "password": "Lit-Secret-8Qz", "extra_args": "Lit-Secret-9Qz",
		"secret_key": "S3-Secret-1Qz", "key_passphrase": "Pass-Secret-2Qz", "port": "Var-Secret-3Qz",
	}
	dir := t.TempDir()
	src := fmt.Sprintf(`variable "retention" {
  type      = number
  default   = %q
  sensitive = true
}
variable "db_port" {
  default   = %q
  sensitive = true
}

pipeline "masked" {
  root = %q

  stage "dump" "mysql" {
    container  = "db"
    database   = "moodle"
    password   = [%q]
  }
  stage "dump" "mysql" "third" {
    container  = "db"
    database   = "third"
    extra_args = ["--hex-blob", "-cp%s"]
  }
  stage "dump" "mysql" "second" {
    container = "db"
    database  = "other"
    port      = var.db_port
  }
  stage "store" "s3" {
    bucket     = "b"
    access_key = "AKIAEXAMPLE"
    secret_key = [%q]
  }
  stage "store" "sftp" {
    host           = "127.0.0.1"
    user           = "backup"
    key_file       = "/etc/mbk/id_ed25519"
    known_hosts    = "/etc/mbk/known_hosts"
    key_passphrase = { value = %q }
  }
}
`, secrets["variable"], secrets["port"], filepath.Join(dir, "backups"), secrets["password"], secrets["extra_args"], secrets["secret_key"], secrets["key_passphrase"])
	file := writeFile(t, dir, "masked.hcl", src)
	r := mbk(t, runOpts{}, "validate", file)
	if r.code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	for what, sec := range secrets {
		if strings.Contains(r.stdout+r.stderr, sec) {
			t.Errorf("the %s secret is shown:\n%s", what, r.stderr)
		}
	}
	lines := strings.Split(src, "\n")
	for _, c := range []struct{ attr, quoted, says string }{
		{"default   = \"Var-Secret-7Qz\"", `default   = "**************"`, `Variable "retention" must be number`},
		{"password   =", `password   = ["**************"]`, `Inappropriate value for attribute "password"`},
		{"extra_args =", `extra_args = ["**********", "*****************"]`, `dump "mysql" "third" extra_args: extra_args: a password option (-p) is not allowed`},
		{"port      = var.db_port", "port      = var.db_port", `Inappropriate value for attribute "port"`},
		{"secret_key =", `secret_key = ["*************"]`, `Inappropriate value for attribute "secret_key"`},
		{"key_passphrase =", `key_passphrase = { value = "***************" }`, `Inappropriate value for attribute "key_passphrase"`},
	} {
		n := 0
		for i, l := range lines {
			if strings.Contains(l, c.attr) {
				n = i + 1
			}
		}
		want := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(fmt.Sprintf("on %s line %d", file, n)) + `[^\n]*:\n\s+` +
			regexp.QuoteMeta(fmt.Sprintf("%d: ", n)) + `\s*` + regexp.QuoteMeta(c.quoted) + `\n`)
		if !want.MatchString(r.stderr) || !strings.Contains(r.stderr, c.says) {
			t.Errorf("want line %d quoted as %q and %q said", n, c.quoted, c.says)
		}
	}
	if strings.Contains(r.stderr, "var.db_port as") {
		t.Errorf("the value of a sensitive variable is shown:\n%s", r.stderr)
	}
	if t.Failed() {
		t.Logf("validate said:\n%s", r.stderr)
	}
}

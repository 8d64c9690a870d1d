package config_test

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/mbk-backup/mbk/core/config"
)

// pub is a minisign public key (from `mbk key generate`).
const pub = "RWQ20QS2YTip11oGEMFsDrOox2V0/LmHcm1BdXseQzAs/Gv5W6cugGnn"

const sftpStage = `  stage "store" "sftp" "offsite" {
    path = "/sets"
  }
`

// TestSigningBlock: the public key inline or in a file, the private key's
// path resolved against the file's directory, the passphrase kept as a
// secret; and each mistake refused at its line.
func TestSigningBlock(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "keys/mbk.pub", "untrusted comment: minisign public key\n"+pub+"\n")
	t.Setenv("MBK_TEST_SIGN_PASS", "sign-secret-7")
	for _, body := range []string{
		"public_key = \"" + pub + "\"",
		"public_key_file = \"keys/mbk.pub\"",
	} {
		path := writeFile(t, dir, "p.hcl", "pipeline \"p\" {\n  root = \"/b\"\n  signing {\n    private_key = \"keys/mbk.key\"\n    passphrase = env(\"MBK_TEST_SIGN_PASS\")\n    "+body+"\n  }\n}\n")
		f, diags := loadPath(t, path, nil)
		if diags.HasErrors() {
			t.Fatalf("%s:\n%s", body, diagText(diags))
		}
		p, _ := f.Pipeline("p")
		s := p.Signing
		if s == nil || s.PrivateKey != filepath.Join(dir, "keys/mbk.key") || s.Public.String() != pub {
			t.Fatalf("%s: %+v", body, s)
		}
		found := false
		for _, v := range p.Secrets() {
			found = found || v == "sign-secret-7"
		}
		if !found {
			t.Fatalf("the passphrase is not among the secrets: %q", p.Secrets())
		}
	}
	for _, c := range []struct{ body, at, want string }{
		{"private_key = \"/k\"", "signing {", "Missing public key"},
		{"public_key = \"RWnotakey\"", "RWnotakey", "not a minisign public key"},
		{"public_key = \"" + pub + "\"\n    public_key_file = \"/x.pub\"", "public_key_file", "not both"},
		{"public_key_file = \"/nonexistent.pub\"", "public_key_file", "Cannot read public_key_file"},
	} {
		src := "pipeline \"p\" {\n  root = \"/b\"\n  signing {\n    " + c.body + "\n  }\n}\n"
		_, diags := load(t, src, nil)
		wantDiag(t, diags, hcl.DiagError, lineOf(t, src, c.at), c.want)
	}
}

// TestVerifyBlock: schedule, store (the only store stage when left out) and
// read_subset n/t; mistakes refused at their line.
func TestVerifyBlock(t *testing.T) {
	f := mustLoad(t, "pipeline \"p\" {\n  root = \"/b\"\n"+sftpStage+"  verify {\n    schedule = \"30 4 * * *\"\n    read_subset = \"2/7\"\n  }\n}\n", nil)
	p, _ := f.Pipeline("p")
	if v := p.Verify; v == nil || v.Cron == nil || v.Store != "offsite" || v.Subset != (config.Subset{N: 2, T: 7}) {
		t.Fatalf("verify: %+v", p.Verify)
	}
	f = mustLoad(t, "pipeline \"p\" {\n  root = \"/b\"\n"+sftpStage+"  verify {\n    schedule = \"@daily\"\n  }\n}\n", nil)
	if p, _ := f.Pipeline("p"); p.Verify.Subset != (config.Subset{N: 1, T: 1}) {
		t.Fatalf("the default read_subset: %+v", p.Verify.Subset)
	}
	for _, c := range []struct{ stages, body, at, want string }{
		{sftpStage, "schedule = \"every night\"", "every night", "not a cron expression"},
		{sftpStage, "schedule = \"@daily\"\n    read_subset = \"8/7\"", "8/7", "1 <= n <= t"},
		{sftpStage, "schedule = \"@daily\"\n    read_subset = \"half\"", "half", "not n/t"},
		{sftpStage, "schedule = \"@daily\"\n    store = \"s3\"", "verify {", "not \"s3\""},
		{"", "schedule = \"@daily\"", "verify {", "has none"},
		{sftpStage + "  stage \"store\" \"s3\" {\n  }\n", "schedule = \"@daily\"", "verify {", "say which one"},
		{sftpStage, "read_subset = \"1/7\"", "verify {", "schedule"},
	} {
		src := "pipeline \"p\" {\n  root = \"/b\"\n" + c.stages + "  verify {\n    " + c.body + "\n  }\n}\n"
		_, diags := load(t, src, nil)
		wantDiag(t, diags, hcl.DiagError, lineOf(t, src, c.at), c.want)
	}
}

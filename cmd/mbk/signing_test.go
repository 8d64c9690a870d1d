package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

// signedFaulty is a pipeline of the faulty plugin (no Docker) with the given
// signing block ("" for none) and file-level lines.
func signedFaulty(root, signing, head string) string {
	return fmt.Sprintf(`plugin_dir = %q
%s
pipeline "signed" {
  root    = %q
  timeout = "2m"

  stage "dump" "faulty" {
    mode = "ok"
    size = 65536
  }
  %s
}
`, filepath.Join(binDir, "extra"), head, root, signing)
}

func signingBlock(private, public string) string {
	return fmt.Sprintf("signing {\n    private_key     = %q\n    public_key_file = %q\n  }", private, public)
}

// newSet runs the pipeline file and returns the set it made.
func newSet(t *testing.T, file, root string, env ...string) string {
	t.Helper()
	before := sets(t, root)
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("run %s: %s", filepath.Base(file), r)
	}
	after := sets(t, root)
	if len(after) != len(before)+1 {
		t.Fatalf("run %s made no set: %v", filepath.Base(file), after)
	}
	return after[len(after)-1]
}

// TestSignedSets: mbk key generate makes a minisign key pair; a pipeline
// with a signing block signs each set's SHA256SUMS and manifest.json as it
// commits it (stock minisign checks both); verify and restore refuse a set
// that is unsigned, signed by another key or changed since, unless
// --insecure-skip-signature; a machine with the public key alone verifies
// and restores; a key that is not the public key's, or encrypted and given
// the wrong passphrase, fails the run before it copies anything; the
// passphrase shows nowhere.
func TestSignedSets(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	private, public := filepath.Join(dir, "mbk.key"), filepath.Join(dir, "mbk.pub")

	g := mbk(t, runOpts{}, "key", "generate", private)
	if g.code != 0 || !strings.Contains(g.stdout, "public_key  = \"RW") || !strings.Contains(g.stdout, "not encrypted") {
		t.Fatalf("key generate: %s", g)
	}
	for f, mode := range map[string]os.FileMode{private: 0o600, public: 0o644} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want mode %v", f, st, err, mode)
		}
	}
	if g := mbk(t, runOpts{}, "key", "generate", private); g.code != 1 || !strings.Contains(g.stderr, "never overwritten") {
		t.Fatalf("key generate over an existing key: %s", g)
	}

	file := writeFile(t, dir, "signed.hcl", signedFaulty(root, signingBlock(private, public), ""))
	good := newSet(t, file, root)
	setDir := filepath.Join(root, good)
	for _, f := range repo.SignedFiles {
		cmd := exec.Command("minisign", "-V", "-p", public, "-m", f)
		cmd.Dir = setDir
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "set:"+good) {
			t.Fatalf("minisign -Vm %s: %v\n%s", f, err, out)
		}
	}
	if v := mbk(t, runOpts{}, "verify", file, good); v.code != 0 || !strings.Contains(v.stdout, good+": OK") {
		t.Fatalf("verify a signed set: %s", v)
	}

	// Sets the pipeline's key did not sign, made in its root: by a
	// pipeline that signs nothing, and by one with another key.
	unsigned := newSet(t, writeFile(t, dir, "unsigned.hcl", signedFaulty(root, "", "")), root)
	otherDir := t.TempDir()
	if g := mbk(t, runOpts{}, "key", "generate", filepath.Join(otherDir, "other.key")); g.code != 0 {
		t.Fatalf("key generate: %s", g)
	}
	stranger := newSet(t, writeFile(t, dir, "stranger.hcl", signedFaulty(root,
		signingBlock(filepath.Join(otherDir, "other.key"), filepath.Join(otherDir, "other.pub")), "")), root)
	changed := newSet(t, file, root)
	m := filepath.Join(root, changed, repo.ManifestFile)
	b, _ := os.ReadFile(m)
	if err := os.WriteFile(m, []byte(strings.Replace(string(b), `"host": "`, `"host": "forged-`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ set, want string }{
		{unsigned, "SHA256SUMS.minisig: missing: the set is not signed"},
		{stranger, "not by the pipeline's public key"},
		{changed, "manifest.json.minisig: does not verify: manifest.json changed since it was signed"},
	} {
		t.Run("refused: "+c.want, func(t *testing.T) {
			v := mbk(t, runOpts{}, "verify", file, c.set)
			if v.code != 1 || !strings.Contains(v.stdout, c.set+": BAD: ") || !strings.Contains(v.stdout, c.want) {
				t.Fatalf("verify: %s", v)
			}
			before := sets(t, root)
			r := mbk(t, runOpts{}, "restore", file, c.set, "--yes")
			if r.code != 1 || !strings.Contains(r.stdout, c.want) || !strings.Contains(r.stderr, "refusing to restore") {
				t.Fatalf("restore: %s", r)
			}
			if after := sets(t, root); len(after) != len(before) {
				t.Fatalf("a refused restore took a safety copy: %v", after)
			}
			if c.set == changed {
				return // its manifest no longer matches its own hashes either
			}
			v = mbk(t, runOpts{}, "verify", file, c.set, "--insecure-skip-signature")
			if v.code != 0 || !strings.Contains(v.stderr, "--insecure-skip-signature") {
				t.Fatalf("verify --insecure-skip-signature: %s", v)
			}
			if r := mbk(t, runOpts{}, "restore", file, c.set, "--yes", "--no-safety-copy", "--insecure-skip-signature"); r.code != 0 {
				t.Fatalf("restore --insecure-skip-signature: %s", r)
			}
		})
	}

	t.Run("a machine with the public key alone verifies and restores", func(t *testing.T) {
		elsewhere := t.TempDir()
		pub := writeFile(t, elsewhere, "mbk.pub", readFile(t, public))
		file2 := writeFile(t, elsewhere, "signed.hcl", signedFaulty(root, signingBlock(filepath.Join(elsewhere, "mbk.key"), pub), ""))
		if v := mbk(t, runOpts{}, "verify", file2, good); v.code != 0 {
			t.Fatalf("verify: %s", v)
		}
		r := mbk(t, runOpts{}, "restore", file2, good, "--yes")
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "the safety copy is not signed") {
			t.Fatalf("restore: %s", r)
		}
		safety := sets(t, root)[len(sets(t, root))-1]
		if _, err := os.Stat(filepath.Join(root, safety, repo.SumsFile+repo.SignatureExt)); err == nil {
			t.Fatalf("the safety copy %s made without the private key is signed", safety)
		}
		if r := mbk(t, runOpts{}, "run", file2); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "no such file") {
			t.Fatalf("a run without the private key: %s", r)
		}
	})

	t.Run("a private key that is not the public key's fails the run", func(t *testing.T) {
		file3 := writeFile(t, t.TempDir(), "mismatch.hcl", signedFaulty(root, signingBlock(filepath.Join(otherDir, "other.key"), public), ""))
		before := sets(t, root)
		r := mbk(t, runOpts{}, "run", file3)
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "does not match the signing block's public key") {
			t.Fatalf("run: %s", r)
		}
		if after := sets(t, root); len(after) != len(before) {
			t.Fatalf("a set was committed: %v", after)
		}
	})

	t.Run("an encrypted key: its passphrase from env_file, shown nowhere", func(t *testing.T) {
		const pass = "Pass-4f9a2c77e1-not-anywhere"
		kdir := t.TempDir()
		g := mbk(t, runOpts{env: []string{"KEYPASS=" + pass}}, "key", "generate", filepath.Join(kdir, "enc.key"), "--passphrase-env", "KEYPASS")
		if g.code != 0 || !strings.Contains(g.stdout, `passphrase  = env("KEYPASS")`) || strings.Contains(g.stdout+g.stderr, pass) {
			t.Fatalf("key generate --passphrase-env: %s", g)
		}
		writeFile(t, kdir, "sign.env", "KEYPASS="+pass+"\n")
		encRoot := filepath.Join(kdir, "backups")
		block := strings.Replace(signingBlock(filepath.Join(kdir, "enc.key"), filepath.Join(kdir, "enc.pub")), "\n  }", "\n    passphrase      = env(\"KEYPASS\")\n  }", 1)
		file4 := writeFile(t, kdir, "enc.hcl", signedFaulty(encRoot, block, `env_file = "sign.env"`))
		r := mbk(t, runOpts{}, "run", file4, "--log-level", "trace")
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		if strings.Contains(r.stdout+r.stderr, pass) {
			t.Fatalf("the passphrase is in the output: %s", r)
		}
		set := sets(t, encRoot)[0]
		filepath.Walk(encRoot, func(path string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && strings.Contains(readFile(t, path), pass) {
				t.Errorf("the passphrase is in %s", path)
			}
			return nil
		})
		if v := mbk(t, runOpts{}, "verify", file4, set); v.code != 0 {
			t.Fatalf("verify: %s", v)
		}
	})
}

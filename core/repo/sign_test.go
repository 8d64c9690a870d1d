package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/stream"
)

// signedSet writes a small complete set (one gzip SQL dump, optionally
// age-encrypted) into a new directory named set, and signs it with key.
func signedSet(t *testing.T, set string, key minisign.PrivateKey, recipients []age.Recipient) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), set)
	mkdir(t, dir)
	enc := ""
	if len(recipients) > 0 {
		enc = "age"
	}
	file := "moodle_" + set + ".sql" + stream.Ext("gzip", enc != "")
	s, err := stream.NewSink(filepath.Join(dir, file), "gzip", 0, recipients)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("CREATE TABLE t (a int);\n-- Dump completed on 2026-12-01 03:00:01\n")); err != nil {
		t.Fatal(err)
	}
	res, err := s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.WriteSums(dir, []repo.Sum{{File: file, Hex: res.SHA256}}); err != nil {
		t.Fatal(err)
	}
	m := &repo.Manifest{Format: 1, Pipeline: "p", Set: set, Status: repo.StatusComplete,
		Artifacts: []repo.Artifact{{Stage: "dump", File: file, Format: "sql", Compression: "gzip", Encryption: enc,
			Size: res.Size, SHA256: res.SHA256, RawSize: res.RawSize, RawXXH64: res.RawXXH64}}}
	if err := repo.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	if err := repo.Sign(dir, set, key); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newKey(t *testing.T) (minisign.PublicKey, minisign.PrivateKey) {
	t.Helper()
	pub, key, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}

// TestSignatures: a set signed at commit verifies with its public key, and
// every way of making a set the key did not sign is a problem naming the
// signature: none at all, another key, a file changed after signing, a
// signature moved to another set or to the other file.
func TestSignatures(t *testing.T) {
	const set = "2026-12-01_03-00-00"
	pub, key := newKey(t)
	otherPub, otherKey := newKey(t)

	dir := signedSet(t, set, key, nil)
	if probs := repo.CheckSignature(dir, pub); len(probs) > 0 {
		t.Fatalf("a freshly signed set: %v", probs)
	}
	for _, f := range repo.SignedFiles {
		st, err := os.Stat(filepath.Join(dir, f+repo.SignatureExt))
		if err != nil || st.Mode().Perm() != repo.FileMode {
			t.Fatalf("%s%s: %v %v", f, repo.SignatureExt, st, err)
		}
	}

	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string) string // returns the set's directory to check
		pub    minisign.PublicKey
		want   string
	}{
		{"unsigned", func(t *testing.T, dir string) string {
			for _, f := range repo.SignedFiles {
				os.Remove(filepath.Join(dir, f+repo.SignatureExt))
			}
			return dir
		}, pub, "missing: the set is not signed"},
		{"checked with another public key", func(t *testing.T, dir string) string { return dir }, otherPub, "not by the pipeline's public key"},
		{"re-signed by another key", func(t *testing.T, dir string) string {
			if err := repo.Sign(dir, set, otherKey); err != nil {
				t.Fatal(err)
			}
			return dir
		}, pub, "not by the pipeline's public key"},
		{"manifest changed after signing", func(t *testing.T, dir string) string {
			b, _ := os.ReadFile(filepath.Join(dir, repo.ManifestFile))
			write(t, filepath.Join(dir, repo.ManifestFile), strings.Replace(string(b), `"encryption"`, `"encryptio"`, 1)+" ")
			return dir
		}, pub, "manifest.json changed since it was signed"},
		{"SHA256SUMS changed after signing", func(t *testing.T, dir string) string {
			f, _ := os.OpenFile(filepath.Join(dir, repo.SumsFile), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(strings.Repeat("0", 64) + "  DB_INFO.txt\n")
			f.Close()
			return dir
		}, pub, "SHA256SUMS changed since it was signed"},
		{"the signatures swapped between the two files", func(t *testing.T, dir string) string {
			a, b := filepath.Join(dir, repo.SumsFile+repo.SignatureExt), filepath.Join(dir, repo.ManifestFile+repo.SignatureExt)
			ab, _ := os.ReadFile(a)
			bb, _ := os.ReadFile(b)
			write(t, a, string(bb))
			write(t, b, string(ab))
			return dir
		}, pub, "changed since it was signed"},
		{"a whole signed set renamed as another set", func(t *testing.T, dir string) string {
			moved := filepath.Join(filepath.Dir(dir), "2026-12-02_03-00-00")
			if err := os.Rename(dir, moved); err != nil {
				t.Fatal(err)
			}
			return moved
		}, pub, `of set "` + set + `", not`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.tamper(t, signedSet(t, set, key, nil))
			probs := repo.CheckSignature(dir, c.pub)
			found := false
			for _, p := range probs {
				found = found || strings.HasSuffix(p.File, repo.SignatureExt) && strings.Contains(p.Reason, c.want)
			}
			if !found {
				t.Fatalf("problems %v, want one on a signature saying %q", probs, c.want)
			}
		})
	}

	t.Run("minisign's own key files", func(t *testing.T) {
		plain, _ := key.MarshalText()
		d := t.TempDir()
		encFile, plainFile := filepath.Join(d, "enc.key"), filepath.Join(d, "plain.key")
		write(t, encFile, encryptedKey)
		write(t, plainFile, string(plain))
		for _, c := range []struct{ file, pass, wantErr string }{
			{plainFile, "", ""},
			{encFile, "", "is encrypted: set the signing block's passphrase"},
			{encFile, "not the passphrase", "the passphrase does not decrypt it"},
			{filepath.Join(d, "absent.key"), "", "no such file"},
		} {
			got, err := repo.ReadSigningKey(c.file, c.pass)
			switch {
			case c.wantErr == "" && (err != nil || !got.Equal(key)):
				t.Errorf("%s: %v", c.file, err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("%s with %q: got %v, want %q", c.file, c.pass, err, c.wantErr)
			case err != nil && c.pass != "" && strings.Contains(err.Error(), c.pass):
				t.Errorf("the error shows the passphrase: %v", err)
			}
		}
	})
}

// encryptedKey is a minisign private key encrypted with the passphrase "x"
// (made once: minisign's scrypt takes seconds and a GiB each time; the
// right passphrase is tested end to end, TestSignedSets in cmd/mbk).
const encryptedKey = `untrusted comment: minisign encrypted secret key
RWRTY0IyGVKNTfaawAaHYK2Q10UUJXt/FOfU0suuqTNqyMbx3cgAAAACAAAAAAAAAEAAAAAAshUDlRRPekMib7kW8YqWUdGCYFAsVugt1XiCpvnkMpvHAQ3LcQKkyIENkvrtI9prpUNk6VyK1MNHTYh3hwvw3NAA+LrZxcbtJ0Ol+EZxXyzUsrjU29ge2OuHjkBFrd7xyekLHvZELH4=
`

// TestVerifyRefusesMislabelledEncryption: the manifest's word on each
// artifact's encryption must match the file. A plaintext file where the
// manifest says age (a downgrade), or an age file it calls plaintext, is
// reported, even when SHA256SUMS and the manifest's hashes were rewritten
// to match.
func TestVerifyRefusesMislabelledEncryption(t *testing.T) {
	const set = "2026-12-01_03-00-00"
	_, key := newKey(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	swapEncryption := func(t *testing.T, dir, from, to string) {
		t.Helper()
		b, _ := os.ReadFile(filepath.Join(dir, repo.ManifestFile))
		out := strings.Replace(string(b), `"encryption": "`+from+`"`, `"encryption": "`+to+`"`, 1)
		if from == "" {
			out = strings.Replace(string(b), `"compression": "gzip",`, `"compression": "gzip", "encryption": "`+to+`",`, 1)
		} else if to == "" {
			out = strings.Replace(string(b), `"encryption": "`+from+`",`, "", 1)
		}
		if out == string(b) {
			t.Fatal("the manifest was not changed")
		}
		write(t, filepath.Join(dir, repo.ManifestFile), out)
	}
	t.Run("good sets verify", func(t *testing.T) {
		for _, r := range [][]age.Recipient{nil, {id.Recipient()}} {
			if probs := repo.Verify(context.Background(), signedSet(t, set, key, r), nil, nil); len(probs) > 0 {
				t.Fatalf("recipients %v: %v", r, probs)
			}
		}
	})
	t.Run("a plaintext file the manifest calls age", func(t *testing.T) {
		dir := signedSet(t, set, key, nil)
		swapEncryption(t, dir, "", "age")
		probs := repo.Verify(context.Background(), dir, nil, nil)
		if len(probs) != 1 || !strings.Contains(probs[0].Reason, "not an age file: a downgraded set") {
			t.Fatalf("got %v", probs)
		}
	})
	t.Run("an age file the manifest calls plaintext", func(t *testing.T) {
		dir := signedSet(t, set, key, []age.Recipient{id.Recipient()})
		swapEncryption(t, dir, "age", "")
		probs := repo.Verify(context.Background(), dir, nil, nil)
		if len(probs) != 1 || !strings.Contains(probs[0].Reason, "encrypted with age, but the manifest says it is not") {
			t.Fatalf("got %v", probs)
		}
	})
	t.Run("an age file's content swapped for plaintext", func(t *testing.T) {
		dir := signedSet(t, set, key, []age.Recipient{id.Recipient()})
		m, _ := repo.ReadManifest(dir)
		path := filepath.Join(dir, m.Artifacts[0].File)
		b, _ := os.ReadFile(path)
		if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
			t.Fatal("not an age file to begin with")
		}
		write(t, path, "\x1f\x8b plain")
		probs := repo.Verify(context.Background(), dir, nil, nil)
		if len(probs) != 1 || !strings.Contains(probs[0].Reason, "a downgraded set") {
			t.Fatalf("got %v", probs)
		}
	})
}

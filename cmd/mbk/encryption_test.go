package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/repo"
)

func TestEncryptedSets(t *testing.T) {
	s := newSite(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	idFile := writeFile(t, dir, "key.txt", id.String()+"\n")
	wrongFile := writeFile(t, dir, "wrong.txt", stranger.String()+"\n")
	root := filepath.Join(dir, "backups")
	pipeline := strings.Replace(fmt.Sprintf(sitePipeline, root, s.db.Container, s.volume, ""),
		`  timeout  = "10m"`, fmt.Sprintf("  timeout  = \"10m\"\n\n  encryption {\n    recipients = [%q]\n  }", id.Recipient().String()), 1)
	file := writeFile(t, dir, "enc.hcl", pipeline)

	r := mbk(t, runOpts{env: s.env()}, "run", file)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	set := sets(t, root)[0]
	setDir := filepath.Join(root, set)
	m, err := repo.ReadManifest(setDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Artifacts {
		if a.Encryption != "age" || !strings.HasSuffix(a.File, ".gz.age") {
			t.Fatalf("artifact not encrypted: %+v", a)
		}
		b, _ := os.ReadFile(filepath.Join(setDir, a.File))
		if !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) {
			t.Fatalf("%s is not an age file", a.File)
		}
	}
	sql, _ := os.ReadFile(filepath.Join(setDir, m.Artifacts[0].File))
	if bytes.Contains(sql, []byte("CREATE TABLE")) {
		t.Fatal("the dump is readable without the key")
	}

	t.Run("verify without the key checks the stored bytes", func(t *testing.T) {
		if v := mbk(t, runOpts{env: s.env()}, "verify", file, set); v.code != 0 {
			t.Fatalf("verify: %s", v)
		}
	})
	t.Run("verify with the key reads everything", func(t *testing.T) {
		if v := mbk(t, runOpts{env: s.env()}, "verify", file, set, "--identity", idFile); v.code != 0 {
			t.Fatalf("verify --identity: %s", v)
		}
		if v := mbk(t, runOpts{env: s.env()}, "verify", file, set, "--identity", wrongFile); v.code != 1 || !strings.Contains(v.stdout, "decrypt") {
			t.Fatalf("verify with a wrong key should fail: %s", v)
		}
	})
	t.Run("restore refuses a missing or wrong key before touching anything", func(t *testing.T) {
		s.db.SQL(t, "GRANT ALL ON decrypted.* TO 'moodle'@'%'; GRANT ALL ON decrypted.* TO 'moodle'@'localhost';")
		r := mbk(t, runOpts{env: s.env()}, "restore", file, set, "--yes", "--only", "db", "--target-database", "decrypted")
		if r.code != 2 || !strings.Contains(r.stderr, "--identity") {
			t.Fatalf("without a key: %s", r)
		}
		r = mbk(t, runOpts{env: s.env()}, "restore", file, set, "--yes", "--only", "db", "--target-database", "decrypted", "--identity", wrongFile)
		if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "refusing to restore") {
			t.Fatalf("with a wrong key: %s", r)
		}
		if out := s.db.SQL(t, "SHOW DATABASES LIKE 'decrypted';"); strings.TrimSpace(out) != "" {
			t.Fatal("a refused restore created the database")
		}
	})
	t.Run("restore decrypts while streaming", func(t *testing.T) {
		r := mbk(t, runOpts{env: s.env()}, "restore", file, set, "--yes", "--only", "db", "--target-database", "decrypted", "--identity", idFile)
		if r.code != 0 {
			t.Fatalf("restore: %s", r)
		}
		want := strings.Fields(s.db.SQL(t, "CHECKSUM TABLE moodle.mdl_user;"))[1]
		got := strings.Fields(s.db.SQL(t, "CHECKSUM TABLE decrypted.mdl_user;"))[1]
		if got != want {
			t.Fatalf("checksum %s, want %s", got, want)
		}
	})
}

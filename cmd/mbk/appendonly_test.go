package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// appendOnlyFaulty is a pipeline of the faulty plugin (no Docker) that keeps
// one set and copies each to a store stage with the given body.
func appendOnlyFaulty(root, kind, store string) string {
	return fmt.Sprintf(`plugin_dir = %q

pipeline "offsite" {
  root    = %q
  timeout = "2m"

  stage "dump" "faulty" {
    mode = "ok"
    size = 65536
  }
  stage "retain" "policy" {
    keep_last = 1
  }
  stage "store" %q {
    %s
  }
}
`, filepath.Join(binDir, "extra"), root, kind, store)
}

// storedSets counts the sets mbk list --store shows.
func storedSets(t *testing.T, file, store string, env ...string) int {
	t.Helper()
	l := mbk(t, runOpts{env: env}, "list", file, "--store", store, "--json")
	if l.code != 0 {
		t.Fatalf("list --store %s: %s", store, l)
	}
	return strings.Count(l.stdout, `"set":`)
}

// TestAppendOnlySFTP: with delete = false, mbk uploads to an SFTP account
// whose server refuses remove and rmdir, and never asks it to delete: every
// run succeeds, retention only says what it would delete, and the server
// logs no remove or rmdir. The same account with delete left on fails, so
// the server does refuse. A trusted host with an account that may delete
// expires the old sets with mbk prune --store.
func TestAppendOnlySFTP(t *testing.T) {
	srv := storetest.StartSFTPDenying(t, "remove", "rmdir")
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "offsite.hcl", appendOnlyFaulty(root, "sftp", srv.Stage(srv.Dir)+"\n    delete      = false"))

	for i := 0; i < 3; i++ {
		r := mbk(t, runOpts{}, "run", file)
		if r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
		if i > 0 && !strings.Contains(r.stderr, "delete = false") {
			t.Fatalf("run %d does not say what it left in the store: %s", i, r)
		}
	}
	if n := len(sets(t, root)); n != 1 {
		t.Fatalf("%d local sets, want 1 (keep_last = 1 applies on disk)", n)
	}
	if n := storedSets(t, file, "sftp"); n != 3 {
		t.Fatalf("the store holds %d sets, want all 3", n)
	}
	for _, op := range srv.Operations(t) {
		if strings.Contains(op, "remove") || strings.Contains(op, "rmdir") {
			t.Fatalf("mbk asked the server to delete: %q", op)
		}
	}
	p := mbk(t, runOpts{}, "prune", file, "--store", "sftp")
	if p.code != 0 || strings.Count(p.stdout, "would delete") != 2 || !strings.Contains(p.stderr, "delete = false") {
		t.Fatalf("prune --store on a delete = false store: %s", p)
	}

	t.Run("the account may not delete", func(t *testing.T) {
		withDelete := writeFile(t, t.TempDir(), "offsite.hcl", appendOnlyFaulty(root, "sftp", srv.Stage(srv.Dir)))
		p := mbk(t, runOpts{}, "prune", withDelete, "--store", "sftp")
		if p.code != 1 || !strings.Contains(strings.ToLower(p.stderr), "permission denied") {
			t.Fatalf("prune with an account that may not delete: %s", p)
		}
		if n := storedSets(t, file, "sftp"); n != 3 {
			t.Fatalf("the store holds %d sets after a refused delete, want 3", n)
		}
	})

	t.Run("a trusted host with its own account expires old sets", func(t *testing.T) {
		trusted := storetest.StartSFTP(t)
		tfile := writeFile(t, t.TempDir(), "offsite.hcl", appendOnlyFaulty(filepath.Join(t.TempDir(), "none"), "sftp", trusted.Stage(srv.Dir)))
		p := mbk(t, runOpts{}, "prune", tfile, "--store", "sftp")
		if p.code != 0 || strings.Count(p.stdout, "delete  ") != 2 || !strings.Contains(p.stdout, "2 set(s) deleted") {
			t.Fatalf("prune --store from the trusted host: %s", p)
		}
		if n := storedSets(t, file, "sftp"); n != 1 {
			t.Fatalf("the store holds %d sets after the trusted prune, want 1", n)
		}
	})
}

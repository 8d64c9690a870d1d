package engine_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// storeSite is a pipeline whose sets are copied to a real OpenSSH server
// over SFTP, with one set made and copied.
type storeSite struct {
	*pipeline
	root, set string
	ftp       *storetest.SFTP
	store     *engine.Stage
}

func newStoreSite(t *testing.T) *storeSite {
	t.Helper()
	// Downloads for verification go to the temporary directory: this test's.
	t.Setenv("TMPDIR", t.TempDir())
	ftp := storetest.StartSFTP(t)
	root := newRoot(t)
	pl := prepare(t, root, fmt.Sprintf(`
  stage "dump" "faulty" {
    mode = "ok"
    size = 300000
  }
  stage "checksum" "sha256" {}
  stage "store" "sftp" {
    %s
  }`, ftp.Stage(filepath.Join(ftp.Dir, "sets"))))
	res := pl.backup(t)
	return &storeSite{pipeline: pl, root: root, set: filepath.Base(res.SetDir), ftp: ftp, store: pl.stage(t, sdk.KindStore, "sftp")}
}

// stored is the path of a set's file on the SFTP server's disk.
func (s *storeSite) stored(set, file string) string {
	return filepath.Join(s.ftp.Dir, "sets", set, file)
}

// noDownloadsLeft fails when a download directory is left under dir.
func noDownloadsLeft(t *testing.T, dir string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(dir, repo.DownloadPrefix+"*")); len(left) != 0 {
		t.Errorf("downloads left behind: %v", left)
	}
}

func TestFindStore(t *testing.T) {
	pl := prepare(t, newRoot(t), okDump+`
  stage "store" "sftp" "offsite" {
    host        = "127.0.0.1"
    user        = "backup"
    key_file    = "/nonexistent/key"
    known_hosts = "/nonexistent/known_hosts"
    path        = "/sets"
  }`)
	s, err := engine.FindStore(pl.p, pl.stages, "offsite")
	if err != nil || s != pl.stage(t, sdk.KindStore, "offsite") {
		t.Fatalf("FindStore(offsite) = %v, %v", s, err)
	}
	_, err = engine.FindStore(pl.p, pl.stages, "s3")
	var ns *engine.NoStageError
	if !errors.As(err, &ns) || err.Error() != `pipeline "test" has no store "s3" (it has [offsite])` {
		t.Fatalf("FindStore(s3): %v", err)
	}
	none := prepare(t, newRoot(t), okDump)
	if _, err := engine.FindStore(none.p, none.stages, "offsite"); !errors.As(err, &ns) || err.Error() != `pipeline "test" has no store stage` {
		t.Fatalf("FindStore without a store stage: %v", err)
	}
}

func TestStoreFetchAndVerify(t *testing.T) {
	s := newStoreSite(t)
	ctx := context.Background()
	loc := s.p.Location

	// An upload that stopped before its manifest.json: newer, not complete.
	partial := time.Now().Add(time.Hour).In(loc).Format(repo.SetNameLayout)
	if _, err := s.store.Client.Put(ctx, s.store.Wire, partial, "faulty.bin", 5, strings.NewReader("12345")); err != nil {
		t.Fatal(err)
	}

	t.Run("RemoteSet finds the newest complete set, or one by name", func(t *testing.T) {
		st, err := engine.RemoteSet(ctx, s.store, loc, "")
		if err != nil || st.Name != s.set || !st.Complete() {
			t.Fatalf("newest complete: %+v, %v; want %s", st, err, s.set)
		}
		if st, err := engine.RemoteSet(ctx, s.store, loc, partial); err != nil || st.Name != partial || st.Complete() {
			t.Fatalf("by name: %+v, %v", st, err)
		}
		if _, err := engine.RemoteSet(ctx, s.store, loc, "2001-01-01_00-00-00"); err == nil || err.Error() != `store "sftp" holds no set "2001-01-01_00-00-00"` {
			t.Fatalf("a set the store lacks: %v", err)
		}
	})

	t.Run("Fetch downloads a set that verifies as the local one", func(t *testing.T) {
		st, err := engine.RemoteSet(ctx, s.store, loc, s.set)
		if err != nil {
			t.Fatal(err)
		}
		under := t.TempDir()
		dir, err := engine.Fetch(ctx, s.store, st, under)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(dir) != s.set || !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), repo.DownloadPrefix) {
			t.Errorf("downloaded to %s, want %s/%s*/%s", dir, under, repo.DownloadPrefix, s.set)
		}
		if probs := repo.Verify(ctx, dir, nil, nil); len(probs) != 0 {
			t.Errorf("the download does not verify: %v", probs)
		}
		for _, f := range st.Files {
			local, _ := os.ReadFile(filepath.Join(s.root, s.set, f.Name))
			got, _ := os.ReadFile(filepath.Join(dir, f.Name))
			if f.Name != repo.LogFile && string(got) != string(local) {
				t.Errorf("%s differs from the local set's", f.Name)
			}
		}
		os.RemoveAll(filepath.Dir(dir))
	})

	t.Run("Fetch leaves nothing when the store lists what it does not hold", func(t *testing.T) {
		st, err := engine.RemoteSet(ctx, s.store, loc, s.set)
		if err != nil {
			t.Fatal(err)
		}
		st.Files = append(st.Files, sdk.StoredFile{Name: "zz-missing", Size: 1})
		under := t.TempDir()
		if _, err := engine.Fetch(ctx, s.store, st, under); err == nil || !strings.Contains(err.Error(), "zz-missing") {
			t.Fatalf("want the missing file named, got %v", err)
		}
		st.Files = []sdk.StoredFile{{Name: "../escape", Size: 1}}
		if _, err := engine.Fetch(ctx, s.store, st, under); err == nil || !strings.Contains(err.Error(), "not a plain name") {
			t.Fatalf("want a path refused, got %v", err)
		}
		noDownloadsLeft(t, under)
		if _, err := os.Stat(filepath.Join(filepath.Dir(under), "escape")); err == nil {
			t.Error("a file was written outside the download")
		}
	})

	t.Run("FetchForRestore reads the newest complete set under the root", func(t *testing.T) {
		set, err := engine.FetchForRestore(ctx, s.p, s.store, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Dir(set.Dir))
		if set.Name != s.set || !set.Complete || set.Manifest == nil || set.Manifest.Set != s.set {
			t.Fatalf("got %+v", set)
		}
		if filepath.Dir(filepath.Dir(set.Dir)) != s.root {
			t.Errorf("downloaded to %s, want under the root %s", set.Dir, s.root)
		}
		if got := setsIn(t, s.root); !slices.Equal(got, []string{s.set}) {
			t.Errorf("the download shows as a set: %v", got)
		}
	})

	t.Run("FetchForRestore refuses a set without its manifest", func(t *testing.T) {
		_, err := engine.FetchForRestore(ctx, s.p, s.store, partial)
		if err == nil || !strings.Contains(err.Error(), "not complete (no manifest.json): refusing to restore from it") {
			t.Fatalf("got %v", err)
		}
		noDownloadsLeft(t, s.root)
	})

	t.Run("VerifyStore says which stored set is bad and why", func(t *testing.T) {
		verdicts, err := engine.VerifyStore(ctx, s.store, s.p, "", true, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]engine.StoreVerdict{}
		for _, v := range verdicts {
			got[v.Set] = v
		}
		if len(verdicts) != 2 || !got[s.set].OK() || got[partial].OK() {
			t.Fatalf("want %s good and %s bad, got %+v", s.set, partial, verdicts)
		}

		// One flipped byte in the stored artifact.
		m, err := repo.ReadManifest(filepath.Join(s.root, s.set))
		if err != nil {
			t.Fatal(err)
		}
		name := m.Artifacts[0].File
		artifact := s.stored(s.set, name)
		b, err := os.ReadFile(artifact)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(artifact, b, 0o600); err != nil {
			t.Fatal(err)
		}
		verdicts, err = engine.VerifyStore(ctx, s.store, s.p, s.set, false, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(verdicts) != 1 || verdicts[0].OK() || len(verdicts[0].Problems) == 0 || verdicts[0].Problems[0].File != name {
			t.Fatalf("want %s reported, got %+v", name, verdicts)
		}
		if _, err := engine.VerifyStore(ctx, s.store, s.p, "2001-01-01_00-00-00", false, nil, false); err == nil {
			t.Fatal("a set the store lacks verified")
		}
		noDownloadsLeft(t, os.TempDir())
	})

	t.Run("Sync copies what the store lacks", func(t *testing.T) {
		if err := s.store.Client.DeleteSet(ctx, s.store.Wire, s.set); err != nil {
			t.Fatal(err)
		}
		copies, err := engine.Sync(ctx, s.p, s.stages)
		if err != nil {
			t.Fatal(err)
		}
		if len(copies) != 1 || copies[0].Store != s.store || copies[0].Set != s.set || copies[0].Err != nil {
			t.Fatalf("want %s copied to sftp, got %+v", s.set, copies)
		}
		verdicts, err := engine.VerifyStore(ctx, s.store, s.p, s.set, false, nil, false)
		if err != nil || len(verdicts) != 1 || !verdicts[0].OK() {
			t.Fatalf("the copy does not verify: %+v, %v", verdicts, err)
		}
		if copies, err := engine.Sync(ctx, s.p, s.stages); err != nil || len(copies) != 0 {
			t.Fatalf("a second sync: %+v, %v; want nothing to copy", copies, err)
		}
	})
}

// TestStoreSweepKeepsWhatLandsMeanwhile: a store's pool sweep deletes only
// the blobs that were in its first listing and that no set references. A
// blob uploaded after that listing, for a set the sweep has not seen, is
// left alone; so is one a set references.
func TestStoreSweepKeepsWhatLandsMeanwhile(t *testing.T) {
	s := newStoreSite(t)
	ctx := context.Background()
	blob := func(content string) pool.Blob {
		h := sha1.Sum([]byte(content))
		return pool.Blob{SHA1: hex.EncodeToString(h[:]), Size: int64(len(content))}
	}
	contents := map[pool.Blob]string{}
	put := func(content string) pool.Blob {
		b := blob(content)
		contents[b] = content
		if _, err := s.store.Client.Put(ctx, s.store.Wire, sdk.PoolSet, b.String(), b.Size, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	onServer := func(b pool.Blob) bool {
		_, err := os.Stat(filepath.Join(s.ftp.Dir, "sets", sdk.PoolSet, b.SHA1[:2], b.String()))
		return err == nil
	}
	referenced, unreferenced := put("a file a set references"), put("a file no set references any more")
	refs := fmt.Sprintf("%s %d\n", referenced.SHA1, referenced.Size)
	if _, err := s.store.Client.Put(ctx, s.store.Wire, s.set, pool.RefsFile, int64(len(refs)), strings.NewReader(refs)); err != nil {
		t.Fatal(err)
	}
	var late pool.Blob
	engine.OnSweepStoreMarked(t, func() { late = put("a file another run uploaded meanwhile") })

	sw, err := engine.SweepStore(ctx, s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	if late == (pool.Blob{}) {
		t.Fatal("the sweep never reached its second listing: the test uploaded nothing meanwhile")
	}
	if sw.Blobs != 1 || sw.Kept != 1 || sw.Bytes != unreferenced.Size {
		t.Errorf("swept %d blobs (%d bytes), kept %d; want 1 (%d bytes), 1", sw.Blobs, sw.Bytes, sw.Kept, unreferenced.Size)
	}
	for b, want := range map[pool.Blob]bool{referenced: true, unreferenced: false, late: true} {
		if got := onServer(b); got != want {
			t.Errorf("%q: on the server %v, want %v", contents[b], got, want)
		}
	}
}

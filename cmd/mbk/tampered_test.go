package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/stream"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// retamper rewrites one artifact of a set with new raw content, and the
// manifest and SHA256SUMS to match, as whoever can write to a bucket or a
// copied disk could: the set then passes mbk verify.
func retamper(t *testing.T, setDir, file string, edit func(raw []byte) []byte) {
	t.Helper()
	m, err := repo.ReadManifest(setDir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(setDir, file)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := stream.NewSink(path+".new", "gzip", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(edit(raw)); err != nil {
		t.Fatal(err)
	}
	res, err := sink.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	var sums []repo.Sum
	for i, a := range m.Artifacts {
		if a.File == file {
			m.Artifacts[i].Size, m.Artifacts[i].SHA256, m.Artifacts[i].RawSize, m.Artifacts[i].RawXXH64 = res.Size, res.SHA256, res.RawSize, res.RawXXH64
		}
		sums = append(sums, repo.Sum{File: a.File, Hex: m.Artifacts[i].SHA256})
	}
	if err := repo.WriteManifest(setDir, m); err != nil {
		t.Fatal(err)
	}
	for _, info := range []string{"DB_INFO.txt", "MOODLEDATA_INFO.txt"} {
		if b, err := os.ReadFile(filepath.Join(setDir, info)); err == nil {
			sums = append(sums, repo.Sum{File: info, Hex: sha256Hex(b)})
		}
	}
	if err := repo.WriteSums(setDir, sums); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreTamperedSet: a set whose checksums and manifest were rewritten
// to match a hostile dump (client commands that would run shell commands)
// and a hostile archive (a symlink out of the volume, then a file through
// it) passes mbk verify, yet restoring it over the live site executes
// nothing and writes nothing outside the volume, through the Engine's
// archive API as well as on the host; the restore fails, the site stays in
// maintenance mode, the next run refuses, and the safety copy puts the site
// back exactly.
func TestRestoreTamperedSet(t *testing.T) {
	for _, read := range []string{"auto", "engine"} {
		t.Run("read="+read, func(t *testing.T) { tamperedSet(t, read) })
	}
}

func tamperedSet(t *testing.T, read string) {
	s := newSite(t)
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	hcl := strings.Replace(fmt.Sprintf(safetyPipeline, root, testenv.MaintenanceBlock(s.app), s.db.Container, s.volume, srv.URL),
		`exclude = ["cache", "climaintenance.html"]`, fmt.Sprintf(`exclude = ["cache", "climaintenance.html"]
    read    = %q`, read), 1)
	file := writeFile(t, dir, "safe.hcl", hcl)
	env := append(s.env(), "MBK_PLUGIN_DIR="+filepath.Join(binDir, "extra"))
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("backup: %s", r)
	}
	set := sets(t, root)[0]
	setDir := filepath.Join(root, set)

	outside := t.TempDir() // where the hostile archive points
	marker := filepath.Join(outside, "PWNED")
	retamper(t, setDir, "moodle_"+set+".sql.gz", func(raw []byte) []byte {
		i := bytes.Index(raw, []byte("INSERT INTO"))
		inject := fmt.Sprintf("\\! touch %s\nsystem touch %s-2\nSELECT 1; \\! touch /tmp/in-container-%s\n", marker, marker, set)
		return append(append(append([]byte{}, raw[:i]...), inject...), raw[i:]...)
	})
	retamper(t, setDir, "moodledata_"+set+".tar.gz", func(raw []byte) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(tr)
			must(t, tw.WriteHeader(h))
			_, err = tw.Write(body)
			must(t, err)
		}
		must(t, tw.WriteHeader(&tar.Header{Name: "./escape", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777}))
		must(t, tw.WriteHeader(&tar.Header{Name: "./escape/PWNED-by-tar", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}))
		_, err := tw.Write([]byte("bad"))
		must(t, err)
		must(t, tw.Close())
		return b.Bytes()
	})
	if v := mbk(t, runOpts{env: env}, "verify", file, set); v.code != 0 {
		t.Fatalf("the rewritten set should pass verify (that is the threat): %s", v)
	}

	s.db.SQL(t, "INSERT INTO moodle.mdl_user (username, firstname) VALUES ('late', 'after the backup');")
	before := siteState(t, s)
	r := mbk(t, runOpts{env: env}, "restore", file, set, "--yes", "--clean")
	if r.code != 1 {
		t.Fatalf("the tampered restore should fail: %s", r)
	}
	if !strings.Contains(flat(r.stderr), "line") {
		t.Errorf("the failure does not name the dump's line: %s", r)
	}
	for _, p := range []string{marker, marker + "-2", filepath.Join(outside, "PWNED-by-tar")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("the tampered set wrote %s (%v)", p, err)
		}
	}
	if _, _, code := testenv.Exec(t, s.db.Container, nil, "sh", "-c", "ls /tmp/in-container-* /tmp/PWNED* 2>/dev/null | grep -q ."); code == 0 {
		t.Error("the tampered dump ran a command in the database container")
	}
	if !inMaintenance(t, s) {
		t.Error("the failed restore took the site out of maintenance mode")
	}
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 1 || !strings.Contains(flat(r.stderr+r.stdout), "is unfinished") {
		t.Fatalf("a run after the failed restore: %s", r)
	}
	all := sets(t, root)
	if len(all) != 2 {
		t.Fatalf("want the set and its safety copy, got %v", all)
	}
	if r := mbk(t, runOpts{env: env}, "restore", file, all[1], "--yes", "--clean"); r.code != 0 {
		t.Fatalf("restoring the safety copy: %s", r)
	}
	if got := siteState(t, s); got != before {
		t.Errorf("the safety copy did not put the site back:\n--- before\n%s--- after\n%s", before, got)
	}
	if inMaintenance(t, s) {
		t.Error("still in maintenance mode after the safety copy was restored")
	}
	if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
		t.Fatalf("backups resume: %s", r)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// FuzzRestoreHost feeds the restore path's archive reader (Restore into a
// host directory: the tar stream is checked entry by entry and extracted)
// arbitrary bytes. It must never panic, and nothing may appear, change or
// vanish outside the target directory, whatever the archive says. Seeds:
// small archives built here, good and hostile, and the corpus in
// testdata/fuzz/FuzzRestoreHost. Bounded in CI by `make test-faults`; a
// longer run: go test -run XXX -fuzz FuzzRestoreHost -fuzztime 30m ./plugins/volume/
func FuzzRestoreHost(f *testing.F) {
	f.Add(makeTar(f,
		tarEntry{typ: tar.TypeDir, name: "./", mode: 0o755},
		tarEntry{typ: tar.TypeDir, name: "filedir/ab/", mode: 0o750},
		tarEntry{typ: tar.TypeReg, name: "filedir/ab/abcd", body: "moodle file", mode: 0o640},
		tarEntry{typ: tar.TypeSymlink, name: "lang/link", link: "../filedir/ab/abcd"},
		tarEntry{typ: tar.TypeLink, name: "filedir/ab/hard", link: "filedir/ab/abcd"},
		tarEntry{typ: tar.TypeFifo, name: "pipe"},
	))
	f.Add(makeTar(f, tarEntry{typ: tar.TypeReg, name: "../outside/escape", body: "pwned"}))
	// The target is <base>/in/target: these links lead to <base>/outside.
	f.Add(makeTar(f, tarEntry{typ: tar.TypeSymlink, name: "l", link: "../../outside"}, tarEntry{typ: tar.TypeReg, name: "l/escape", body: "pwned"}))
	f.Add(makeTar(f, tarEntry{typ: tar.TypeSymlink, name: "d/l", link: "../../../outside"}, tarEntry{typ: tar.TypeLink, name: "h", link: "d/l/victim"}))
	f.Add(makeTar(f, tarEntry{typ: tar.TypeReg, name: "a", body: "1"}, tarEntry{typ: tar.TypeDir, name: "a/"}, tarEntry{typ: tar.TypeReg, name: "a/b", body: "2"}))
	f.Add(makeTar(f, tarEntry{typ: tar.TypeChar, name: "null"}))
	truncated := makeTar(f, tarEntry{typ: tar.TypeReg, name: "big", body: strings.Repeat("x", 5000)})
	f.Add(truncated[:1500])
	f.Add([]byte{})
	f.Add([]byte("not a tar at all"))

	p := &plugin{log: hclog.NewNullLogger()}
	s, err := p.Schema(sdk.KindArchive)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, archive []byte) {
		base := scratchDir(t)
		target := filepath.Join(base, "in", "target")
		outside := filepath.Join(base, "outside")
		for _, d := range []string{outside, filepath.Dir(target)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, base, target)
		cfg, err := sdk.NewConfig(sdk.KindArchive, s, map[string]cty.Value{"path": cty.StringVal(target)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = p.Restore(ctx, sdk.RestoreRequest{Config: cfg, Artifact: artifactID, Options: ropts(t, map[string]string{"target_path": target})}, bytes.NewReader(archive))
		if after := snapshot(t, base, target); after != before {
			t.Fatalf("the restore changed things outside its target:\n--- before\n%s--- after\n%s", before, after)
		}
	})
}

// scratchDir is a fresh directory, on tmpfs when the machine has one: the
// restore ends with syncfs, and on a busy disk every iteration would wait
// for it (and for the discards of the cleanup), starving the fuzzer.
func scratchDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "mbk-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// snapshot describes everything below base except target's contents
// (target itself may appear: the restore creates it): path, type, mode,
// size and content of regular files.
func snapshot(t *testing.T, base, target string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == target {
			return fs.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		line := rel + " " + info.Mode().String()
		if info.Mode().IsRegular() {
			b, _ := os.ReadFile(path)
			line += " " + string(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/stream"
)

// levelsPipeline archives one host directory with the volume plugin: the
// cheapest real source, no container and no database. The last %s is the
// compression_level line, or nothing.
const levelsPipeline = `pipeline "levels" {
  root    = %q
  timeout = "2m"

  stage "archive" "volume" {
    path        = %q
    exclude     = []
    compression = %q
%s  }
}
`

// TestCompressionLevelsValidateAgreesWithRun: `mbk validate` is a promise
// that `mbk run` keeps. For every codec in stream's table, every level in its
// range, the levels just outside it (0 and max+1), no level at all, and a
// level with "none", the real validate and the real run must agree: validate
// accepts exactly when run succeeds and commits a set whose artifact the real
// decompressor (gzip, zstd) tests sound and unpacks to the source files. A
// refused level must be refused on its own line, naming the range; nothing is
// committed then. zstd at 7 is the case that once passed validate and failed
// in run ("unknown encoder level").
func TestCompressionLevelsValidateAgreesWithRun(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "moodledata")
	rng := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 48<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	want := map[string][]byte{
		"filedir/ab/cd/abcd0123": random,
		"filedir/12/34/1234abcd": bytes.Repeat([]byte("Curso de matemáticas: Álgebra y geometría.\n"), 2000),
		"lang/es/langconfig.php": []byte(`<?php $string["thislanguage"] = "Español";` + "\n"),
	}
	for name, b := range want {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	type levelCase struct {
		codec stream.Codec
		level string // "" for none given
		ok    bool   // what the table says validate and run must do
	}
	var cases []levelCase
	for _, c := range stream.Codecs() {
		cases = append(cases, levelCase{c, "", true})
		if !c.TakesLevel() {
			cases = append(cases, levelCase{c, "1", false})
			continue
		}
		for l := c.MinLevel - 1; l <= c.MaxLevel+1; l++ {
			cases = append(cases, levelCase{c, fmt.Sprint(l), l >= c.MinLevel && l <= c.MaxLevel})
		}
	}
	if zstd, ok := stream.Lookup("zstd"); !ok {
		t.Fatal("no zstd in stream's table")
	} else if zstd.MaxLevel+1 < 7 {
		cases = append(cases, levelCase{zstd, "7", false}) // the report's case
	}

	for _, tc := range cases {
		name := tc.codec.Name + "/level_" + tc.level
		if tc.level == "" {
			name = tc.codec.Name + "/no_level"
		}
		t.Run(name, func(t *testing.T) {
			caseDir := t.TempDir()
			root := filepath.Join(caseDir, "backups")
			levelLine := ""
			if tc.level != "" {
				levelLine = "    compression_level = " + tc.level + "\n"
			}
			file := writeFile(t, caseDir, "levels.hcl", fmt.Sprintf(levelsPipeline, root, src, tc.codec.Name, levelLine))

			v := mbk(t, runOpts{}, "validate", file)
			r := mbk(t, runOpts{}, "run", file)
			accepted, ran := v.code == 0, r.code == 0
			if accepted != ran {
				t.Fatalf("validate and run disagree: validate exit %d, run exit %d\n--- validate\n%s\n--- run\n%s", v.code, r.code, v, r)
			}
			if accepted != tc.ok {
				t.Fatalf("accepted = %v, want %v for %s at level %q (stream's table: %s)\n--- validate\n%s\n--- run\n%s",
					accepted, tc.ok, tc.codec.Name, tc.level, tc.codec.Levels(), v, r)
			}

			if !accepted {
				if v.code != 1 {
					t.Errorf("validate exit %d, want 1\n%s", v.code, v)
				}
				words := strings.Join(strings.Fields(v.stderr), " ")
				for _, frag := range []string{
					fmt.Sprintf("%s line %d", file, firstLineWith(readFile(t, file), "compression_level")),
					`Invalid value for "compression_level"`,
				} {
					if !strings.Contains(words, frag) {
						t.Errorf("validate does not say %q\n%s", frag, v)
					}
				}
				rangeWords := "takes no compression_level"
				if tc.codec.TakesLevel() {
					rangeWords = tc.codec.Levels()
				}
				if !strings.Contains(words, rangeWords) {
					t.Errorf("validate does not name the valid range (%q)\n%s", rangeWords, v)
				}
				if got := sets(t, root); len(got) != 0 {
					t.Errorf("a refused run committed %q", got)
				}
				return
			}

			got := sets(t, root)
			if len(got) != 1 {
				t.Fatalf("sets after run: %q\n%s", got, r)
			}
			set := got[0]
			artifact := filepath.Join(root, set, "moodledata_"+set+".tar"+tc.codec.Ext)
			tarball := checkArtifact(t, artifact, tc.codec, want)
			if !tc.codec.TakesLevel() {
				return
			}
			// The run compressed at the level given, or without one at
			// the table's default for an archive: the same tar through
			// that level's writer gives the stored file byte for byte,
			// and through any other level a different one.
			level := stream.DefaultLevel(tc.codec.Name, "tar")
			if tc.level != "" {
				fmt.Sscan(tc.level, &level)
			}
			stored, err := os.ReadFile(artifact)
			if err != nil {
				t.Fatal(err)
			}
			for l := tc.codec.MinLevel; l <= tc.codec.MaxLevel; l++ {
				var again bytes.Buffer
				w, err := stream.NewWriter(&again, tc.codec.Name, l)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(tarball)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if same := bytes.Equal(again.Bytes(), stored); same != (l == level) {
					t.Errorf("the artifact equals %s level %d's output: %v; it was meant to be written at level %d", tc.codec.Name, l, same, level)
				}
			}
		})
	}
}

// checkArtifact tests a stored artifact with the real decompressor, whose
// command is the codec's name (gzip, zstd), then unpacks it and compares
// every file with the source.
func checkArtifact(t *testing.T, path string, c stream.Codec, want map[string][]byte) []byte {
	t.Helper()
	var tarball []byte
	if c.TakesLevel() {
		tool, err := exec.LookPath(c.Name)
		if err != nil {
			t.Fatalf("no %s command to check the artifact with (scripts/stack.sh deps installs it): %v", c.Name, err)
		}
		if out, err := exec.Command(tool, "-t", path).CombinedOutput(); err != nil {
			t.Fatalf("%s -t %s: %v\n%s", c.Name, path, err, out)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(tool, "-dc", path)
		cmd.Stderr = &stderr
		if tarball, err = cmd.Output(); err != nil {
			t.Fatalf("%s -dc %s: %v\n%s", c.Name, path, err, stderr.String())
		}
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tarball = b
	}
	tr := tar.NewReader(bytes.NewReader(tarball))
	seen := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not a sound tar: %v", path, err)
		}
		w, ok := want[strings.TrimPrefix(h.Name, "./")]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil || !bytes.Equal(b, w) {
			t.Errorf("%s in %s differs from the source (%v)", h.Name, path, err)
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("%s holds %d of the %d source files", path, seen, len(want))
	}
	return tarball
}

// firstLineWith is the 1-based line of the first line of src holding s.
func firstLineWith(src, s string) int {
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	return 0
}

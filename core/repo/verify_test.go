package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/stream"
)

// TestVerifyRawHash: verify decompresses each artifact and compares the
// result with the manifest's raw hash: XXH64 in sets made now, SHA-256 in
// sets made before. A mismatch is a problem naming the file, even when the
// stored bytes still match SHA256SUMS.
func TestVerifyRawHash(t *testing.T) {
	const set = "2026-11-27_10-00-00"
	raw := []byte(strings.Repeat("INSERT INTO mdl_log VALUES (1,'x');\n", 20000) + "-- Dump completed on 2026-11-27 10:00:01\n")
	rawSHA := sha256.Sum256(raw)
	rawSHAHex := hex.EncodeToString(rawSHA[:])
	for _, comp := range []string{"gzip", "zstd"} {
		dir := filepath.Join(t.TempDir(), set)
		mkdir(t, dir)
		file := "moodle_" + set + ".sql" + stream.Ext(comp, false)
		s, err := stream.NewSink(filepath.Join(dir, file), comp, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(raw); err != nil {
			t.Fatal(err)
		}
		res, err := s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.WriteSums(dir, []repo.Sum{{File: file, Hex: res.SHA256}}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name      string
			xxh, sha  string
			wantProbs string // "" for none
		}{
			{"xxh64 right", res.RawXXH64, "", ""},
			{"xxh64 wrong", flip(res.RawXXH64), "", "does not match the manifest's raw xxh64"},
			{"older set, sha256 right", "", rawSHAHex, ""},
			{"older set, sha256 wrong", "", flip(rawSHAHex), "does not match the manifest's raw sha256"},
		} {
			t.Run(comp+"/"+c.name, func(t *testing.T) {
				m := &repo.Manifest{Format: 1, Pipeline: "p", Set: set, Status: repo.StatusComplete,
					Artifacts: []repo.Artifact{{Stage: "dump", File: file, Format: "sql", Compression: comp,
						Size: res.Size, SHA256: res.SHA256, RawSize: res.RawSize, RawXXH64: c.xxh, RawSHA256: c.sha}}}
				if err := repo.WriteManifest(dir, m); err != nil {
					t.Fatal(err)
				}
				probs := repo.Verify(context.Background(), dir, nil, nil)
				switch {
				case c.wantProbs == "" && len(probs) > 0:
					t.Fatalf("a good set has problems: %v", probs)
				case c.wantProbs != "" && (len(probs) != 1 || probs[0].File != file || !strings.Contains(probs[0].Reason, c.wantProbs)):
					t.Fatalf("problems %v, want one for %s saying %q", probs, file, c.wantProbs)
				}
			})
		}
	}
}

// flip changes the last hex digit.
func flip(h string) string {
	last := "0"
	if h[len(h)-1] == '0' {
		last = "1"
	}
	return h[:len(h)-1] + last
}

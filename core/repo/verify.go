package repo

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"filippo.io/age"
	"github.com/cespare/xxhash/v2"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/stream"
)

// Problem is one thing wrong with a set.
type Problem struct {
	File   string
	Reason string
}

func (p Problem) String() string {
	if p.File == "" {
		return p.Reason
	}
	return p.File + ": " + p.Reason
}

var sumLine = regexp.MustCompile(`^([0-9a-f]{64}) [ *](.+)$`)

// ReadSums parses SHA256SUMS. Anything that is not a well-formed line is an
// error: a garbled list is reported, never trusted.
func ReadSums(dir string) ([]Sum, error) {
	b, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return nil, err
	}
	var out []Sum
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		m := sumLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s line %d is not \"<sha256>  <file>\"", SumsFile, i+1)
		}
		name := m[2]
		if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
			return nil, fmt.Errorf("%s line %d names %q, not a file of the set", SumsFile, i+1, name)
		}
		out = append(out, Sum{File: name, Hex: m[1]})
	}
	return out, nil
}

// Verify checks a set: the manifest, every file against SHA256SUMS and the
// manifest, and each artifact read to its end (the compression trailer, the
// tar end, the SQL dump's completion line). It returns every problem found.
//
// An encrypted artifact is read to its end only with identities; without
// them its stored bytes are still checked against SHA256SUMS.
func Verify(ctx context.Context, dir string, identities []age.Identity, progress func(file string, done int64)) []Problem {
	var probs []Problem
	m, err := ReadManifest(dir)
	if err != nil {
		return []Problem{{File: ManifestFile, Reason: err.Error()}}
	}
	if m.Status != StatusComplete {
		probs = append(probs, Problem{File: ManifestFile, Reason: fmt.Sprintf("status is %q, not complete", m.Status)})
	}
	if m.Set != filepath.Base(dir) {
		probs = append(probs, Problem{File: ManifestFile, Reason: fmt.Sprintf("it describes set %q, not %q", m.Set, filepath.Base(dir))})
	}
	if len(m.Artifacts) == 0 {
		probs = append(probs, Problem{File: ManifestFile, Reason: "it lists no artifact"})
	}
	sums, err := ReadSums(dir)
	if err != nil {
		return append(probs, Problem{File: SumsFile, Reason: err.Error()})
	}
	listed := map[string]string{}
	for _, s := range sums {
		listed[s.File] = s.Hex
	}
	// A file whose encryption is not what the manifest says is not read:
	// its content is not what anyone means to restore.
	mislabelled := map[string]bool{}
	for _, a := range m.Artifacts {
		if h, ok := listed[a.File]; !ok {
			probs = append(probs, Problem{File: a.File, Reason: "in the manifest but not in " + SumsFile})
		} else if h != a.SHA256 {
			probs = append(probs, Problem{File: a.File, Reason: "the manifest and " + SumsFile + " disagree on its sha256"})
		}
		if p := checkEncryption(dir, a); p != nil {
			probs = append(probs, *p)
			mislabelled[a.File] = true
		}
	}
	for _, s := range sums {
		if err := ctx.Err(); err != nil {
			return append(probs, Problem{Reason: err.Error()})
		}
		if mislabelled[s.File] {
			continue
		}
		var art *Artifact
		for i := range m.Artifacts {
			if m.Artifacts[i].File == s.File {
				art = &m.Artifacts[i]
			}
		}
		if p := verifyFile(ctx, dir, s, art, identities, progress); p != nil {
			probs = append(probs, *p)
		}
	}
	return probs
}

func verifyFile(ctx context.Context, dir string, s Sum, a *Artifact, identities []age.Identity, progress func(string, int64)) *Problem {
	f, err := os.Open(filepath.Join(dir, s.File))
	if err != nil {
		return &Problem{File: s.File, Reason: err.Error()}
	}
	defer f.Close()
	h := sha256.New()
	var r io.Reader = io.TeeReader(&progressReader{ctx: ctx, r: f, file: s.File, fn: progress}, h)
	if a != nil && (a.Encryption == "" || len(identities) > 0) {
		if err := readArtifact(r, a, identities); err != nil {
			return &Problem{File: s.File, Reason: err.Error()}
		}
	}
	// Whatever the reader did not need still counts for the hash.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return &Problem{File: s.File, Reason: err.Error()}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.Hex {
		return &Problem{File: s.File, Reason: fmt.Sprintf("sha256 is %s, %s says %s: the file changed since the backup", got, SumsFile, s.Hex)}
	}
	return nil
}

// readArtifact decompresses an artifact to its end and checks its format.
func readArtifact(r io.Reader, a *Artifact, identities []age.Identity) error {
	zr, err := stream.NewReader(r, a.Compression, a.Encryption == "age", identities)
	if err != nil {
		return fmt.Errorf("not readable: %w", err)
	}
	defer zr.Close()
	// The raw hash the manifest has: XXH64, or SHA-256 in older sets.
	var raw hash.Hash = xxhash.New()
	want, name := a.RawXXH64, "raw xxh64"
	if want == "" && a.RawSHA256 != "" {
		raw, want, name = sha256.New(), a.RawSHA256, "raw sha256"
	}
	cr := &wire.CountingReader{R: io.TeeReader(zr, raw)}
	switch a.Format {
	case "tar":
		tr := tar.NewReader(cr)
		for {
			_, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("tar archive broken after %d bytes: %w", cr.N, err)
			}
		}
	case "sql":
		tail, err := lastLine(cr)
		if err != nil {
			return fmt.Errorf("decompress: %w", err)
		}
		if !strings.HasPrefix(tail, "-- Dump completed") {
			return fmt.Errorf("the SQL dump does not end with its \"-- Dump completed\" line: it is truncated")
		}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	if a.RawSize > 0 && cr.N != a.RawSize {
		return fmt.Errorf("decompresses to %d bytes, the manifest says %d", cr.N, a.RawSize)
	}
	if want != "" && hex.EncodeToString(raw.Sum(nil)) != want {
		return fmt.Errorf("decompressed content does not match the manifest's %s", name)
	}
	return nil
}

func lastLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var last []byte
	for {
		line, err := br.ReadSlice('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			last = append(last[:0], t...)
		}
		if err == bufio.ErrBufferFull {
			// A long line (an extended INSERT): keep reading it.
			continue
		}
		if err == io.EOF {
			return string(last), nil
		}
		if err != nil {
			return "", err
		}
	}
}

type progressReader struct {
	ctx  context.Context
	r    io.Reader
	file string
	n    int64
	fn   func(string, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.fn != nil {
		p.fn(p.file, p.n)
	}
	return n, err
}

package stream_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/mbk-backup/mbk/core/stream"
)

// mixed returns n bytes alternating compressible text and random blocks, like
// a dump with blobs: both code paths of the compressors get exercised.
func mixed(n int) []byte {
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	text := []byte("INSERT INTO `mdl_logstore_standard_log` VALUES (1,'\\\\core\\\\event\\\\user_loggedin','core','loggedin','user');\n")
	out := make([]byte, 0, n)
	block := make([]byte, 64<<10)
	for i := 0; len(out) < n; i++ {
		if i%2 == 0 {
			for j := 0; j < len(block); j += len(text) {
				copy(block[j:], text)
			}
		} else {
			rng.Read(block)
		}
		out = append(out, block[:min(len(block), n-len(out))]...)
	}
	return out
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// xxh64 is XXH64 with seed 0 in its canonical form, as xxhsum prints it.
func xxh64(b []byte) string { return fmt.Sprintf("%016x", xxhash.Sum64(b)) }

func TestXXH64Form(t *testing.T) {
	// The specification's values (xxhsum -H1): the empty input, and "abc".
	for in, want := range map[string]string{"": "ef46db3751d8e999", "abc": "44bc2cf5ad770999"} {
		if got := xxh64([]byte(in)); got != want {
			t.Errorf("xxh64(%q) = %s, want %s", in, got, want)
		}
	}
}

// unevenReader returns rest in pieces of changing size, then io.EOF.
type unevenReader struct {
	rest []byte
	i    int
}

func (u *unevenReader) Read(p []byte) (int, error) {
	if len(u.rest) == 0 {
		return 0, io.EOF
	}
	u.i++
	n := copy(p[:min(len(p), 1+(u.i*7919)%300000)], u.rest)
	u.rest = u.rest[n:]
	return n, nil
}

func TestSinkRoundTrip(t *testing.T) {
	data := mixed(5<<20 + 12345)
	tools := map[string][]string{"gzip": {"gzip", "-t"}, "zstd": {"zstd", "-q", "-t"}}
	for _, comp := range []string{"gzip", "zstd", "none"} {
		for _, sz := range []struct {
			name string
			n    int
		}{{"empty", 0}, {"one_byte", 1}, {"5MiB", len(data)}} {
			for _, how := range []string{"Write", "ReadFrom"} {
				t.Run(comp+"/"+sz.name+"/"+how, func(t *testing.T) {
					size := sz.n
					raw := data[:size]
					path := filepath.Join(t.TempDir(), "moodle.sql"+stream.Ext(comp, false))
					s, err := stream.NewSink(path, comp, 0, nil)
					if err != nil {
						t.Fatal(err)
					}
					// Uneven pieces, as a plugin's stream arrives: written, or
					// read by the Sink itself (as the side channel is).
					if how == "Write" {
						for rest, i := raw, 0; len(rest) > 0; i++ {
							n := min(len(rest), 1+(i*7919)%300000)
							if w, err := s.Write(rest[:n]); err != nil || w != n {
								t.Fatalf("Write = %d, %v", w, err)
							}
							rest = rest[n:]
						}
					} else if n, err := s.ReadFrom(&unevenReader{rest: raw}); err != nil || n != int64(size) {
						t.Fatalf("ReadFrom = %d, %v", n, err)
					}
					res, err := s.Close()
					if err != nil {
						t.Fatal(err)
					}

					stored, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					want := stream.Result{RawSize: int64(size), RawXXH64: xxh64(raw), Size: int64(len(stored)), SHA256: sum(stored)}
					if res != want {
						t.Errorf("Result = %+v\nwant     %+v", res, want)
					}
					if comp == "none" && !bytes.Equal(stored, raw) {
						t.Error("compression none changed the bytes")
					}
					if comp != "none" && size == len(data) && len(stored) >= size {
						t.Errorf("%s did not compress: %d -> %d bytes", comp, size, len(stored))
					}
					if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
						t.Errorf("mode %o, want 600", st.Mode().Perm())
					}

					f, err := os.Open(path)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					r, err := stream.NewReader(f, comp, false, nil)
					if err != nil {
						t.Fatal(err)
					}
					back, err := io.ReadAll(r)
					if err != nil {
						t.Fatal(err)
					}
					if err := r.Close(); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(back, raw) {
						t.Errorf("read back %d bytes (sha256 %s), want %d (%s)", len(back), sum(back), size, sum(raw))
					}

					if tool, ok := tools[comp]; ok {
						if _, err := exec.LookPath(tool[0]); err != nil {
							t.Fatalf("%s is needed to check the file independently: apt-get install %s", tool[0], tool[0])
						}
						if out, err := exec.Command(tool[0], append(tool[1:], path)...).CombinedOutput(); err != nil {
							t.Errorf("%s refused the file: %v\n%s", strings.Join(tool, " "), err, out)
						}
					}
				})
			}
		}
	}
}

func TestExt(t *testing.T) {
	for comp, want := range map[string]string{"gzip": ".gz", "zstd": ".zst", "none": "", "": ""} {
		if got := stream.Ext(comp, false); got != want {
			t.Errorf("Ext(%q) = %q, want %q", comp, got, want)
		}
	}
}

func TestSinkAbort(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x")
			s, err := stream.NewSink(path, comp, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(mixed(3 << 20)); err != nil {
				t.Fatal(err)
			}
			s.Abort()
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("file still there after Abort: %v", err)
			}
		})
	}
}

func TestNewSinkRefuses(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.sql.gz")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.NewSink(existing, "gzip", 0, nil); !os.IsExist(err) {
		t.Errorf("NewSink over an existing file: err = %v, want exists", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("existing file changed to %q", b)
	}

	bad := filepath.Join(dir, "bad")
	if _, err := stream.NewSink(bad, "bzip2", 0, nil); err == nil || err.Error() != `unknown compression "bzip2"` {
		t.Errorf("NewSink(bzip2) = %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Error("an unknown compression left a file behind")
	}
	if _, err := stream.NewReader(strings.NewReader(""), "bzip2", false, nil); err == nil || err.Error() != `unknown compression "bzip2"` {
		t.Errorf("NewReader(bzip2) = %v", err)
	}
}

func TestNewReaderRejectsCorruption(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x")
			s, err := stream.NewSink(path, comp, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.Write(mixed(1 << 20))
			if _, err := s.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0xff
			r, err := stream.NewReader(bytes.NewReader(b), comp, false, nil)
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if err == nil {
				t.Error("a corrupted file decompressed without error")
			}
		})
	}
}

// BenchmarkSink measures the store path (hash, compress, hash, write) on 64
// MiB of half text, half random data.
func BenchmarkSink(b *testing.B) {
	data := mixed(64 << 20)
	for _, comp := range []string{"gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				path := filepath.Join(dir, "bench")
				s, err := stream.NewSink(path, comp, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(data); off += 1 << 20 {
					if _, err := s.Write(data[off:min(off+1<<20, len(data))]); err != nil {
						b.Fatal(err)
					}
				}
				res, err := s.Close()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.Size)/float64(res.RawSize), "ratio")
				os.Remove(path)
			}
		})
	}
}

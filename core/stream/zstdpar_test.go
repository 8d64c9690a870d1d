package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// randomBytes returns n incompressible bytes, like an already compressed file.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// sqlText returns n bytes of SQL INSERT lines whose numbers vary, like a
// database dump: compressible, but not trivially.
func sqlText(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]byte, 0, n+256)
	for id := 1; len(out) < n; id++ {
		out = append(out, "INSERT INTO `mdl_logstore_standard_log` VALUES ("...)
		out = strconv.AppendInt(out, int64(id), 10)
		out = append(out, ",'\\\\core\\\\event\\\\course_viewed','core','viewed','course',"...)
		out = strconv.AppendInt(out, rng.Int64N(5000), 10)
		out = append(out, ',')
		out = strconv.AppendInt(out, rng.Int64N(100000), 10)
		out = append(out, ",'r',2,"...)
		out = strconv.AppendInt(out, 1700000000+int64(id)*3+rng.Int64N(3), 10)
		out = append(out, ",'10.0."...)
		out = strconv.AppendInt(out, rng.Int64N(256), 10)
		out = append(out, '.')
		out = strconv.AppendInt(out, rng.Int64N(256), 10)
		out = append(out, "',NULL);\n"...)
	}
	return out[:n]
}

// moodleLike returns n bytes shaped like a Moodle site's archive: pieces of
// 64 KiB to 4 MiB, alternately already-compressed files (random bytes) and
// SQL text, about half and half.
func moodleLike(n int) []byte {
	rng := rand.New(rand.NewPCG(42, 42))
	out := make([]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		k := min(n-len(out), 64<<10+rng.IntN(4<<20-64<<10))
		if i%2 == 0 {
			out = append(out, sqlText(k, uint64(i))...)
		} else {
			out = append(out, randomBytes(k, byte(i))...)
		}
	}
	return out
}

// writeOdd writes data in pieces of uneven sizes, tiny to several chunks, as
// a plugin's stream might arrive.
func writeOdd(t *testing.T, w io.Writer, data []byte, chunk int) {
	t.Helper()
	sizes := []int{1, 3, 4093, chunk - 1, 2, chunk + 17, 65537, 3*chunk + 5, 511}
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), sizes[i%len(sizes)])
		if k, err := w.Write(data[:n]); err != nil || k != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
		}
		data = data[n:]
	}
}

// unzstd decompresses with klauspost's decoder, as NewReader does.
func unzstd(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), "zstd", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress: %v", err)
	}
	return out
}

// systemUnzstd decompresses with the zstd binary: an independent decoder.
func systemUnzstd(t *testing.T, b []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("zstd is needed to check the output independently: apt-get install zstd")
	}
	cmd := exec.Command("zstd", "-d", "-q", "-c")
	cmd.Stdin = bytes.NewReader(b)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("zstd -d refused the stream: %v\n%s", err, stderr.Bytes())
	}
	return out.Bytes()
}

func TestZstdParRoundTrip(t *testing.T) {
	for _, chunk := range []int{zstdChunkSize, 64 << 10} {
		random := randomBytes(7*chunk+12345, 1)
		text := sqlText(len(random), 1)
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, len(random)} {
			for kind, content := range map[string][]byte{"random": random, "text": text} {
				t.Run(fmt.Sprintf("chunk%d/%s/%d", chunk, kind, n), func(t *testing.T) {
					raw := content[:n]
					var buf bytes.Buffer
					z, err := newZstdParWriter(&buf, 0, chunk)
					if err != nil {
						t.Fatal(err)
					}
					writeOdd(t, z, raw, chunk)
					if err := z.Close(); err != nil {
						t.Fatal(err)
					}
					if buf.Len() == 0 {
						t.Fatal("no output: an empty stream must still be one valid frame")
					}
					if kind == "text" && n >= chunk && buf.Len() > n/4 {
						t.Errorf("text compressed to %d of %d bytes", buf.Len(), n)
					}
					if got := unzstd(t, buf.Bytes()); !bytes.Equal(got, raw) {
						t.Errorf("NewReader gave %d bytes back, want %d identical", len(got), n)
					}
					if got := systemUnzstd(t, buf.Bytes()); !bytes.Equal(got, raw) {
						t.Errorf("zstd -d gave %d bytes back, want %d identical", len(got), n)
					}
				})
			}
		}
	}
}

// TestZstdParLevels checks every level NewSink accepts gives a readable
// stream, and an unknown one fails up front.
func TestZstdParLevels(t *testing.T) {
	raw := moodleLike(3 << 20)
	for level := 0; level <= 4; level++ {
		var buf bytes.Buffer
		z, err := newZstdParWriter(&buf, level, 1<<20)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		z.Write(raw)
		if err := z.Close(); err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		if got := unzstd(t, buf.Bytes()); !bytes.Equal(got, raw) {
			t.Errorf("level %d: round trip differs", level)
		}
	}
	if _, err := newZstdParWriter(io.Discard, 5, 1<<20); err == nil {
		t.Error("level 5 accepted")
	}
}

// TestZstdParChecksum checks each frame carries its content checksum: a
// flipped bit in the compressed data must not go unnoticed.
func TestZstdParChecksum(t *testing.T) {
	var buf bytes.Buffer
	z, _ := newZstdParWriter(&buf, 0, 64<<10)
	z.Write(sqlText(300<<10, 3))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	h := zstd.Header{}
	if err := h.Decode(buf.Bytes()); err != nil || !h.HasCheckSum {
		t.Fatalf("first frame header: %+v, %v; want a checksum", h, err)
	}
}

var errDiskFull = errors.New("disk full")

// failingWriter accepts ok bytes, then fails.
type failingWriter struct{ ok int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.ok {
		f.ok -= len(p)
		return len(p), nil
	}
	n := f.ok
	f.ok = 0
	return n, errDiskFull
}

func TestZstdParWriteError(t *testing.T) {
	const chunk = 64 << 10
	raw := randomBytes(40*chunk, 2)
	for _, ok := range []int{0, 100, 5 * chunk, 39 * chunk} {
		t.Run(strconv.Itoa(ok), func(t *testing.T) {
			before := runtime.NumGoroutine()
			z, _ := newZstdParWriter(&failingWriter{ok: ok}, 0, chunk)
			var werr error
			for rest := raw; len(rest) > 0 && werr == nil; rest = rest[min(len(rest), 10000):] {
				_, werr = z.Write(rest[:min(len(rest), 10000)])
			}
			cerr := z.Close()
			if !errors.Is(werr, errDiskFull) && !errors.Is(cerr, errDiskFull) {
				t.Fatalf("the failure was lost: Write %v, Close %v", werr, cerr)
			}
			if werr != nil && !errors.Is(cerr, errDiskFull) {
				t.Errorf("Close after a failed Write = %v, want the failure again", cerr)
			}
			if _, err := z.Write([]byte("more")); err == nil {
				t.Error("Write after Close succeeded")
			}
			settles(t, before)
		})
	}
}

func TestZstdParClose(t *testing.T) {
	before := runtime.NumGoroutine()
	var buf bytes.Buffer
	z, _ := newZstdParWriter(&buf, 0, 64<<10)
	writeOdd(t, z, moodleLike(1<<20), 64<<10)
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := z.Write([]byte("x")); !errors.Is(err, errZstdClosed) {
		t.Errorf("Write after Close = %v", err)
	}
	settles(t, before)
}

// TestZstdParReusesBuffers checks memory does not grow with the stream:
// 200 chunks must allocate about what 20 do. Fresh buffers per chunk would
// cost 180 × 128 KiB more; the encoder's own small per-block allocations
// stay under 5% of the extra input.
func TestZstdParReusesBuffers(t *testing.T) {
	const chunk = 64 << 10
	raw := moodleLike(200 * chunk)
	allocated := func(data []byte) uint64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		z, _ := newZstdParWriter(io.Discard, 0, chunk)
		for rest := data; len(rest) > 0; rest = rest[min(len(rest), 32<<10):] {
			z.Write(rest[:min(len(rest), 32<<10)])
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&m1)
		if z.made > z.limit {
			t.Errorf("%d chunks made, limit %d", z.made, z.limit)
		}
		return m1.TotalAlloc - m0.TotalAlloc
	}
	// TotalAlloc counts the whole process: anything else allocating
	// meanwhile (the runtime, a goroutine of an earlier test winding down)
	// only adds, so the least of three runs is the writer's own.
	least := func(data []byte) uint64 {
		n := allocated(data)
		for range 2 {
			n = min(n, allocated(data))
		}
		return n
	}
	small, large := least(raw[:20*chunk]), least(raw)
	if large > small+uint64(180*chunk/20) {
		t.Errorf("20 chunks allocated %d bytes, 200 chunks %d: buffers are not reused", small, large)
	}
}

// settles fails unless the goroutine count comes back to before: a
// compression goroutine may still be returning when Close does.
func settles(t *testing.T, before int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if runtime.NumGoroutine() <= before {
			return
		}
	}
	t.Errorf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
}

// countingWriter discards what it is given and counts it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// heapPeak samples the heap's live and not yet collected objects every
// millisecond until stop, and returns the highest value seen.
func heapPeak() (stop func() uint64) {
	done, peak := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peakSeen uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peakSeen = max(peakSeen, s[0].Value.Uint64())
			select {
			case <-done:
				peak <- peakSeen
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-peak }
}

// BenchmarkZstd compares zstd's stream encoder, as NewSink used it, with the
// parallel frame writer at several chunk sizes, all at the fastest level,
// with pgzip as NewSink sets it up for reference. The input is 200 MiB shaped
// like a Moodle site's archive: a 25 MiB sample of half random, half SQL
// text, streamed 8 times in 32 KiB writes (as io.Copy makes them). The
// sample is bigger than any window, so repeating it does not help the
// compressors, and it keeps the benchmark's own memory small.
//
// Metrics: MB/s of raw input, ratio (stored/raw), peak-heap-MiB (the
// highest heap in use during the runs, garbage not yet collected included,
// above the 25 MiB sample) and B/op (what one stream allocates).
func BenchmarkZstd(b *testing.B) {
	const reps = 8
	sample := moodleLike(25 << 20)
	n := runtime.GOMAXPROCS(0)
	type compressor struct {
		name string
		new  func(io.Writer) (io.WriteCloser, error)
	}
	compressors := []compressor{
		{"stream", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderConcurrency(n), zstd.WithEncoderLevel(zstd.SpeedFastest))
		}},
		{"stream-concurrentblocks", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderConcurrency(n), zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithConcurrentBlocks(true))
		}},
		{"pgzip", func(w io.Writer) (io.WriteCloser, error) {
			zw, err := pgzip.NewWriterLevel(w, pgzip.BestSpeed)
			if err == nil {
				err = zw.SetConcurrency(1<<20, 2*n)
			}
			return zw, err
		}},
	}
	for _, size := range []int{256 << 10, 512 << 10, 1 << 20, 4 << 20, 8 << 20} {
		compressors = append(compressors, compressor{fmt.Sprintf("parallel-%dKiB", size>>10), func(w io.Writer) (io.WriteCloser, error) {
			return newZstdParWriter(w, 0, size)
		}})
	}
	for _, c := range compressors {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(reps * int64(len(sample)))
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			stop := heapPeak()
			var out countingWriter
			b.ResetTimer()
			for range b.N {
				out.n = 0
				zw, err := c.new(&out)
				if err != nil {
					b.Fatal(err)
				}
				for range reps {
					for rest := sample; len(rest) > 0; rest = rest[min(len(rest), 32<<10):] {
						if _, err := zw.Write(rest[:min(len(rest), 32<<10)]); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			peak := stop()
			b.ReportMetric(float64(out.n)/float64(reps*len(sample)), "ratio")
			b.ReportMetric(float64(peak-min(peak, base.HeapAlloc))/(1<<20), "peak-heap-MiB")
		})
	}
}

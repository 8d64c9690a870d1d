package pluginhost_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/sdk"
)

// The side channel's cost, for `make bench` (scripts/bench.sh) and by hand:
//
//	go test -run '^$' -bench 'SideChannel|InProcess|UnixSocket' ./core/sdk/
//
// SideChannelBackup and SideChannelRestore move bytes between a plugin and
// the core through a real go-plugin gRPC connection and the unix-socket side
// channel; InProcessCopy moves the same bytes, in the same writes, with
// io.Copy inside one process: what a dumper built into the core would cost.
// Each reports MB/s and cpu-s/GB, the process's CPU (every goroutine: both
// ends, gRPC, GC) per GB moved. UnixSocket isolates the socket from gRPC and
// shows what the core's read size is worth.

// benchBytes is moved per operation: large enough that setup is noise.
const benchBytes = 256 << 20

// writeSizes are the write sizes measured: 32 KiB is what a plugin passes on
// from the Docker exec stream, 1 MiB what a buffered producer writes.
var writeSizes = []int{32 << 10, 1 << 20}

func BenchmarkSideChannelBackup(b *testing.B) {
	for _, size := range writeSizes {
		b.Run("write="+kib(size), func(b *testing.B) {
			chunk := randomChunk(size)
			p := &source{backup: func(ctx context.Context, _ sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
				return sdk.BackupResult{}, produce(ctx, w, chunk, benchBytes)
			}}
			c := connect(b, p)
			cfg := benchConfig(b)
			measureCPU(b, benchBytes, func() {
				reply, err := c.Backup(context.Background(), cfg, "db:moodle", "s", sinkWriter{})
				if err != nil || reply.Bytes != benchBytes {
					b.Fatalf("Backup: %d bytes, %v", reply.Bytes, err)
				}
			})
		})
	}
}

func BenchmarkSideChannelRestore(b *testing.B) {
	for _, size := range writeSizes {
		b.Run("write="+kib(size), func(b *testing.B) {
			chunk := randomChunk(size)
			p := &source{restore: func(_ context.Context, _ sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
				_, err := io.Copy(sinkWriter{}, r)
				return sdk.RestoreResult{}, err
			}}
			c := connect(b, p)
			cfg := benchConfig(b)
			measureCPU(b, benchBytes, func() {
				reply, err := c.Restore(context.Background(), cfg, "db:moodle", nil, nil, &generator{chunk: chunk, left: benchBytes})
				if err != nil || reply.Bytes != benchBytes {
					b.Fatalf("Restore: %d bytes, %v", reply.Bytes, err)
				}
			})
		})
	}
}

func BenchmarkInProcessCopy(b *testing.B) {
	for _, size := range writeSizes {
		b.Run("write="+kib(size), func(b *testing.B) {
			chunk := randomChunk(size)
			measureCPU(b, benchBytes, func() {
				n, err := io.Copy(sinkWriter{}, &generator{chunk: chunk, left: benchBytes})
				if err != nil || n != benchBytes {
					b.Fatalf("copy: %d bytes, %v", n, err)
				}
			})
		})
	}
}

// BenchmarkUnixSocket is the bare socket, written in 32 KiB, read with
// buffers of several sizes: io.Copy's default is 32 KiB.
func BenchmarkUnixSocket(b *testing.B) {
	for _, buf := range []int{32 << 10, 256 << 10, 1 << 20} {
		b.Run("read="+kib(buf), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "s.sock")
			ln, err := net.Listen("unix", path)
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			chunk := randomChunk(32 << 10)
			measureCPU(b, benchBytes, func() {
				done := make(chan error, 1)
				go func() {
					conn, err := net.Dial("unix", path)
					if err == nil {
						err = produce(context.Background(), conn, chunk, benchBytes)
						conn.Close()
					}
					done <- err
				}()
				conn, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(sinkWriter{}, onlyReader{conn}, make([]byte, buf))
				conn.Close()
				if werr := <-done; err != nil || werr != nil || n != benchBytes {
					b.Fatalf("socket: %d bytes, %v, %v", n, err, werr)
				}
			})
		})
	}
}

// measureCPU runs op b.N times and reports, besides ns/op and MB/s, the
// process's CPU seconds per GB moved (getrusage of the whole process).
func measureCPU(b *testing.B, bytes int64, op func()) {
	b.SetBytes(bytes)
	b.ReportAllocs()
	b.ResetTimer()
	before := cpuSeconds(b)
	for i := 0; i < b.N; i++ {
		op()
	}
	used := cpuSeconds(b) - before
	b.StopTimer()
	b.ReportMetric(used/(float64(b.N)*float64(bytes)/1e9), "cpu-s/GB")
}

func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// benchConfig is a dump stage body as the core sends it.
func benchConfig(b *testing.B) *pb.Config {
	obj := map[string]cty.Value{}
	for _, a := range fakeSchema.Attributes {
		obj[a.Name] = cty.NullVal(a.Type.Cty())
	}
	obj["container"] = cty.StringVal("db")
	cfg, err := wire.EncodeConfig(sdk.KindDump, cty.ObjectVal(obj), fakeSchema)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// produce writes n bytes to w in writes of len(chunk), as a plugin passes a
// dump on.
func produce(ctx context.Context, w io.Writer, chunk []byte, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := chunk[:min(int64(len(chunk)), n)]
		if _, err := w.Write(c); err != nil {
			return err
		}
		n -= int64(len(c))
	}
	return nil
}

// generator reads as left bytes, copied from chunk.
type generator struct {
	chunk []byte
	left  int64
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), g.left, int64(len(g.chunk)))], g.chunk)
	g.left -= int64(n)
	return n, nil
}

// sinkWriter drops what it is given. Unlike io.Discard it has no ReadFrom,
// so io.Copy reads the way it does into the core's Sink.
type sinkWriter struct{}

func (sinkWriter) Write(p []byte) (int, error) { return len(p), nil }

// onlyReader hides any WriterTo of the reader it wraps.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func randomChunk(n int) []byte {
	p := make([]byte, n)
	rand.NewChaCha8([32]byte{7}).Read(p)
	return p
}

func kib(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

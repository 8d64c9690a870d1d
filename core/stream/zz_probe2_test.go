package stream

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func TestProbeZstdKinds(t *testing.T) {
	f, err := os.Open("/tmp/p4/medium.tar")
	if err != nil {
		t.Skip(err)
	}
	tr := tar.NewReader(f)
	var text, rnd bytes.Buffer
	enc1, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, _ := io.ReadAll(tr)
		if len(enc1.EncodeAll(b[:min(len(b), 4096)], nil)) > min(len(b), 4096)*9/10 {
			rnd.Write(b)
		} else {
			text.Write(b)
		}
	}
	os.WriteFile("/tmp/p4/text.bin", text.Bytes(), 0o600)
	for _, opt := range []struct {
		name string
		o    []zstd.EOption
	}{
		{"fastest", nil},
		{"fastest-noentropy", []zstd.EOption{zstd.WithNoEntropyCompression(true)}},
		{"fastest-alllit-false", []zstd.EOption{zstd.WithAllLitEntropyCompression(false)}},
		{"fastest-nocrc", []zstd.EOption{zstd.WithEncoderCRC(false)}},
	} {
		o := append([]zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(512 << 10)}, opt.o...)
		enc, _ := zstd.NewWriter(nil, o...)
		for _, d := range []struct {
			n string
			b []byte
		}{{"text", text.Bytes()}, {"random", rnd.Bytes()}} {
			var dst []byte
			out := 0
			t0 := time.Now()
			for off := 0; off < len(d.b); off += 512 << 10 {
				dst = enc.EncodeAll(d.b[off:min(off+512<<10, len(d.b))], dst[:0])
				out += len(dst)
			}
			el := time.Since(t0)
			t.Logf("%-22s %-6s %4d MB %5.0f MB/s ratio %.3f", opt.name, d.n, len(d.b)>>20, float64(len(d.b))/el.Seconds()/1e6, float64(out)/float64(len(d.b)))
		}
	}
}

// Package stream turns a raw artifact stream into a stored file in one pass:
// count and hash the raw bytes, compress with a parallel encoder, count and
// hash the compressed bytes, write. And back again for restores.
package stream

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Ext is the file extension a compression adds.
func Ext(compression string) string {
	switch compression {
	case "gzip":
		return ".gz"
	case "zstd":
		return ".zst"
	}
	return ""
}

// Result describes a stored artifact.
type Result struct {
	RawSize   int64
	RawSHA256 string
	Size      int64
	SHA256    string
}

type hashCounter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashCounter(w io.Writer) *hashCounter { return &hashCounter{w: w, h: sha256.New()} }

func (c *hashCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func (c *hashCounter) sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// Sink writes one artifact file. Write the raw stream into it, then Close;
// on any failure, Abort removes the file.
type Sink struct {
	f      *os.File
	buf    *bufio.Writer
	stored *hashCounter
	comp   io.WriteCloser // nil for "none"
	raw    *hashCounter
}

// bufSize is the write buffer in front of the file.
const bufSize = 1 << 20

// NewSink creates path (0600, must not exist) and a writer chain for it.
func NewSink(path, compression string) (*Sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	s := &Sink{f: f, buf: bufio.NewWriterSize(f, bufSize)}
	s.stored = newHashCounter(s.buf)
	switch compression {
	case "gzip":
		zw, err := pgzip.NewWriterLevel(s.stored, pgzip.DefaultCompression)
		if err == nil {
			// 1 MiB blocks, two per core in flight: bounded memory, all cores busy.
			err = zw.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0))
		}
		if err != nil {
			s.Abort()
			return nil, err
		}
		s.comp = zw
	case "zstd":
		zw, err := zstd.NewWriter(s.stored, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			s.Abort()
			return nil, err
		}
		s.comp = zw
	case "none", "":
	default:
		s.Abort()
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	if s.comp != nil {
		s.raw = newHashCounter(s.comp)
	} else {
		s.raw = newHashCounter(s.stored)
	}
	return s, nil
}

// Write takes raw bytes.
func (s *Sink) Write(p []byte) (int, error) { return s.raw.Write(p) }

// Close finishes the compressed stream and makes the file durable.
func (s *Sink) Close() (Result, error) {
	if s.comp != nil {
		if err := s.comp.Close(); err != nil {
			return Result{}, fmt.Errorf("compress: %w", err)
		}
	}
	if err := s.buf.Flush(); err != nil {
		return Result{}, err
	}
	if err := s.f.Sync(); err != nil {
		return Result{}, err
	}
	if err := s.f.Close(); err != nil {
		return Result{}, err
	}
	return Result{RawSize: s.raw.n, RawSHA256: s.raw.sum(), Size: s.stored.n, SHA256: s.stored.sum()}, nil
}

// Abort closes and removes the file.
func (s *Sink) Abort() {
	if s.comp != nil {
		s.comp.Close()
	}
	s.f.Close()
	os.Remove(s.f.Name())
}

// NewReader decompresses a stored artifact.
func NewReader(r io.Reader, compression string) (io.ReadCloser, error) {
	switch compression {
	case "gzip":
		return pgzip.NewReader(r)
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "none", "":
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", compression)
}

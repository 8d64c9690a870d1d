// Package stream turns a raw artifact stream into a stored file in one pass:
// count and hash the raw bytes, compress with a parallel encoder, count and
// hash the compressed bytes, write. And back again for restores.
package stream

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"filippo.io/age"
	"github.com/cespare/xxhash/v2"
)

// Ext is the file extension compression and encryption add.
func Ext(compression string, encrypted bool) string {
	ext := ""
	if c, ok := Lookup(compression); ok {
		ext = c.Ext
	}
	if encrypted {
		ext += ".age"
	}
	return ext
}

// Result describes a stored artifact.
type Result struct {
	RawSize  int64
	RawXXH64 string // of the raw stream: what decompression must give back
	Size     int64
	SHA256   string // of the stored file: what SHA256SUMS lists
}

type hashCounter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashCounter(w io.Writer, h hash.Hash) *hashCounter { return &hashCounter{w: w, h: h} }

func (c *hashCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.add(p[:n])
	return n, err
}

// add hashes and counts bytes that went through.
func (c *hashCounter) add(p []byte) {
	c.h.Write(p)
	c.n += int64(len(p))
}

func (c *hashCounter) sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// ReadFrom lets the writer under read straight from r when it can (the
// zstd writer fills its chunks so), hashing and counting what it reads.
func (c *hashCounter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(&hashingReader{r: r, c: c})
	}
	return io.CopyBuffer(struct{ io.Writer }{c}, r, make([]byte, bufSize))
}

// hashingReader hashes and counts what is read through it, for a hashCounter.
type hashingReader struct {
	r io.Reader
	c *hashCounter
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.c.add(p[:n])
	return n, err
}

// Sink writes one artifact file. Write the raw stream into it, then Close;
// on any failure, Abort removes the file.
type Sink struct {
	f      *os.File
	buf    *bufio.Writer
	stored *hashCounter
	comp   io.WriteCloser // nil for "none"
	enc    io.WriteCloser // nil without encryption
	raw    *hashCounter
}

// bufSize is the write buffer in front of the file: enough to write in
// large pieces, small enough for two streams side by side.
const bufSize = 256 << 10

// NewSink creates path (0600, must not exist) and a writer chain for it:
// raw bytes are compressed, then encrypted to the recipients when there are
// any (age), then hashed and written: one pass, no second file.
//
// level 0 means the codec's DefaultLevel (the caller that knows the
// artifact's format picks with DefaultLevel(compression, format)); any other level
// must be in the codec's range (CheckLevel). Both are checked before the
// file is created.
func NewSink(path, compression string, level int, recipients []age.Recipient) (*Sink, error) {
	c, level, err := codecAt(compression, level)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	s := &Sink{f: f, buf: bufio.NewWriterSize(&writeBehind{f: f}, bufSize)}
	s.stored = newHashCounter(s.buf, sha256.New())
	var under io.Writer = s.stored
	if len(recipients) > 0 {
		enc, err := age.Encrypt(s.stored, recipients...)
		if err != nil {
			s.Abort()
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		s.enc = enc
		under = enc
	}
	if c.newWriter != nil {
		zw, err := c.newWriter(under, level)
		if err != nil {
			s.Abort()
			return nil, err
		}
		s.comp = zw
	}
	// The raw stream's hash only has to prove that decompression gives back
	// what the plugin sent (the stored file's SHA-256 is the tamper check):
	// XXH64, the hash zstd's own frames carry, at 4.4 GB/s against SHA-256's
	// 1.1 here, where it was a ninth of the archive path's CPU.
	if s.comp != nil {
		under = s.comp
	}
	s.raw = newHashCounter(under, xxhash.New())
	return s, nil
}

// Write takes raw bytes.
func (s *Sink) Write(p []byte) (int, error) { return s.raw.Write(p) }

// ReadFrom takes raw bytes from r to its end, into the compressor's own
// buffers where it has them.
func (s *Sink) ReadFrom(r io.Reader) (int64, error) { return s.raw.ReadFrom(r) }

// Close finishes the compressed stream and makes the file durable.
func (s *Sink) Close() (Result, error) {
	if s.comp != nil {
		if err := s.comp.Close(); err != nil {
			return Result{}, fmt.Errorf("compress: %w", err)
		}
	}
	if s.enc != nil {
		if err := s.enc.Close(); err != nil {
			return Result{}, fmt.Errorf("encrypt: %w", err)
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
	return Result{RawSize: s.raw.n, RawXXH64: s.raw.sum(), Size: s.stored.n, SHA256: s.stored.sum()}, nil
}

// Abort closes and removes the file.
func (s *Sink) Abort() {
	if s.comp != nil {
		s.comp.Close()
	}
	s.f.Close()
	os.Remove(s.f.Name())
}

// NewWriter is the named codec's compressor alone, as a Sink runs it (level
// 0: the codec's default), with no hashing and no file: for measuring the
// codecs (benchtool levels) on the very writers mbk uses. A codec that
// stores as is ("none") gives w itself, behind a no-op Close.
func NewWriter(w io.Writer, compression string, level int) (io.WriteCloser, error) {
	c, level, err := codecAt(compression, level)
	if err != nil {
		return nil, err
	}
	if c.newWriter == nil {
		return nopWriteCloser{w}, nil
	}
	return c.newWriter(w, level)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// ErrNoIdentity says an artifact is encrypted and no identity was given.
var ErrNoIdentity = errors.New("the artifact is encrypted: give the age identity (--identity FILE)")

// NewReader reads a stored artifact back: decrypted with the identities when
// encrypted, then decompressed. A wrong identity fails here, at the header,
// before a single byte is returned.
func NewReader(r io.Reader, compression string, encrypted bool, identities []age.Identity) (io.ReadCloser, error) {
	c, err := lookup(compression)
	if err != nil {
		return nil, err
	}
	if encrypted {
		if len(identities) == 0 {
			return nil, ErrNoIdentity
		}
		d, err := age.Decrypt(r, identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		r = d
	}
	return c.newReader(r)
}

// codecAt is the named codec and the level to run it at: level 0 is its
// default, any other must be in its range.
func codecAt(compression string, level int) (Codec, int, error) {
	c, err := lookup(compression)
	if err != nil {
		return Codec{}, 0, err
	}
	if level == 0 {
		return c, c.DefaultLevel, nil
	}
	if err := CheckLevel(c.Name, level); err != nil {
		return Codec{}, 0, err
	}
	return c, level, nil
}

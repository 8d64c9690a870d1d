package stream

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Blob codecs: a pooled file is compressed on its own, and most are small
// (a Moodle filedir's median file is a few KiB). The parallel writers of
// artifacts (pgzip, zstdpar) start goroutines and allocate megabytes each;
// a blob gets a single-threaded writer taken from a pool and reset instead.

type blobKey struct {
	name  string
	level int
}

var (
	blobWritersMu sync.Mutex
	blobWriters   = map[blobKey]*sync.Pool{}
	gzipReaders   sync.Pool
	zstdReaders   sync.Pool
)

type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// BlobWriter compresses one blob. Close finishes the compressed stream (it
// does not close the writer under it) and returns the compressor for reuse:
// nothing may be written after.
type BlobWriter struct {
	w    resetWriter // nil for "none"
	pool *sync.Pool
	dst  io.Writer
}

func (b *BlobWriter) Write(p []byte) (int, error) {
	if b.w == nil {
		return b.dst.Write(p)
	}
	return b.w.Write(p)
}

func (b *BlobWriter) Close() error {
	if b.w == nil {
		return nil
	}
	err := b.w.Close()
	if err == nil {
		b.pool.Put(b.w)
	}
	b.w = nil
	return err
}

// NewBlobWriter compresses into w with the named codec at level (0: the
// codec's default).
func NewBlobWriter(w io.Writer, compression string, level int) (*BlobWriter, error) {
	c, err := lookup(compression)
	if err != nil {
		return nil, err
	}
	if c.newWriter == nil {
		return &BlobWriter{dst: w}, nil
	}
	if level == 0 {
		level = c.DefaultLevel
	}
	k := blobKey{c.Name, level}
	blobWritersMu.Lock()
	p, ok := blobWriters[k]
	if !ok {
		p = &sync.Pool{}
		blobWriters[k] = p
	}
	blobWritersMu.Unlock()
	if v := p.Get(); v != nil {
		rw := v.(resetWriter)
		rw.Reset(w)
		return &BlobWriter{w: rw, pool: p}, nil
	}
	var rw resetWriter
	switch c.Name {
	case "gzip":
		rw, err = gzip.NewWriterLevel(w, level)
	case "zstd":
		rw, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevel(level)), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
	default:
		err = fmt.Errorf("compression %q has no blob writer", c.Name)
	}
	if err != nil {
		return nil, err
	}
	return &BlobWriter{w: rw, pool: p}, nil
}

// blobReader is a pooled decompressor; Close returns it.
type blobReader struct {
	io.Reader
	put func()
}

func (b *blobReader) Close() error {
	if b.put != nil {
		b.put()
		b.put = nil
	}
	return nil
}

// NewBlobReader decompresses one blob written by a BlobWriter.
func NewBlobReader(r io.Reader, compression string) (io.ReadCloser, error) {
	c, err := lookup(compression)
	if err != nil {
		return nil, err
	}
	switch c.Name {
	case "gzip":
		if v := gzipReaders.Get(); v != nil {
			zr := v.(*gzip.Reader)
			if err := zr.Reset(r); err != nil {
				return nil, err
			}
			return &blobReader{Reader: zr, put: func() { gzipReaders.Put(zr) }}, nil
		}
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return &blobReader{Reader: zr, put: func() { gzipReaders.Put(zr) }}, nil
	case "zstd":
		var d *zstd.Decoder
		if v := zstdReaders.Get(); v != nil {
			d = v.(*zstd.Decoder)
			if err := d.Reset(r); err != nil {
				return nil, err
			}
		} else if d, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true)); err != nil {
			return nil, err
		}
		return &blobReader{Reader: d, put: func() { zstdReaders.Put(d) }}, nil
	}
	return io.NopCloser(r), nil
}

// MaxDecodeAll is the largest blob DecodeBlob decodes in memory.
const MaxDecodeAll = 1 << 20

// zstdAll decodes whole small blobs held in memory, several at a time: a
// restore's readers share it. It refuses a frame that says it is larger
// than MaxDecodeAll before allocating for it.
var zstdAll = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(MaxDecodeAll))
})

// DecodeBlob appends the content of a blob written by a BlobWriter and held
// whole in src to dst, at most MaxDecodeAll bytes of it. ok is false for a
// codec decoded only as a stream (NewBlobReader).
func DecodeBlob(src []byte, compression string, dst []byte) (out []byte, ok bool, err error) {
	c, err := lookup(compression)
	if err != nil {
		return nil, true, err
	}
	switch {
	case c.Name == "zstd":
		d, err := zstdAll()
		if err != nil {
			return nil, true, err
		}
		out, err := d.DecodeAll(src, dst)
		return out, true, err
	case c.newWriter == nil:
		if len(src) > MaxDecodeAll {
			return nil, true, fmt.Errorf("over %d bytes", MaxDecodeAll)
		}
		return append(dst, src...), true, nil
	}
	return nil, false, nil
}

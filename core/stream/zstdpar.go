package stream

import (
	"errors"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdChunkSize is how much raw input goes into each zstd frame. Measured
// with BenchmarkZstd (200 MiB, half random, half SQL text, 2 cores, fastest
// level), MB/s, ratio, bytes allocated per stream, peak heap:
//
//	256 KiB  1230  0.467   6 MB  18 MiB
//	512 KiB  1375  0.468   9 MB  24 MiB
//	  1 MiB  1470  0.470  16 MB  31 MiB
//	  4 MiB  1330  0.471  60 MB 115 MiB
//	  8 MiB  1230  0.471 119 MB 170 MiB
//	stream    750  0.471  10 MB  28 MiB (zstd's stream encoder, as NewSink had it)
//	pgzip    1540  0.474  18 MB  52 MiB (for reference)
//
// Smaller frames lose speed to per-frame setup; bigger ones buy nothing at
// this level (its matches reach back 4 MiB at most and rarely need to) but
// memory grows with them: 4×GOMAXPROCS+1 chunks, their outputs and each core's
// encoder history are live at once. A dump and an archive are written side by
// side, so two of these run at once: 512 KiB gives up 6% of a compressor
// that is not the bottleneck (the whole Sink runs at 800 MB/s either way)
// for 8 MiB less memory per stream, which is what keeps mbk and its plugins
// under 100 MiB. A power of two, so it can be the window size.
//
// Rechecked for #21 on the small bench's 100 MiB dump and 206 MiB tar
// (MiB out, 512 KiB / 2 MiB / 8 MiB frames): level 2, the archives'
// default, tar 129.5 / 128.6 / 128.3; level 3, dump 15.33 / 14.99 / 14.72.
// At most 4% for 16 times the memory per chunk; klauspost's single-frame
// encoder with concurrent blocks and an 8 MiB window (WithConcurrentBlocks)
// made the same sizes or 5% less at half the speed. A longer window is not
// worth it here.
const zstdChunkSize = 512 << 10

// zstdParWriter compresses on all cores, where zstd's own stream encoder
// keeps about one busy: the raw stream is cut into chunks, each chunk
// becomes a complete, independent zstd frame (EncodeAll, safe for
// concurrent use) on its own goroutine, and one writer goroutine writes the
// frames in input order. Concatenated frames are one valid zstd stream for
// every decoder (zstd -d, klauspost's NewReader).
//
// The writer goroutine matters as much as the compressors: what lies under
// a Sink hashes and writes the stored bytes, and doing that on the caller's
// goroutine, which already hashes the raw bytes, made it the bottleneck.
//
// Memory is bounded: 4×GOMAXPROCS+1 chunks exist at most, being filled,
// compressed or written; their buffers are reused, not allocated per chunk,
// and Write blocks until one is free. A failure of the underlying writer is
// kept and returned by the next Write and by Close. Close must be called: it
// flushes the last frames and ends every goroutine.
//
// Not safe for concurrent use, like any io.Writer.
type zstdParWriter struct {
	enc    *zstd.Encoder
	size   int             // raw bytes per frame
	limit  int             // chunks in existence at most
	made   int             // chunks made so far
	cur    *zstdChunk      // being filled; nil until the next byte arrives
	free   chan *zstdChunk // written, ready for reuse
	queue  chan *zstdChunk // to the writer goroutine, in input order
	ended  chan struct{}   // closed when the writer goroutine returns
	wrote  bool            // a frame was started: Close need not add an empty one
	closed bool

	mu  sync.Mutex
	err error // first failure of the underlying writer
}

// zstdChunk is one frame's worth of raw input and its compressed form.
type zstdChunk struct {
	src  []byte
	dst  []byte
	done chan struct{} // one token when dst is ready; reused
}

var errZstdClosed = errors.New("zstd: write after close")

// newZstdParWriter returns a writer compressing into w at level (0 fastest;
// 1..4 zstd.EncoderLevel: fastest, default, better, best) in frames of size
// raw bytes, which must be a power of two of at least 1 KiB.
func newZstdParWriter(w io.Writer, level, size int) (*zstdParWriter, error) {
	if level == 0 {
		level = int(zstd.SpeedFastest)
	}
	n := runtime.GOMAXPROCS(0)
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		// As many EncodeAll calls run at once as there are cores.
		zstd.WithEncoderConcurrency(n),
		// Each frame checks its own content on decompression.
		zstd.WithEncoderCRC(true),
		// A frame never reaches back further than its own chunk: a larger
		// window would only cost memory in each encoder.
		zstd.WithWindowSize(size),
	)
	if err != nil {
		return nil, err
	}
	// Chunks are freed in input order, so a slow one holds back those
	// behind it: with 2 per core in flight the reader waited for a free
	// one often enough to leave the cores idle. With 4 the medium bench's
	// archive took 1.27 s instead of 1.34 (8 alternating runs each), for
	// 4 MiB more per stream.
	limit := 4*n + 1
	z := &zstdParWriter{
		enc:   enc,
		size:  size,
		limit: limit,
		free:  make(chan *zstdChunk, limit),
		queue: make(chan *zstdChunk, limit),
		ended: make(chan struct{}),
	}
	go z.writeFrames(w)
	return z, nil
}

// Write copies p into chunks and starts compressing each one as it fills.
func (z *zstdParWriter) Write(p []byte) (int, error) {
	if z.closed {
		return 0, errZstdClosed
	}
	n := 0
	for len(p) > 0 {
		if err := z.failure(); err != nil {
			return n, err
		}
		k := copy(z.room(), p)
		z.filled(k)
		p = p[k:]
		n += k
	}
	return n, z.failure()
}

// ReadFrom reads r to its end straight into the chunks: the bytes land
// where the compressor reads them, without Write's copy (480 MB on the
// medium bench's archive).
func (z *zstdParWriter) ReadFrom(r io.Reader) (int64, error) {
	if z.closed {
		return 0, errZstdClosed
	}
	var n int64
	for {
		if err := z.failure(); err != nil {
			return n, err
		}
		k, err := r.Read(z.room())
		z.filled(k)
		n += int64(k)
		if err == io.EOF {
			return n, z.failure()
		}
		if err != nil {
			return n, err
		}
	}
}

// room is the free end of the chunk being filled, taking a chunk first
// when there is none (which waits while every chunk is busy).
func (z *zstdParWriter) room() []byte {
	if z.cur == nil {
		z.cur = z.chunk()
	}
	return z.cur.src[len(z.cur.src):z.size]
}

// filled counts k bytes put into room, and hands the chunk on once full.
func (z *zstdParWriter) filled(k int) {
	z.cur.src = z.cur.src[:len(z.cur.src)+k]
	if len(z.cur.src) == z.size {
		z.submit()
	}
}

// Close compresses what is left and waits until every frame is written. Its
// error is the first failure of the underlying writer, if any. An empty
// stream still gets one empty frame, as zstd's stream encoder writes, so
// the file is a valid .zst.
func (z *zstdParWriter) Close() error {
	if z.closed {
		return z.failure()
	}
	z.closed = true
	if z.failure() == nil && (z.cur != nil && len(z.cur.src) > 0 || !z.wrote) {
		if z.cur == nil {
			z.cur = z.chunk()
		}
		z.submit()
	}
	close(z.queue)
	<-z.ended
	z.cur = nil
	return z.failure()
}

// chunk returns an empty chunk: a free one, a new one while fewer than limit
// exist, or else the next one the writer goroutine frees.
func (z *zstdParWriter) chunk() *zstdChunk {
	select {
	case c := <-z.free:
		return c
	default:
	}
	if z.made == z.limit {
		return <-z.free
	}
	z.made++
	return &zstdChunk{
		src:  make([]byte, 0, z.size),
		dst:  make([]byte, 0, z.enc.MaxEncodedSize(z.size)),
		done: make(chan struct{}, 1),
	}
}

// submit hands the current chunk to the writer goroutine, in order, and
// compresses it in the background. The queue holds every chunk there is,
// so the send never blocks.
func (z *zstdParWriter) submit() {
	c := z.cur
	z.cur = nil
	z.wrote = true
	z.queue <- c
	go func() {
		c.dst = z.enc.EncodeAll(c.src, c.dst[:0])
		c.done <- struct{}{}
	}()
}

// writeFrames writes each frame once compressed, in input order, and frees
// its chunk. After a failure it keeps freeing chunks without writing, so
// Write and Close never wait forever.
func (z *zstdParWriter) writeFrames(w io.Writer) {
	defer close(z.ended)
	for c := range z.queue {
		<-c.done
		if z.failure() == nil {
			if _, err := w.Write(c.dst); err != nil {
				z.mu.Lock()
				z.err = err
				z.mu.Unlock()
			}
		}
		c.src = c.src[:0]
		z.free <- c
	}
}

func (z *zstdParWriter) failure() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

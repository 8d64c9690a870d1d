package pool

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"sync"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/stream"
)

// A pooled artifact is a tar stream in which each pooled file is an entry
// without data whose PAX records (spec.PoolPAXSHA1, spec.PoolPAXSize) name
// its blob, or a line of a pool listing entry (spec.PoolPAXListing), which
// stands for its lines' entries. The core puts the content back before a restore, so the plugin
// restores an ordinary tar over the same socket as any other, and a blob's
// bytes go from the pool's file to the stream in one process.

// Expand's read-ahead. Small blobs are read whole by expandWorkers
// goroutines, in the stream's order, up to expandAheadBytes of buffers (and
// expandAheadEntries entries, directories included) ahead of the one being
// written; a blob above expandInMemory is streamed when its turn comes,
// while the workers read on past it.
const (
	expandWorkers      = 4
	expandAheadBytes   = 8 << 20
	expandAheadEntries = 4096
	expandInMemory     = stream.MaxDecodeAll
)

// entryBlob says whether h is a pooled entry, and which blob holds its
// content.
func entryBlob(h *tar.Header) (Blob, bool, error) {
	sum, ok := h.PAXRecords[spec.PoolPAXSHA1]
	if !ok {
		return Blob{}, false, nil
	}
	size, err := strconv.ParseInt(h.PAXRecords[spec.PoolPAXSize], 10, 64)
	b := Blob{SHA1: sum, Size: size}
	if err != nil || h.Typeflag != tar.TypeReg || h.Size != 0 || b.Check() != nil {
		return Blob{}, false, fmt.Errorf("entry %q: a malformed pooled entry", h.Name)
	}
	return b, true, nil
}

// Expand copies the tar stream r to w with every pooled entry's content
// read from the pool, each blob checked against its SHA-1, and the pool's
// records left out: w gets the archive a backup without the pool would
// have made. r is read to its end. A missing or damaged blob is an error
// that names the entry and the blob.
func (p *Pool) Expand(ctx context.Context, r io.Reader, w io.Writer, identities []age.Identity) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x := &expander{p: p, ids: identities, jobs: make(chan *pending, expandAheadEntries), buf: make([]byte, 256<<10)}
	defer x.stop()
	// Blobs are opened relative to the pool's directory: one path lookup
	// less per blob than from /.
	dir, err := os.Open(p.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	x.dir = int(dir.Fd())
	for range expandWorkers {
		x.wg.Add(1)
		go x.work(ctx)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		if v, ok := h.PAXRecords[spec.PoolPAXListing]; ok {
			if err := x.listing(ctx, tw, tr, h, v); err != nil {
				return err
			}
			continue
		}
		b, pooled, err := entryBlob(h)
		if err != nil {
			return err
		}
		if !pooled && h.Size > 0 {
			// Data in the stream: what waits goes first, then this entry.
			if err := x.drain(ctx, tw, 0); err != nil {
				return err
			}
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			if _, err := io.CopyBuffer(tw, wire.ContextReader(ctx, tr), x.buf); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			continue
		}
		if err := x.add(ctx, tw, h, b, pooled); err != nil {
			return err
		}
	}
	if err := x.drain(ctx, tw, 0); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write the archive: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// What follows the archive's end (padding) is read too, so that the
	// decoder below checks the whole file.
	_, err = io.Copy(io.Discard, r)
	return err
}

// add queues an entry without data in the stream: a directory, a link, or
// a pooled file, whose blob a worker starts reading if it is small.
func (x *expander) add(ctx context.Context, tw *tar.Writer, h *tar.Header, b Blob, pooled bool) error {
	e := &pending{h: h, blob: b, pooled: pooled}
	if pooled && b.Size > 0 && b.Size <= expandInMemory {
		// Room for it ahead, made by writing out the oldest.
		for len(x.queue) > 0 && x.ahead+bufCap(b.Size) > expandAheadBytes {
			if err := x.drain(ctx, tw, len(x.queue)-1); err != nil {
				return err
			}
		}
		e.fetch = true
		e.done = make(chan struct{})
		x.ahead += bufCap(b.Size)
	}
	if len(x.queue) >= expandAheadEntries {
		if err := x.drain(ctx, tw, len(x.queue)-1); err != nil {
			return err
		}
	}
	x.queue = append(x.queue, e)
	if e.fetch {
		x.jobs <- e // never blocks: the queue is shorter than the channel
	}
	return nil
}

// listing queues the entries of a pool listing (spec.PoolPAXListing), h,
// of version v, in their order: each line a directory or a pooled file,
// as the PAX form's entries would have been.
func (x *expander) listing(ctx context.Context, tw *tar.Writer, tr *tar.Reader, h *tar.Header, v string) error {
	if v != spec.PoolListingVersion {
		return fmt.Errorf("entry %q: a pool listing of version %q, which this mbk does not know (a later one wrote it)", h.Name, v)
	}
	if h.Typeflag != tar.TypeReg || h.Size <= 0 || h.Size > spec.PoolListingMax {
		return fmt.Errorf("entry %q: a malformed pool listing (%d bytes)", h.Name, h.Size)
	}
	if int64(cap(x.list)) < h.Size {
		x.list = make([]byte, h.Size)
	}
	data := x.list[:h.Size]
	if _, err := io.ReadFull(tr, data); err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	err := spec.ParseListing(data, func(e *spec.ListEntry) error {
		lh := &tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: e.ModTime, Format: tar.FormatPAX}
		if e.Dir {
			lh.Typeflag = tar.TypeDir
			return x.add(ctx, tw, lh, Blob{}, false)
		}
		b := Blob{SHA1: e.SHA1, Size: e.Size}
		if err := b.Check(); err != nil {
			return fmt.Errorf("entry %q: %w", e.Name, err)
		}
		return x.add(ctx, tw, lh, b, true)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
}

// pending is an entry waiting for its turn; a fetched one's content is
// read by a worker meanwhile.
type pending struct {
	h      *tar.Header
	blob   Blob
	pooled bool
	fetch  bool
	done   chan struct{}
	data   []byte
	err    error
}

type expander struct {
	p     *Pool
	ids   []age.Identity
	jobs  chan *pending
	wg    sync.WaitGroup
	queue []*pending
	ahead int64 // bytes of fetched blobs' buffers in the queue
	buf   []byte
	once  sync.Once
	dir   int    // the pool's directory, open
	list  []byte // a pool listing's data, reused
}

func (x *expander) stop() {
	x.once.Do(func() { close(x.jobs) })
	x.wg.Wait()
}

func (x *expander) work(ctx context.Context) {
	defer x.wg.Done()
	for e := range x.jobs {
		if ctx.Err() == nil {
			e.data, e.err = x.p.readBlob(x.dir, e.blob, x.ids)
		} else {
			e.err = context.Cause(ctx)
		}
		close(e.done)
	}
}

// readBlob reads a small blob whole, checked, into a buffer of blobBuf's:
// the stored file in one read and, for a plain blob of a codec that has
// one, decoded in memory; otherwise through OpenBlob's stream.
func (p *Pool) readBlob(dir int, b Blob, ids []age.Identity) ([]byte, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	raw, err := p.readStored(dir, b)
	if err != nil {
		return nil, err
	}
	defer putBlobBuf(raw)
	line, body, found := bytes.Cut(raw, []byte{'\n'})
	if !found {
		return nil, fmt.Errorf("blob %s: no header: %w", b, io.ErrUnexpectedEOF)
	}
	comp, enc, err := parseHeader(string(line))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", b, err)
	}
	if enc == "plain" {
		out, ok, err := stream.DecodeBlob(body, comp, blobBuf(b.Size))
		if ok {
			if err != nil {
				return nil, fmt.Errorf("blob %s: %w: %v", b, ErrCorrupt, err)
			}
			if err := b.matches(out); err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	rc, err := Decode(bytes.NewReader(raw), b, ids)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", b, err)
	}
	defer rc.Close()
	buf := blobBuf(b.Size)[:b.Size]
	if _, err := io.ReadFull(rc, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = fmt.Errorf("blob %s: %w (it ended early)", b, ErrCorrupt)
		}
		return nil, err
	}
	// The end, where the hash is checked.
	var one [1]byte
	if n, err := rc.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("blob %s: %w (longer than its name says)", b, ErrCorrupt)
	} else if err != io.EOF {
		if err == nil {
			err = fmt.Errorf("blob %s: no end after its %d bytes", b, b.Size)
		}
		return nil, err
	}
	return buf, nil
}

// readStored reads blob b's file whole: a small blob's, which is at most
// its size plus the header and the codec's framing unless it is damaged.
func (p *Pool) readStored(dir int, b Blob) ([]byte, error) {
	fd, err := unix.Openat(dir, b.Rel(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s is missing from the pool %s", b, p.dir)
		}
		return nil, &fs.PathError{Op: "open", Path: p.Path(b), Err: err}
	}
	f := os.NewFile(uintptr(fd), p.Path(b))
	defer f.Close()
	limit := 2*b.Size + 64<<10
	buf := blobBuf(b.Size + 4<<10)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				return nil, fmt.Errorf("blob %s: %w (its file is over %d bytes)", b, ErrCorrupt, limit)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// The expansion's buffers, reused: a restore reads thousands of small
// blobs, and a new zeroed buffer for each was a tenth of its CPU time.
// blobBufs[i] holds buffers of capacity 4 KiB << i.
var blobBufs [10]sync.Pool

func bufClass(n int64) int {
	for i := range blobBufs {
		if n <= 4<<10<<i {
			return i
		}
	}
	return -1
}

// bufCap is the capacity of blobBuf(n): what a blob of n bytes read ahead
// holds in memory.
func bufCap(n int64) int64 {
	if i := bufClass(n); i >= 0 {
		return 4 << 10 << i
	}
	return n
}

// blobBuf is an empty buffer with room for n bytes.
func blobBuf(n int64) []byte {
	i := bufClass(n)
	if i < 0 {
		return make([]byte, 0, n)
	}
	if v := blobBufs[i].Get(); v != nil {
		return (*v.(*[]byte))[:0]
	}
	return make([]byte, 0, 4<<10<<i)
}

// putBlobBuf gives a buffer of blobBuf's back.
func putBlobBuf(b []byte) {
	if i := bufClass(int64(cap(b))); i >= 0 && cap(b) == 4<<10<<i {
		blobBufs[i].Put(&b)
	}
}

// drain writes the oldest queued entries until keep are left.
func (x *expander) drain(ctx context.Context, tw *tar.Writer, keep int) error {
	for len(x.queue) > keep {
		e := x.queue[0]
		x.queue[0] = nil
		x.queue = x.queue[1:]
		if err := x.emit(ctx, tw, e); err != nil {
			return err
		}
	}
	return nil
}

func (x *expander) emit(ctx context.Context, tw *tar.Writer, e *pending) error {
	if !e.pooled {
		return tw.WriteHeader(e.h)
	}
	out := *e.h
	out.Size = e.blob.Size
	out.PAXRecords = maps.Clone(e.h.PAXRecords)
	delete(out.PAXRecords, spec.PoolPAXSHA1)
	delete(out.PAXRecords, spec.PoolPAXSize)
	if len(out.PAXRecords) == 0 {
		out.PAXRecords = nil
	}
	var err error
	switch {
	case e.fetch:
		select {
		case <-e.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		x.ahead -= bufCap(e.blob.Size)
		if e.err != nil {
			return fmt.Errorf("entry %q: %w", e.h.Name, e.err)
		}
		if err = tw.WriteHeader(&out); err == nil {
			_, err = tw.Write(e.data)
		}
		putBlobBuf(e.data)
		e.data = nil
	case e.blob.Size == 0:
		err = tw.WriteHeader(&out)
	default:
		err = x.stream(ctx, tw, &out, e.blob)
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", e.h.Name, err)
	}
	return nil
}

// stream writes a big blob's content as it is read.
func (x *expander) stream(ctx context.Context, tw *tar.Writer, h *tar.Header, b Blob) error {
	rc, err := x.p.OpenBlob(b, x.ids)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	// A 50 GB file must not hold a cancelled restore.
	n, err := io.CopyBuffer(tw, wire.ContextReader(ctx, rc), x.buf)
	if errors.Is(err, tar.ErrWriteTooLong) {
		return fmt.Errorf("blob %s: %w (longer than its name says)", b, ErrCorrupt)
	}
	if err == nil && n != b.Size {
		err = fmt.Errorf("blob %s: %w (it ended early)", b, ErrCorrupt)
	}
	return err
}

// ExpandReader is Expand as a reader: the expanded stream, made by a
// goroutine as it is read. Close stops it.
func (p *Pool) ExpandReader(ctx context.Context, r io.Reader, identities []age.Identity) *Expanded {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	e := &Expanded{pr: pr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		err := p.Expand(ctx, r, pw, identities)
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
		pw.CloseWithError(err)
	}()
	return e
}

// Expanded is ExpandReader's stream.
type Expanded struct {
	pr     *io.PipeReader
	n      int64
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (e *Expanded) Read(p []byte) (int, error) {
	n, err := e.pr.Read(p)
	e.n += int64(n)
	return n, err
}

// N is how many bytes of the expanded stream were read.
func (e *Expanded) N() int64 { return e.n }

// Err is why the expansion failed, once it has: a missing or damaged blob,
// where whoever reads the stream only sees it cut short.
func (e *Expanded) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *Expanded) Close() error {
	e.cancel()
	e.pr.Close()
	<-e.done
	return nil
}

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Pool mode (filedir = "pool"): the contents of Moodle's filedir and
// trashdir, whose files are named by the SHA-1 of their content and never
// change, go to the core's pool, once for all sets. The archive keeps
// everything else, and for each pooled file a header without data that
// says which blob holds it: these headers are the set's listing of pooled
// entries (path, mode, owner, mtime in the header; hash and size in two PAX
// records). A restore puts the data back in the stream (expandPool) before
// anything else reads it, so the rest of the restore sees an ordinary
// archive.

// PAX records of a pooled entry.
const (
	paxPoolSHA1 = "MBK.pool.sha1"
	paxPoolSize = "MBK.pool.size"
)

// poolable matches the files whose content goes to the pool: a file named
// by a SHA-1 anywhere below filedir or trashdir.
var poolable = regexp.MustCompile(`^(filedir|trashdir)/(.+/)?[0-9a-f]{40}$`)

// poolBatch is how many pooled files are asked about at once: one round
// trip to the core per batch, not per file.
const poolBatch = 512

// poolPuts is how many new blobs are sent to the core at once.
const poolPuts = 4

// pooler collects pooled files as the walk finds them and writes their
// entries batch by batch: asks the core which blobs it has, sends the
// others, then writes the headers in the order the walk found them.
type pooler struct {
	pool    sdk.Pool
	pending []pooledFile
	// New blobs this archive sent, and files whose content did not match
	// their name.
	newBlobs, newBytes, mismatched int64
}

type pooledFile struct {
	full, rel string
	h         *tar.Header // from lstat: mode, owner, mtime, size
}

func newPooler(p sdk.Pool) *pooler { return &pooler{pool: p} }

// add queues one regular file found by the walk.
func (pl *pooler) add(ctx context.Context, full, rel string, h *tar.Header, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	pl.pending = append(pl.pending, pooledFile{full: full, rel: rel, h: h})
	if len(pl.pending) >= poolBatch {
		return pl.flush(ctx, tw, st, warn)
	}
	return nil
}

// flush writes the queued entries.
func (pl *pooler) flush(ctx context.Context, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	if len(pl.pending) == 0 {
		return nil
	}
	batch := pl.pending
	pl.pending = nil
	blobs := make([]sdk.Blob, len(batch))
	for i, f := range batch {
		blobs[i] = sdk.Blob{SHA1: baseName(f.rel), Size: f.h.Size}
	}
	have, err := pl.pool.Have(ctx, blobs)
	if err != nil {
		return fmt.Errorf("ask the pool: %w", err)
	}
	// Send the new ones, a few at a time.
	skip := make([]bool, len(batch))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, poolPuts)
	for i := range batch {
		if have[i] {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b, h, gone, err := pl.put(ctx, batch[i], blobs[i])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if first == nil {
					first = err
				}
			case gone:
				skip[i] = true
			default:
				batch[i].h = h
				blobs[i] = b
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	for i, f := range batch {
		if skip[i] {
			warn("skipped %q: it vanished or was replaced while the directory was read", f.rel)
			continue
		}
		if !have[i] {
			pl.newBlobs++
			pl.newBytes += blobs[i].Size
			if blobs[i].SHA1 != baseName(f.rel) {
				pl.mismatched++
				warn("%q: its content hashes to %s, not to its name (corrupt in the site); stored under its real hash", f.rel, blobs[i].SHA1)
			}
		}
		if err := writePooled(tw, f.rel, f.h, blobs[i]); err != nil {
			return err
		}
		real := *f.h
		real.Size = blobs[i].Size
		st.add(f.rel, &real)
	}
	return nil
}

// put sends one file's content to the pool. Its header is taken again from
// fstat on the open file, so that it describes what was read; gone says
// the file vanished or stopped being a regular file.
func (pl *pooler) put(ctx context.Context, f pooledFile, expect sdk.Blob) (sdk.Blob, *tar.Header, bool, error) {
	fd, err := os.OpenFile(f.full, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return sdk.Blob{}, nil, true, nil
	}
	if err != nil {
		return sdk.Blob{}, nil, false, fmt.Errorf("open %q: %w", f.full, err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return sdk.Blob{}, nil, false, fmt.Errorf("stat %q: %w", f.full, err)
	}
	if !fi.Mode().IsRegular() {
		return sdk.Blob{}, nil, true, nil
	}
	h := statHeader(fi.Sys().(*syscall.Stat_t), fi.Size())
	expect.Size = fi.Size()
	b, err := pl.pool.Put(ctx, expect, fd)
	if err != nil {
		return sdk.Blob{}, nil, false, fmt.Errorf("store %q in the pool: %w", f.full, err)
	}
	return b, h, false, nil
}

func statHeader(sys *syscall.Stat_t, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Mode:     int64(sys.Mode & 0o7777),
		Uid:      int(sys.Uid),
		Gid:      int(sys.Gid),
		ModTime:  time.Unix(sys.Mtim.Sec, sys.Mtim.Nsec),
		Size:     size,
	}
}

// writePooled writes a pooled file's entry: its header, no data.
func writePooled(tw *archiveWriter, rel string, h *tar.Header, b sdk.Blob) error {
	out := header(h, rel, "")
	out.Size = 0
	out.PAXRecords = map[string]string{paxPoolSHA1: b.SHA1, paxPoolSize: strconv.FormatInt(b.Size, 10)}
	if err := tw.WriteHeader(out); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

func baseName(rel string) string {
	if i := bytes.LastIndexByte([]byte(rel), '/'); i >= 0 {
		return rel[i+1:]
	}
	return rel
}

// pooledBlob says whether h is a pooled file's entry, and which blob holds
// its data.
func pooledBlob(h *tar.Header) (sdk.Blob, bool, error) {
	sum, ok := h.PAXRecords[paxPoolSHA1]
	if !ok {
		return sdk.Blob{}, false, nil
	}
	size, err := strconv.ParseInt(h.PAXRecords[paxPoolSize], 10, 64)
	if err != nil || size < 0 || h.Typeflag != tar.TypeReg || h.Size != 0 {
		return sdk.Blob{}, false, fmt.Errorf("entry %q: a malformed pooled entry", h.Name)
	}
	return sdk.Blob{SHA1: sum, Size: size}, true, nil
}

// Restore side. expandPool turns an archive with pooled entries back into
// the whole archive a backup without the pool would have made: each pooled
// entry gets its data from the pool. Small blobs are fetched in batches,
// one call for up to fetchBatch of them (a call costs more than a small
// file's bytes), fetchParallel batches side by side, ahead of the entry
// being written by up to fetchAhead entries; a blob above fetchInMemory
// streams on its own when its turn comes. Entries without data
// (directories, links) wait in the same queue, so that they do not stop
// the fetching.
const (
	fetchAhead      = 2048
	fetchAheadBytes = 4 << 20
	fetchBatch      = 128
	fetchBatchBytes = 1 << 20
	fetchParallel   = 2
	fetchInMemory   = 1 << 20
	// bigOpen is how many big blobs' streams are opened ahead of their
	// turn: the connection buffers their first bytes meanwhile.
	bigOpen = 1
)

func expandPool(ctx context.Context, r io.Reader, pool sdk.PoolReader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		err := expand(ctx, r, pool, pw)
		if err == nil {
			// The core expects its stream read to the end.
			_, err = io.Copy(io.Discard, r)
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// batch is blobs fetched with one OpenMany.
type batch struct {
	blobs []sdk.Blob
	names []string
	bytes int64
	done  chan struct{}
	data  [][]byte
	err   error
}

// queued is an entry waiting its turn: ready (no data, or its data in
// memory), in a batch being fetched, or a big blob streamed when written.
type queued struct {
	h     *tar.Header
	blob  sdk.Blob
	b     *batch
	i     int
	big   bool
	ready bool
	// A big blob's stream, when opened ahead (opened closes then).
	opened chan struct{}
	rc     io.ReadCloser
	err    error
}

func expand(ctx context.Context, r io.Reader, pool sdk.PoolReader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ts := newTarStream(r)
	ts.pooledOK = true
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	sem := make(chan struct{}, fetchParallel)
	bigSem := make(chan struct{}, bigOpen)
	var (
		queue []*queued
		cur   *batch
		inMem int64 // bytes of the small blobs in the queue
	)
	dispatch := func() {
		if cur == nil {
			return
		}
		b := cur
		cur = nil
		sem <- struct{}{}
		go func() {
			defer close(b.done)
			defer func() { <-sem }()
			b.data, b.err = readBatch(ctx, pool, b)
		}()
	}
	emit := func(q *queued) error {
		out := header(q.h, q.h.Name, q.h.Linkname)
		if q.ready {
			return tw.WriteHeader(out)
		}
		out.Size = q.blob.Size
		var src io.Reader
		switch {
		case q.b != nil:
			if q.b == cur {
				dispatch()
			}
			<-q.b.done
			if q.b.err != nil {
				return q.b.err
			}
			src = bytes.NewReader(q.b.data[q.i])
			q.b.data[q.i] = nil
			inMem -= q.blob.Size
		case q.big && q.opened != nil:
			<-q.opened
			if q.err != nil {
				return fmt.Errorf("%q: %w", q.h.Name, q.err)
			}
			defer func() { q.rc.Close(); <-bigSem }()
			src = q.rc
		case q.big:
			rc, err := pool.Open(ctx, q.blob)
			if err != nil {
				return fmt.Errorf("%q: %w", q.h.Name, err)
			}
			defer rc.Close()
			src = rc
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		n, err := copyData(ctx, tw, src, q.blob.Size)
		if err == io.EOF {
			err = fmt.Errorf("blob %s ended after %d bytes", q.blob.SHA1, n)
		}
		if err == nil && q.big {
			// Read to the end: the core checks the hash there.
			_, err = io.Copy(io.Discard, src)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", q.h.Name, err)
		}
		return nil
	}
	drain := func(keep int) error {
		for len(queue) > keep {
			if err := emit(queue[0]); err != nil {
				return err
			}
			queue[0] = nil
			queue = queue[1:]
		}
		return nil
	}
	for {
		h, err := ts.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		b, ok, err := pooledBlob(h)
		if err != nil {
			return err
		}
		switch {
		case ok && b.Size > fetchInMemory:
			dispatch()
			q := &queued{h: h, blob: b, big: true}
			queue = append(queue, q)
			// Opened ahead when a slot is free, else when its turn comes:
			// never waiting for a slot that only a later entry frees.
			select {
			case bigSem <- struct{}{}:
				q.opened = make(chan struct{})
				go func() {
					defer close(q.opened)
					if q.rc, q.err = pool.Open(ctx, q.blob); q.err != nil {
						<-bigSem
					}
				}()
			default:
			}
		case ok && b.Size == 0:
			queue = append(queue, &queued{h: h, blob: b, ready: true})
		case ok:
			if cur == nil {
				cur = &batch{done: make(chan struct{})}
			}
			queue = append(queue, &queued{h: h, blob: b, b: cur, i: len(cur.blobs)})
			cur.blobs = append(cur.blobs, b)
			cur.names = append(cur.names, h.Name)
			inMem += b.Size
			if cur.bytes += b.Size; len(cur.blobs) >= fetchBatch || cur.bytes >= fetchBatchBytes {
				dispatch()
			}
		case h.Typeflag != tar.TypeReg || h.Size == 0:
			out := *h
			out.PAXRecords = nil
			queue = append(queue, &queued{h: &out, ready: true})
		default:
			// A file with data in the stream: what was queued goes first.
			dispatch()
			if err := drain(0); err != nil {
				return err
			}
			out := *h
			out.PAXRecords = nil
			if err := tw.WriteHeader(header(&out, h.Name, h.Linkname)); err != nil {
				return err
			}
			if _, err := copyData(ctx, tw, ts, h.Size); err != nil {
				if err == io.EOF {
					err = errTruncated
				}
				return err
			}
			continue
		}
		for len(queue) > fetchAhead/2 && (len(queue) > fetchAhead || inMem > fetchAheadBytes) {
			if err := drain(len(queue) - 1); err != nil {
				return err
			}
		}
	}
	dispatch()
	if err := drain(0); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// readBatch reads a batch's blobs with one call, hash checked by the core.
func readBatch(ctx context.Context, pool sdk.PoolReader, b *batch) ([][]byte, error) {
	rc, err := pool.OpenMany(ctx, b.blobs)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", b.names[0], err)
	}
	defer rc.Close()
	buf := make([]byte, b.bytes)
	out := make([][]byte, len(b.blobs))
	at := int64(0)
	for i, bl := range b.blobs {
		out[i] = buf[at : at+bl.Size : at+bl.Size]
		if _, err := io.ReadFull(rc, out[i]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("blob %s ended early", bl.SHA1)
			}
			return nil, fmt.Errorf("%q: %w", b.names[i], err)
		}
		at += bl.Size
	}
	// The end, where the core reports a blob that did not match its name.
	if n, err := io.Copy(io.Discard, rc); err != nil || n > 0 {
		if err == nil {
			err = fmt.Errorf("%d bytes more than the blobs' sizes", n)
		}
		return nil, fmt.Errorf("%q…: %w", b.names[0], err)
	}
	return out, nil
}

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
// entry gets its data from the pool. Blobs are fetched side by side, up to
// fetchAhead entries ahead of the one being written, those up to
// fetchInMemory bytes into memory (a restore of many small files is bound
// by round trips, not bytes); bigger ones stream when their turn comes.
const (
	fetchAhead    = 64
	fetchParallel = 8
	fetchInMemory = 512 << 10
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

type fetched struct {
	h    *tar.Header
	blob sdk.Blob
	done chan struct{}
	data []byte // nil: stream it when written
	err  error
}

func expand(ctx context.Context, r io.Reader, pool sdk.PoolReader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ts := newTarStream(r)
	ts.pooledOK = true
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	sem := make(chan struct{}, fetchParallel)
	var queue []*fetched
	emit := func(f *fetched) error {
		<-f.done
		if f.err != nil {
			return f.err
		}
		out := header(f.h, f.h.Name, f.h.Linkname)
		out.Size = f.blob.Size
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		var src io.Reader = bytes.NewReader(f.data)
		if f.data == nil && f.blob.Size > 0 {
			rc, err := pool.Open(ctx, f.blob)
			if err != nil {
				return fmt.Errorf("%q: %w", f.h.Name, err)
			}
			defer rc.Close()
			src = rc
		}
		n, err := copyData(ctx, tw, src, f.blob.Size)
		if err == io.EOF {
			err = fmt.Errorf("blob %s ended after %d bytes", f.blob.SHA1, n)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", f.h.Name, err)
		}
		if f.data == nil && f.blob.Size > 0 {
			// Read to the end: the core checks the hash there.
			if _, err := io.Copy(io.Discard, src); err != nil {
				return fmt.Errorf("%q: %w", f.h.Name, err)
			}
		}
		return nil
	}
	drain := func(keep int) error {
		for len(queue) > keep {
			if err := emit(queue[0]); err != nil {
				return err
			}
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
		if ok {
			f := &fetched{h: h, blob: b, done: make(chan struct{})}
			if b.Size == 0 || b.Size > fetchInMemory {
				close(f.done)
			} else {
				sem <- struct{}{}
				go func() {
					defer close(f.done)
					defer func() { <-sem }()
					f.data, f.err = readBlob(ctx, pool, b)
					if f.err != nil {
						f.err = fmt.Errorf("%q: %w", h.Name, f.err)
					}
				}()
			}
			queue = append(queue, f)
			if err := drain(fetchAhead); err != nil {
				return err
			}
			continue
		}
		if err := drain(0); err != nil {
			return err
		}
		out := *h
		out.PAXRecords = nil
		if err := tw.WriteHeader(header(&out, h.Name, h.Linkname)); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := copyData(ctx, tw, ts, h.Size); err != nil {
				if err == io.EOF {
					err = errTruncated
				}
				return err
			}
		}
	}
	if err := drain(0); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// readBlob reads a whole small blob, hash checked by the core.
func readBlob(ctx context.Context, pool sdk.PoolReader, b sdk.Blob) ([]byte, error) {
	rc, err := pool.Open(ctx, b)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, b.Size+1))
	if _, err := io.Copy(buf, rc); err != nil {
		return nil, err
	}
	if int64(buf.Len()) != b.Size {
		return nil, fmt.Errorf("blob %s gave %d bytes, not %d", b.SHA1, buf.Len(), b.Size)
	}
	return buf.Bytes(), nil
}

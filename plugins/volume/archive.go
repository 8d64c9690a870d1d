package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
)

// sendFileMin is the smallest file whose data goes around tar.Writer: each
// send first flushes what is buffered, a syscall that pays off only for
// larger files (on the medium bench volume, the 7% of files of 64 KiB or
// more hold 78% of the bytes).
const sendFileMin = 64 << 10

// sendChunk bounds each sendfile call, so that a cancelled run stops
// between two chunks even inside a 50 GB file.
const sendChunk = 8 << 20

// archiveWriter is the tar stream a backup writes. tar.Writer keeps the
// format and its bookkeeping (each entry's size, the padding, the end). The
// data of a large file goes around it when the stream can send a file
// straight from the page cache (sdk.FileSender): tar.Writer is then handed
// as many bytes, which the layer under it drops, so that it still counts
// them and pads the entry.
type archiveWriter struct {
	*tar.Writer
	under dropWriter
	send  sdk.FileSender // nil when the stream cannot send files
	pool  *pooler        // nil unless filedir = "pool"
	hdr   []byte         // writeHeader's buffer
	// listing is the pool listing's lines not yet written out (see
	// spec.PoolPAXListing): in a pooled backup, each pooled file and each
	// directory of filedir and trashdir is a line, where the PAX form
	// took 1,536 and 512 bytes of headers (26 MB on the medium bench
	// site's unchanged night, 1.6 MB as lines). The lines go out as one
	// entry when they reach listingChunk and before any other entry, so
	// that the stream keeps the order in which entries were written.
	listing []byte
}

// listingChunk is the size at which the listing's lines go out as an
// entry: the core holds one such entry in memory while it restores.
const listingChunk = 512 << 10

// list makes e a line of the listing, if this is a pooled backup and e
// can be one; listed says it was.
func (a *archiveWriter) list(e *spec.ListEntry) (listed bool, err error) {
	if a.pool == nil || !spec.Listable(e) {
		return false, nil
	}
	if a.listing == nil {
		// Sized once for an entry and the line that takes it past.
		a.listing = make([]byte, 0, listingChunk+4<<10)
	}
	a.listing = spec.AppendListEntry(a.listing, e)
	if len(a.listing) >= listingChunk {
		return true, a.flushListing()
	}
	return true, nil
}

// flushListing writes the listing's lines out as an entry.
func (a *archiveWriter) flushListing() error {
	if len(a.listing) == 0 {
		return nil
	}
	h := tar.Header{Typeflag: tar.TypeReg, Name: spec.PoolListingName, Mode: 0o600, Size: int64(len(a.listing)),
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		PAXRecords: map[string]string{spec.PoolPAXListing: spec.PoolListingVersion, spec.PoolPAXSHA1: "listing"}}
	if err := a.Writer.WriteHeader(&h); err != nil {
		return err
	}
	if _, err := a.Writer.Write(a.listing); err != nil {
		return err
	}
	a.listing = a.listing[:0]
	return nil
}

// WriteHeader is tar.Writer's, after the listing's lines.
func (a *archiveWriter) WriteHeader(h *tar.Header) error {
	if err := a.flushListing(); err != nil {
		return err
	}
	return a.Writer.WriteHeader(h)
}

// Flush is tar.Writer's, after the listing's lines.
func (a *archiveWriter) Flush() error {
	if err := a.flushListing(); err != nil {
		return err
	}
	return a.Writer.Flush()
}

// Close is tar.Writer's, after the listing's lines.
func (a *archiveWriter) Close() error {
	if err := a.flushListing(); err != nil {
		return err
	}
	return a.Writer.Close()
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	a := &archiveWriter{under: dropWriter{w: w}}
	a.Writer = tar.NewWriter(&a.under)
	a.send, _ = w.(sdk.FileSender)
	return a
}

// dropWriter passes writes on, except for the next drop bytes: file data
// that was sent around tar.Writer.
type dropWriter struct {
	w    io.Writer
	drop int64
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if d.drop == 0 {
		return d.w.Write(p)
	}
	if int64(len(p)) > d.drop {
		// tar.Writer hands entry data through as given, and the bytes it
		// is handed are exactly those sent: this would be a bug here.
		return 0, errors.New("archive: tar data out of step with the bytes sent")
	}
	d.drop -= int64(len(p))
	return len(p), nil
}

// zeros stands for sent data when it is handed to tar.Writer: dropWriter
// never looks at it.
var zeros [256 << 10]byte

// sent tells tar.Writer that n bytes of the current entry were sent around it.
func (a *archiveWriter) sent(n int64) error {
	a.under.drop = n
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := a.Writer.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// copyFrom copies up to n bytes of the current entry from r. It returns
// io.EOF, with the count, when r ends first.
func (a *archiveWriter) copyFrom(ctx context.Context, r io.Reader, n int64) (int64, error) {
	f, ok := r.(*os.File)
	if !ok || a.send == nil || n < sendFileMin {
		return copyData(ctx, a.Writer, r, n)
	}
	var done int64
	for done < n {
		if err := ctx.Err(); err != nil {
			return done, context.Cause(ctx)
		}
		want := min(n-done, sendChunk)
		k, err := a.send.SendFile(f, want)
		if errors.Is(err, sdk.ErrNoSendFile) {
			// This filesystem cannot: copy, here and from now on.
			a.send = nil
			m, err := copyData(ctx, a.Writer, f, n-done)
			return done + m, err
		}
		if k > 0 {
			if err := a.sent(k); err != nil {
				return done, err
			}
			done += k
		}
		if err != nil {
			return done, err
		}
		if k < want {
			return done, io.EOF
		}
	}
	return done, nil
}

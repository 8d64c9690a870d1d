package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
)

// Pool mode (filedir = "pool"): the contents of Moodle's filedir and
// trashdir, whose files are named by the SHA-1 of their content and never
// change, go to the core's pool, once for all sets. The archive keeps
// everything else, and for each pooled file a header without data that
// says which blob holds it: these headers are the set's listing of pooled
// entries (path, mode, owner, mtime in the header; hash and size in two PAX
// records). The core puts the data back into the stream before a restore
// (core/pool's Expand), so a restore reads an ordinary archive.

// PAX records of a pooled entry.
const (
	paxPoolSHA1 = spec.PoolPAXSHA1
	paxPoolSize = spec.PoolPAXSize
)

// poolable matches the files whose content goes to the pool: a file named
// by a SHA-1 anywhere below filedir or trashdir.
// (A function, not a regular expression: an unchanged night calls it once
// a file, and little else.)
func poolable(rel string) bool {
	rest, ok := pooledArea(rel)
	if !ok {
		return false
	}
	name := rest[strings.LastIndexByte(rest, '/')+1:]
	return !strings.HasPrefix(rest, "/") && !strings.Contains(rest, "//") && spec.HexSHA1(name)
}

// pooledArea is rel below filedir/ or trashdir/, the areas whose files are
// pooled and whose directories are lines of the pool listing; false for
// anything else.
func pooledArea(rel string) (string, bool) {
	if rest, ok := strings.CutPrefix(rel, "filedir/"); ok {
		return rest, true
	}
	return strings.CutPrefix(rel, "trashdir/")
}

// poolBatch is how many pooled files are asked about at once: one round
// trip to the core per batch, not per file. (A variable for the tests, which
// make batches small to pass many of them through the pipeline.)
var poolBatch = 512

// poolPuts is how many new blobs are sent to the core at once.
const poolPuts = 4

// pooler collects pooled files as the walk finds them and writes their
// entries batch by batch: asks the core which blobs it has, sends the
// others, then writes the headers in the order the walk found them. One
// batch is with the core while the walk fills the next: on an unchanged
// night the question and the walk overlap instead of taking turns.
type pooler struct {
	pool    sdk.Pool
	pending []pooledFile
	// asked is the batch with the core, nil when none is.
	asked *poolJob
	// New blobs this archive sent, and files whose content did not match
	// their name.
	newBlobs, newBytes, mismatched int64
	// readBytes is how many bytes of pooled files were read: the new
	// blobs' on a walk, every file's through the archive API.
	readBytes int64
	// puts is how many new blobs are on their way at once.
	puts int
	// cacheDir is where the walk may keep its cache ("" for nowhere);
	// cache is the walk's use of it, committed when the backup succeeds.
	cacheDir string
	cache    *walkCache
	// Hard links: linked is each pooled file with other names, by inode,
	// from its first name; a later name in the tree is a link entry
	// queued behind it. skipped holds the pooled files that vanished
	// before they could be read; whole, set by the walk, archives a file
	// with its data (a link whose first name was skipped).
	linked     map[devIno]string
	linkedFull bool // linkedMax reached (and said)
	skipped    map[string]bool
	whole      func(full, rel string) error
}

type pooledFile struct {
	full, rel string
	m         fileMeta // from lstat
	// link is the first name of the pooled file this entry is another
	// name of: a hard link, written after it.
	link string
}

// poolJob is one batch's question to the core and the puts it leads to;
// done is closed when blobs, have, skip and err are final.
type poolJob struct {
	batch []pooledFile
	blobs []sdk.Blob
	have  []bool
	skip  []bool // vanished or replaced before it could be read
	err   error
	done  chan struct{}
}

func newPooler(p sdk.Pool) *pooler {
	return &pooler{pool: p, puts: poolPuts, linked: map[devIno]string{}, skipped: map[string]bool{}}
}

// add queues one regular file found by the walk.
func (pl *pooler) add(ctx context.Context, full, rel string, m fileMeta, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	return pl.queue(ctx, pooledFile{full: full, rel: rel, m: m}, tw, st, warn)
}

// queue adds f to the pending batch, and sends the batch when it is full.
func (pl *pooler) queue(ctx context.Context, f pooledFile, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	if pl.pending == nil {
		// A batch's files are handed over whole: each has its own slice.
		pl.pending = make([]pooledFile, 0, poolBatch)
	}
	pl.pending = append(pl.pending, f)
	if len(pl.pending) < poolBatch {
		return nil
	}
	return pl.turn(ctx, tw, st, warn)
}

// linkedMax bounds how many pooled files with other names the walk
// remembers: 116 bytes each, 22 MiB at the bound (measured as the heap a
// map of 200,000 filedir names grew by). A filedir whose every file has a name
// outside the tree (a same-disk snapshot) would otherwise hold millions;
// past it, a file's second name in the tree is archived as a file of its
// own (the content is the same, the link is lost). (A variable for the
// tests.)
var linkedMax = 200_000

// remember records rel as the first name of the pooled file of inode key.
func (pl *pooler) remember(key devIno, rel string, log hclog.Logger) {
	if len(pl.linked) < linkedMax {
		pl.linked[key] = rel
		return
	}
	if !pl.linkedFull {
		pl.linkedFull = true
		log.Info("hard links: more pooled files have other names than are remembered; a further name inside the tree is archived as a file of its own",
			"remembered", linkedMax, "first_not_remembered", rel)
	}
}

// linkTarget is the first name of the pooled file of inode key, "" when
// none was pooled or it vanished before it could be read.
func (pl *pooler) linkTarget(key devIno) string {
	if first, ok := pl.linked[key]; ok && !pl.skipped[first] {
		return first
	}
	return ""
}

// addLink queues another name of a pooled file queued before (its first
// name, target): a hard link entry, written after the file's.
func (pl *pooler) addLink(ctx context.Context, full, rel, target string, m fileMeta, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	return pl.queue(ctx, pooledFile{full: full, rel: rel, m: m, link: target}, tw, st, warn)
}

// flush writes every queued entry: the walk is over.
func (pl *pooler) flush(ctx context.Context, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	for pl.asked != nil || len(pl.pending) > 0 {
		if err := pl.turn(ctx, tw, st, warn); err != nil {
			return err
		}
	}
	return nil
}

// turn lets the batch with the core finish, sends the pending one, and
// writes the finished one's entries while the core answers. (Waiting first
// keeps one batch's puts from piling onto the next one's.)
func (pl *pooler) turn(ctx context.Context, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	done := pl.asked
	if err := pl.wait(); err != nil {
		return err
	}
	if len(pl.pending) > 0 {
		pl.asked = pl.ask(ctx, pl.pending)
		pl.pending = nil
	}
	return pl.write(done, tw, st, warn)
}

// wait lets the batch with the core finish; its error is the run's. It is
// also how a failed run makes sure nothing still talks to the core once
// Backup has returned.
func (pl *pooler) wait() error {
	j := pl.asked
	if j == nil {
		return nil
	}
	<-j.done
	pl.asked = nil
	return j.err
}

// ask starts a batch's question and puts.
func (pl *pooler) ask(ctx context.Context, batch []pooledFile) *poolJob {
	j := &poolJob{batch: batch, blobs: make([]sdk.Blob, len(batch)), skip: make([]bool, len(batch)), done: make(chan struct{})}
	for i, f := range batch {
		if f.link == "" {
			j.blobs[i] = sdk.Blob{SHA1: baseName(f.rel), Size: f.m.size}
		}
	}
	go func() {
		defer close(j.done)
		j.err = pl.resolve(ctx, j)
	}()
	return j
}

// resolve asks the core which of the batch's blobs it has and sends the
// others, a few at a time.
func (pl *pooler) resolve(ctx context.Context, j *poolJob) error {
	// Link entries have no blob of their own: they are not asked about.
	var asked []sdk.Blob
	var at []int
	for i, f := range j.batch {
		if f.link == "" {
			asked, at = append(asked, j.blobs[i]), append(at, i)
		}
	}
	var answers []bool
	if len(asked) > 0 {
		var err error
		if answers, err = pl.pool.Have(ctx, asked); err != nil {
			return fmt.Errorf("ask the pool: %w", err)
		}
	}
	if len(answers) != len(asked) {
		return fmt.Errorf("ask the pool: %d answers to %d questions", len(answers), len(asked))
	}
	have := make([]bool, len(j.batch))
	for i := range have {
		have[i] = j.batch[i].link != ""
	}
	for k, i := range at {
		have[i] = answers[k]
	}
	j.have = have
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, pl.puts)
	for i := range j.batch {
		if have[i] {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b, m, gone, err := pl.put(ctx, j.batch[i], j.blobs[i])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if first == nil {
					first = err
				}
			case gone:
				j.skip[i] = true
			default:
				j.batch[i].m = m
				j.blobs[i] = b
			}
		}()
	}
	wg.Wait()
	return first
}

// write writes a finished batch's entries, in the order the walk found
// them.
func (pl *pooler) write(j *poolJob, tw *archiveWriter, st *stats, warn func(string, ...any)) error {
	if j == nil {
		return nil
	}
	for i, f := range j.batch {
		if f.link != "" {
			if err := pl.writeLink(f, tw, st); err != nil {
				return err
			}
			continue
		}
		if j.skip[i] {
			pl.skipped[f.rel] = true
			warn("skipped %q: it vanished or was replaced while the directory was read", f.rel)
			continue
		}
		b := j.blobs[i]
		if !j.have[i] {
			pl.newBlobs++
			pl.newBytes += b.Size
			pl.readBytes += b.Size
			if b.SHA1 != baseName(f.rel) {
				pl.mismatched++
				warn("%q: its content hashes to %s, not to its name (corrupt in the site); stored under its real hash", f.rel, b.SHA1)
			}
		}
		if err := writePooled(tw, f.rel, f.m, b); err != nil {
			return err
		}
		st.addFile(f.rel, b.Size)
	}
	return nil
}

// writeLink writes a link entry: a hard link to its pooled file's first
// name, or, when that one vanished before it could be read, this name
// archived with its data (and the names after it, links to this one).
func (pl *pooler) writeLink(f pooledFile, tw *archiveWriter, st *stats) error {
	if pl.skipped[f.link] {
		return pl.whole(f.full, f.rel)
	}
	h := f.m.header(tar.TypeLink)
	h.Size = 0
	out := header(&h, f.rel, f.link)
	if err := tw.WriteHeader(out); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	st.add(f.rel, out)
	return nil
}

// put sends one file's content to the pool. Its metadata is taken again from
// fstat on the open file, so that it describes what was read; gone says
// the file vanished or stopped being a regular file.
func (pl *pooler) put(ctx context.Context, f pooledFile, expect sdk.Blob) (sdk.Blob, fileMeta, bool, error) {
	fd, err := os.OpenFile(f.full, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return sdk.Blob{}, fileMeta{}, true, nil
	}
	if err != nil {
		return sdk.Blob{}, fileMeta{}, false, fmt.Errorf("open %q: %w", f.full, err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return sdk.Blob{}, fileMeta{}, false, fmt.Errorf("stat %q: %w", f.full, err)
	}
	if !fi.Mode().IsRegular() {
		return sdk.Blob{}, fileMeta{}, true, nil
	}
	m := metaOf(fi.Sys().(*syscall.Stat_t), fi.Size())
	expect.Size = fi.Size()
	b, err := pl.pool.Put(ctx, expect, fd)
	if err != nil {
		return sdk.Blob{}, fileMeta{}, false, fmt.Errorf("store %q in the pool: %w", f.full, err)
	}
	return b, m, false, nil
}

// fileMeta is what a pooled file's entry keeps of its lstat: a batch
// holds hundreds, for a fraction of a tar.Header's size each.
type fileMeta struct {
	mode, size int64
	uid, gid   int
	sec        int64 // mtime
	nsec       int32
}

func metaOf(sys *syscall.Stat_t, size int64) fileMeta {
	return fileMeta{mode: int64(sys.Mode & 0o7777), size: size, uid: int(sys.Uid), gid: int(sys.Gid), sec: sys.Mtim.Sec, nsec: int32(sys.Mtim.Nsec)}
}

func (m fileMeta) mtime() time.Time { return time.Unix(m.sec, int64(m.nsec)) }

// header is m as a header of type typ.
func (m fileMeta) header(typ byte) tar.Header {
	return tar.Header{Typeflag: typ, Mode: m.mode, Uid: m.uid, Gid: m.gid, ModTime: m.mtime(), Size: m.size}
}

// writePooled writes a pooled file's entry: its header, no data.
func writePooled(tw *archiveWriter, rel string, m fileMeta, b sdk.Blob) error {
	e := spec.ListEntry{Name: rel, Mode: m.mode, UID: m.uid, GID: m.gid, ModTime: m.mtime(), Size: b.Size, SHA1: b.SHA1}
	if listed, err := tw.list(&e); listed || err != nil {
		if err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
		return nil
	}
	out := tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: m.mode, Uid: m.uid, Gid: m.gid, ModTime: e.ModTime, Format: tar.FormatPAX}
	recs := [2][2]string{{paxPoolSHA1, b.SHA1}, {paxPoolSize, strconv.FormatInt(b.Size, 10)}}
	if err := tw.writeHeaderRecs(&out, recs[:]); err != nil {
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

package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/sdk"
)

// A pooled backup of a tree this host cannot open (a remote Engine, or
// read = "engine") would read every file through the Engine's archive API:
// the pool would save the disk and the uploads, but an unchanged night would
// still read the whole of filedir. Instead this plugin's binary walks the
// tree in a helper container next to the data (selfhelper.go), with the
// same code as a host directory (backupHost), and asks the plugin over its
// standard input and output which blobs the core lacks: only those files'
// content leaves the container. Where no helper can run (an Engine of
// another architecture) the archive API is read as before.
//
// The helper writes frames to its standard output: a type byte, a 4-byte
// big-endian length, the payload. A question (have, put) and a put's
// content and end start their payload with the question's 4-byte id, and
// so does the plugin's answer on the helper's standard input: several puts
// are on their way at once, as on a host directory, so that the round trip
// through the Engine's attach streams is not paid once per new file.
const (
	frameArchive = 'a' // the archive's bytes, in order, without its end
	frameHave    = 'h' // a question: JSON []sdk.Blob, answered JSON []bool
	framePut     = 'p' // a question: JSON sdk.Blob, then its content in frameData, then frameEnd
	frameData    = 'd'
	frameEnd     = 'e' // empty, or why the content could not be read (the put is abandoned)
	frameResult  = 's' // the last frame: JSON walkResult
	frameAnswer  = 'A' // the plugin's answer, JSON
	frameFailed  = 'X' // the plugin's error, as text
	// The walk cache (walkcache.go), when the core gives one: the plugin
	// sends the last walk's before anything else, the helper sends its
	// own back before its result, whole or not at all.
	frameCache       = 'c' // the last walk cache's bytes, in order
	frameCacheEnd    = 'C' // empty: they are all sent
	frameNewCache    = 'w' // this walk's cache's bytes, in order
	frameNewCacheEnd = 'W' // empty: this walk's cache is whole
	frameChunk       = 64 << 10
	frameLimit       = 16 << 20
)

// walkCmd, after helperArg, walks a tree in a helper container:
// `walk ROOT SPEC`, SPEC a walkSpec in JSON.
const walkCmd = "walk"

type walkSpec struct {
	Exclude []string `json:"exclude"`
	// Cache: the walk cache comes in first and goes back out last.
	Cache bool `json:"cache,omitempty"`
}

// walkResult is what the walk counted, for the plugin's details.
type walkResult struct {
	Stats      statsWire `json:"stats"`
	NewBlobs   int64     `json:"new_blobs"`
	NewBytes   int64     `json:"new_bytes"`
	ReadBytes  int64     `json:"read_bytes"`
	Mismatched int64     `json:"mismatched"`
	// Directories of the pooled areas listed, and taken from the cache.
	DirsRead   int64 `json:"dirs_read,omitempty"`
	DirsCached int64 `json:"dirs_cached,omitempty"`
}

// writeFrame writes a frame whose payload is parts, one after the other.
func writeFrame(w io.Writer, typ byte, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(n))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// readFrame reads one frame into buf (grown when too small).
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, buf, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > frameLimit {
		return 0, buf, fmt.Errorf("a frame of %d bytes", n)
	}
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, buf, err
	}
	return h[0], buf, nil
}

// walkConn is the helper's end: the archive and the questions go out as
// frames, the answers come in. It is the helper's sdk.Pool.
type walkConn struct {
	mu sync.Mutex // one frame at a time
	w  *bufio.Writer

	amu     sync.Mutex
	next    uint32
	waiting map[uint32]chan walkAnswer
	readErr error // why answers stopped coming
}

type walkAnswer struct {
	typ  byte
	body []byte
}

func newWalkConn(w io.Writer, r io.Reader) *walkConn {
	c := &walkConn{w: bufio.NewWriterSize(w, 256<<10), waiting: map[uint32]chan walkAnswer{}}
	go c.answers(bufio.NewReader(r))
	return c
}

// answers hands each answer to the question waiting for it.
func (c *walkConn) answers(r io.Reader) {
	var err error
	for {
		var typ byte
		var b []byte
		if typ, b, err = readFrame(r, nil); err != nil {
			break
		}
		if len(b) < 4 {
			err = fmt.Errorf("an answer of %d bytes", len(b))
			break
		}
		id := binary.BigEndian.Uint32(b)
		c.amu.Lock()
		ch := c.waiting[id]
		delete(c.waiting, id)
		c.amu.Unlock()
		if ch == nil {
			err = fmt.Errorf("an answer to question %d, which was not asked", id)
			break
		}
		ch <- walkAnswer{typ, b[4:]}
	}
	c.amu.Lock()
	defer c.amu.Unlock()
	c.readErr = err
	for id, ch := range c.waiting {
		close(ch)
		delete(c.waiting, id)
	}
}

// question registers a question and returns its id and where its answer
// comes.
func (c *walkConn) question() (uint32, chan walkAnswer, error) {
	c.amu.Lock()
	defer c.amu.Unlock()
	if c.readErr != nil {
		return 0, nil, fmt.Errorf("read the plugin's answers: %w", c.readErr)
	}
	c.next++
	ch := make(chan walkAnswer, 1)
	c.waiting[c.next] = ch
	return c.next, ch, nil
}

func (c *walkConn) send(typ byte, id uint32, p []byte, flush bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var h [9]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)+4))
	binary.BigEndian.PutUint32(h[5:], id)
	if _, err := c.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := c.w.Write(p); err != nil {
		return err
	}
	if flush {
		return c.w.Flush()
	}
	return nil
}

// Write sends archive bytes.
func (c *walkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for off := 0; off < len(p); off += frameChunk {
		if err := writeFrame(c.w, frameArchive, p[off:min(len(p), off+frameChunk)]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (c *walkConn) answer(ch chan walkAnswer, v any) error {
	a, ok := <-ch
	switch {
	case !ok:
		c.amu.Lock()
		defer c.amu.Unlock()
		return fmt.Errorf("read the plugin's answer: %w", c.readErr)
	case a.typ == frameFailed:
		return errors.New(string(a.body))
	case a.typ != frameAnswer:
		return fmt.Errorf("the plugin answered with a frame of type %q", a.typ)
	}
	return json.Unmarshal(a.body, v)
}

func (c *walkConn) Have(_ context.Context, bs []sdk.Blob) ([]bool, error) {
	q, err := json.Marshal(bs)
	if err != nil {
		return nil, err
	}
	id, ch, err := c.question()
	if err != nil {
		return nil, err
	}
	if err := c.send(frameHave, id, q, true); err != nil {
		return nil, err
	}
	var have []bool
	if err := c.answer(ch, &have); err != nil {
		return nil, err
	}
	if len(have) != len(bs) {
		return nil, fmt.Errorf("the plugin answered %d of %d blobs", len(have), len(bs))
	}
	return have, nil
}

func (c *walkConn) Put(_ context.Context, b sdk.Blob, r io.Reader) (sdk.Blob, error) {
	q, err := json.Marshal(b)
	if err != nil {
		return sdk.Blob{}, err
	}
	id, ch, err := c.question()
	if err != nil {
		return sdk.Blob{}, err
	}
	if err := c.send(framePut, id, q, false); err != nil {
		return sdk.Blob{}, err
	}
	buf := make([]byte, frameChunk)
	var readErr error
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if err := c.send(frameData, id, buf[:n], false); err != nil {
				return sdk.Blob{}, err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	var why []byte
	if readErr != nil {
		why = []byte(readErr.Error())
	}
	if err := c.send(frameEnd, id, why, true); err != nil {
		return sdk.Blob{}, err
	}
	var got sdk.Blob
	err = c.answer(ch, &got)
	if readErr != nil {
		return sdk.Blob{}, readErr
	}
	return got, err
}

// walkMain is the helper's side of walkHelper.
func walkMain(args []string, log hclog.Logger) error {
	if len(args) != 2 {
		return errors.New("usage: walk ROOT SPEC")
	}
	var spec walkSpec
	if err := json.Unmarshal([]byte(args[1]), &spec); err != nil {
		return fmt.Errorf("bad walk spec: %w", err)
	}
	ex, err := newExcluder(spec.Exclude)
	if err != nil {
		return err
	}
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	var cacheDir string
	if spec.Cache {
		if cacheDir, err = takeWalkCache(in, log); err != nil {
			return err
		}
		if cacheDir != "" {
			defer os.RemoveAll(cacheDir)
		}
	}
	c := newWalkConn(os.Stdout, in)
	st := newStats()
	tw := newArchiveWriter(c)
	tw.pool = newPooler(c)
	tw.pool.puts = walkPuts
	tw.pool.cacheDir = cacheDir
	defer func() { tw.pool.cache.close() }()
	p := &plugin{log: log}
	ctx := context.Background()
	err = p.backupHost(ctx, args[0], ex, st, tw)
	if err == nil {
		err = tw.pool.flush(ctx, tw, st, func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			log.Warn(msg)
			st.warn(msg)
		})
	} else {
		tw.pool.wait()
	}
	if err != nil {
		return err
	}
	// The entries are whole; the archive's end is the plugin's to write.
	if err := tw.Flush(); err != nil {
		return err
	}
	if wc := tw.pool.cache; wc != nil {
		if wc.commit(); !wc.failed {
			if err := c.sendNewCache(wc.path); err != nil {
				return err
			}
		}
	}
	read, cached := tw.pool.cache.summary()
	res, err := json.Marshal(walkResult{Stats: st.wire(), NewBlobs: tw.pool.newBlobs, NewBytes: tw.pool.newBytes,
		ReadBytes: tw.pool.readBytes, Mismatched: tw.pool.mismatched, DirsRead: read, DirsCached: cached})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := writeFrame(c.w, frameResult, res); err != nil {
		return err
	}
	return c.w.Flush()
}

// takeWalkCache reads the last walk cache the plugin sends into a
// directory of the helper's own, and returns it ("" when the helper can
// write none: it walks without a cache).
func takeWalkCache(r *bufio.Reader, log hclog.Logger) (string, error) {
	var f *os.File
	dir, err := func() (string, error) {
		if err := os.MkdirAll(os.TempDir(), 0o1777); err != nil {
			return "", err
		}
		return os.MkdirTemp("", "mbk-walk-cache-")
	}()
	if err == nil {
		f, err = os.Create(filepath.Join(dir, "walk"))
	}
	if err != nil {
		log.Warn("no walk cache: every directory is read", "error", err)
	}
	var buf []byte
	for {
		typ, b, err := readFrame(r, buf)
		buf = b
		if err != nil {
			return "", fmt.Errorf("read the walk cache: %w", err)
		}
		switch typ {
		case frameCache:
			if f == nil {
				continue
			}
			if _, err := f.Write(b); err != nil {
				// Without the last cache every directory is read; this
				// walk's cache is still made.
				log.Warn("the last walk cache could not be kept: every directory is read", "error", err)
				f.Close()
				os.Remove(f.Name())
				f = nil
			}
		case frameCacheEnd:
			if f != nil {
				if err := f.Close(); err != nil {
					os.Remove(f.Name())
				}
			}
			return dir, nil
		default:
			return "", fmt.Errorf("a frame of type %q before the walk cache's end", typ)
		}
	}
}

// sendNewCache sends the walk cache at path, then says it is whole; when
// it cannot be read to its end, no end goes: the plugin drops what came.
func (c *walkConn) sendNewCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // no cache: the plugin keeps the last one
	}
	defer f.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if whole, err := fileFrames(c.w, frameNewCache, f); err != nil || !whole {
		return err
	}
	return writeFrame(c.w, frameNewCacheEnd)
}

// sendWalkCache sends the last walk cache in dir, if any, as the first
// frames on the helper's standard input, then their end. A cache cut
// short is sent as far as it was read: the helper's checks stop there.
func sendWalkCache(w io.Writer, dir string) error {
	if f, err := os.Open(filepath.Join(dir, "walk")); err == nil {
		defer f.Close()
		if _, err := fileFrames(w, frameCache, f); err != nil {
			return err
		}
	}
	return writeFrame(w, frameCacheEnd)
}

// fileFrames sends f's content as frames of type typ, and says whether
// it was read to its end.
func fileFrames(w io.Writer, typ byte, f *os.File) (bool, error) {
	buf := make([]byte, frameChunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := writeFrame(w, typ, buf[:n]); err != nil {
				return false, err
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, nil
		}
	}
}

// walkPuts is how many new blobs a helper has on their way at once: what
// holds them back is the round trip, not memory.
const walkPuts = 8

// walkHelper archives root, as a helper container with hc's mounts sees it,
// into tw: the helper walks it and the plugin answers its questions with
// the core's pool. errNoHelper when this Engine cannot run the helper.
func (p *plugin) walkHelper(ctx context.Context, e *engine, hc *container.HostConfig, root string, labels map[string]string,
	exclude []string, st *stats, tw *archiveWriter) error {
	spec := walkSpec{Exclude: exclude}
	if tw.pool.cacheDir != "" {
		if tw.pool.cache = receiveWalkCache(tw.pool.cacheDir, p.log); tw.pool.cache != nil {
			spec.Cache = true
		}
	}
	arg, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	img, err := e.importSelf(ctx, "walks a volume for the volume plugin's pooled backup", labels)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoHelper, err)
	}
	defer img.remove()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ran := make(chan error, 1)
	go func() {
		err := img.run(ctx, hc, inR, outW, walkCmd, root, string(arg))
		outW.CloseWithError(err)
		inR.CloseWithError(errors.New("the helper has ended"))
		ran <- err
	}()
	// Nothing may reach the core once Backup has returned: a put still
	// with it is waited for.
	var puts sync.WaitGroup
	defer puts.Wait()
	if spec.Cache {
		// A helper that ended early fails this write; its own error
		// comes next, from the stream.
		_ = sendWalkCache(inW, tw.pool.cacheDir)
	}
	err = p.serveWalk(ctx, bufio.NewReaderSize(outR, 256<<10), inW, st, tw, &puts)
	if err == nil {
		inW.Close()
		return <-ran
	}
	cancel()
	herr := <-ran
	var cut *cutStream
	switch {
	case parent.Err() != nil:
		return context.Cause(parent)
	case errors.As(err, &cut) && herr != nil:
		// The helper's own error (its exit status and last words) says
		// more than the stream it cut short.
		return herr
	}
	return err
}

// cutStream is a failure to read the helper's frames.
type cutStream struct{ err error }

func (c *cutStream) Error() string { return "read the helper's stream: " + c.err.Error() }
func (c *cutStream) Unwrap() error { return c.err }

// helperWalks is false in tests of the archive API's way.
var helperWalks = true

// errNoHelper says the Engine cannot run the helper: the caller reads
// through the archive API instead.
var errNoHelper = errors.New("no helper container")

// serveWalk reads the helper's frames to its result: the archive goes to
// tw's stream, the questions to the core's pool, the answers back on w.
func (p *plugin) serveWalk(ctx context.Context, r *bufio.Reader, w io.Writer, st *stats, tw *archiveWriter, puts *sync.WaitGroup) error {
	var (
		wmu     sync.Mutex
		buf     []byte
		content = map[uint32]*io.PipeWriter{} // the puts whose content is arriving
	)
	reply := func(id uint32, v any, err error) error {
		typ, b := byte(frameAnswer), []byte(nil)
		if err != nil {
			typ, b = frameFailed, []byte(err.Error())
		} else if b, err = json.Marshal(v); err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(w, typ, binary.BigEndian.AppendUint32(nil, id), b)
	}
	var failed error // the first answer that could not be sent
	var fmu sync.Mutex
	defer func() {
		for _, c := range content {
			c.CloseWithError(errors.New("the walk ended"))
		}
	}()
	for {
		typ, b, err := readFrame(r, buf)
		buf = b
		if err != nil {
			return &cutStream{err}
		}
		fmu.Lock()
		err = failed
		fmu.Unlock()
		if err != nil {
			return err
		}
		if typ == frameArchive {
			if _, err := tw.under.w.Write(b); err != nil {
				return fmt.Errorf("write archive: %w", err)
			}
			continue
		}
		if typ == frameNewCache || typ == frameNewCacheEnd {
			if tw.pool.cache == nil {
				return fmt.Errorf("the helper sent a walk cache it was not given")
			}
			tw.pool.cache.receive(b, typ == frameNewCacheEnd)
			continue
		}
		if typ == frameResult {
			var res walkResult
			if err := json.Unmarshal(b, &res); err != nil {
				return fmt.Errorf("the helper's result: %w", err)
			}
			if len(content) > 0 {
				return fmt.Errorf("the helper ended with %d puts unfinished", len(content))
			}
			*st = *res.Stats.stats()
			// What the walk warned of (files vanishing, content that does
			// not match its name) is this plugin's warning, as on a host.
			for _, w := range st.warnings {
				p.log.Warn(w)
			}
			if c := tw.pool.cache; c != nil {
				c.misses.Store(res.DirsRead)
				c.hits.Store(res.DirsCached)
			}
			tw.pool.newBlobs, tw.pool.newBytes = res.NewBlobs, res.NewBytes
			tw.pool.readBytes, tw.pool.mismatched = res.ReadBytes, res.Mismatched
			return nil
		}
		if len(b) < 4 {
			return fmt.Errorf("the helper sent a frame of type %q without its question", typ)
		}
		id, b := binary.BigEndian.Uint32(b), b[4:]
		switch typ {
		case frameHave:
			var q []sdk.Blob
			if err := json.Unmarshal(b, &q); err != nil {
				return fmt.Errorf("the helper's question: %w", err)
			}
			have, err := tw.pool.pool.Have(ctx, q)
			if err := reply(id, have, err); err != nil {
				return err
			}
		case framePut:
			var q sdk.Blob
			if err := json.Unmarshal(b, &q); err != nil || content[id] != nil {
				return fmt.Errorf("the helper's put %d: %v", id, err)
			}
			pr, pw := io.Pipe()
			content[id] = pw
			puts.Add(1)
			go func() {
				defer puts.Done()
				got, err := tw.pool.pool.Put(ctx, q, pr)
				pr.CloseWithError(errors.New("the pool stopped reading"))
				if err := reply(id, got, err); err != nil {
					fmu.Lock()
					failed = cmp.Or(failed, err)
					fmu.Unlock()
				}
			}()
		case frameData:
			c := content[id]
			if c == nil {
				return fmt.Errorf("the helper sent content outside put %d", id)
			}
			// A put the core failed stops reading: the rest is dropped
			// and its answer says why.
			_, _ = c.Write(b)
		case frameEnd:
			c := content[id]
			if c == nil {
				return fmt.Errorf("the helper ended put %d, which it had not begun", id)
			}
			if len(b) > 0 {
				c.CloseWithError(errors.New(string(b)))
			} else {
				c.Close()
			}
			delete(content, id)
		default:
			return fmt.Errorf("the helper sent a frame of type %q", typ)
		}
	}
}

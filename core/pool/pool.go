// Package pool is a root's content-addressed store of file contents: each
// blob (a file's bytes) is kept once under <root>/.pool, named by the SHA-1
// of its bytes and its size, compressed on its own and encrypted like the
// sets. A set references the blobs it needs in its POOL_REFS file; blobs no
// complete set references are swept under the root's lock.
//
// Layout:
//
//	.pool/VERSION              the pool's format version ("1")
//	.pool/ab/cd/<sha1>-<size>  a blob: a header line, then its bytes
//	.pool/.tmp/                blobs being written (leftovers are swept)
//
// A blob file starts with "mbkpool1 <compression> <age|plain>\n"; what
// follows is the content, compressed with that codec and, for age, then
// encrypted to the pipeline's recipients. The header names what the reader
// needs, so that a pipeline may change its compression or encryption
// without the pool becoming unreadable.
package pool

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/stream"
)

// Dir is the pool's directory under a root.
const Dir = ".pool"

// RefsFile is the set file listing the blobs the set references, one
// "<sha1> <size>" a line. It is plain text even in an encrypted set: a
// blob's name is the SHA-1 of its content, which Moodle already shows in
// its own file names.
const RefsFile = "POOL_REFS"

// Version is the pool's format version, written to .pool/VERSION.
const Version = 1

const (
	versionFile = "VERSION"
	tmpDir      = ".tmp"
	magic       = "mbkpool1"
)

// Blob names a file's content.
type Blob struct {
	SHA1 string
	Size int64
}

func (b Blob) String() string { return b.SHA1 + "-" + strconv.FormatInt(b.Size, 10) }

// appendRel appends Rel to p: ab/cd/<sha1>-<size>.
func (b Blob) appendRel(p []byte) []byte {
	p = append(append(append(append(p, b.SHA1[:2]...), '/'), b.SHA1[2:4]...), '/')
	return strconv.AppendInt(append(append(p, b.SHA1...), '-'), b.Size, 10)
}

// Check says why b cannot name a blob: the hash must be 40 lower-case hex
// digits (it becomes a path).
func (b Blob) Check() error {
	if len(b.SHA1) != 40 {
		return fmt.Errorf("blob name %q is not a SHA-1", b.SHA1)
	}
	for _, c := range b.SHA1 {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("blob name %q is not a lower-case hex SHA-1", b.SHA1)
		}
	}
	if b.Size < 0 {
		return fmt.Errorf("blob %s has a negative size", b.SHA1)
	}
	return nil
}

// Rel is the blob's path under the pool's directory.
func (b Blob) Rel() string { return filepath.Join(b.SHA1[:2], b.SHA1[2:4], b.String()) }

// ParseName reads a blob file's name back.
func ParseName(name string) (Blob, bool) {
	h, size, ok := strings.Cut(name, "-")
	if !ok {
		return Blob{}, false
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		return Blob{}, false
	}
	b := Blob{SHA1: h, Size: n}
	return b, b.Check() == nil
}

// Pool is one root's pool.
type Pool struct {
	dir string
}

// Open returns root's pool, creating its directory and VERSION when
// missing; a pool of a later format is refused.
func Open(root string) (*Pool, error) {
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	vf := filepath.Join(dir, versionFile)
	b, err := os.ReadFile(vf)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeSync(vf, []byte(strconv.Itoa(Version)+"\n")); err != nil {
			return nil, fmt.Errorf("pool: write %s: %w", vf, err)
		}
	case err != nil:
		return nil, fmt.Errorf("pool: %w", err)
	default:
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("pool: %s holds %q, not a format version", vf, strings.TrimSpace(string(b)))
		}
		if v > Version {
			return nil, fmt.Errorf("pool: %s is format %d; this mbk reads format %d: upgrade mbk", dir, v, Version)
		}
	}
	return &Pool{dir: dir}, nil
}

// OpenExisting returns root's pool if it has one, nil otherwise: a reader
// (verify, restore) never creates it.
func OpenExisting(root string) (*Pool, error) {
	if _, err := os.Stat(filepath.Join(root, Dir)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return Open(root)
}

// CleanTmp removes what interrupted writes left in .pool/.tmp. The caller
// holds the root's lock: no write of its own is under way.
func (p *Pool) CleanTmp() {
	tmps, _ := os.ReadDir(filepath.Join(p.dir, tmpDir))
	for _, t := range tmps {
		os.Remove(filepath.Join(p.dir, tmpDir, t.Name()))
	}
}

// RecheckFile, in the pool's directory, asks the next backup to look up
// every blob it references instead of taking the newest set's references
// as present: a check found a referenced blob missing, and a blob looked
// up and not found is stored again from the site.
const RecheckFile = "RECHECK"

// MarkRecheck writes RecheckFile.
func (p *Pool) MarkRecheck() error {
	return writeSync(filepath.Join(p.dir, RecheckFile), []byte("a check found a referenced blob missing: the next backup looks up every blob\n"))
}

// RecheckWanted says whether RecheckFile is there.
func (p *Pool) RecheckWanted() bool {
	_, err := os.Lstat(filepath.Join(p.dir, RecheckFile))
	return err == nil
}

// ClearRecheck removes RecheckFile: a backup looked up every blob.
func (p *Pool) ClearRecheck() error {
	err := os.Remove(filepath.Join(p.dir, RecheckFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// TempFile is a new file in the pool's directory for blobs being written:
// rename it to Path(b) when complete.
func (p *Pool) TempFile() (*os.File, error) {
	return os.CreateTemp(filepath.Join(p.dir, tmpDir), "blob-")
}

// DirPath is the pool's directory.
func (p *Pool) DirPath() string { return p.dir }

// Path is where blob b is stored.
func (p *Pool) Path(b Blob) string { return filepath.Join(p.dir, b.Rel()) }

// Has says whether the pool holds b: one stat, no read.
func (p *Pool) Has(b Blob) bool {
	if b.Check() != nil {
		return false
	}
	fi, err := os.Stat(p.Path(b))
	return err == nil && fi.Mode().IsRegular()
}

// Codec is how new blobs are written.
type Codec struct {
	Compression string
	Level       int
	Recipients  []age.Recipient
}

// Written is what Put did.
type Written struct {
	Blob   Blob  // as stored: the hash of the bytes read
	Stored int64 // bytes written to disk; 0 when the pool held it already
}

// Put reads r to its end, hashing it with SHA-1 while it is compressed
// (and encrypted) into a temporary file, which is made durable and renamed
// to the blob's name only when complete: a Batch of one. The blob is named
// by what was read, not by what the caller expected. A backup puts through
// one Batch, which makes many blobs durable at once.
func (p *Pool) Put(r io.Reader, c Codec) (Written, error) {
	b := p.NewBatch()
	w, err := b.Put(r, c)
	if err != nil {
		b.Discard()
		return Written{}, err
	}
	return w, b.Close()
}

// tmpBlob is a blob written to a closed temporary file, not yet synced.
type tmpBlob struct {
	path   string
	blob   Blob
	stored int64
}

// writeTmp writes r into a new temporary file as a blob (header, then the
// content compressed and encrypted), hashing what it reads.
func (p *Pool) writeTmp(r io.Reader, c Codec) (tmpBlob, error) {
	tmp, err := os.CreateTemp(filepath.Join(p.dir, tmpDir), "blob-")
	if err != nil {
		return tmpBlob{}, fmt.Errorf("pool: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	enc := "plain"
	if len(c.Recipients) > 0 {
		enc = "age"
	}
	comp := c.Compression
	if comp == "" {
		comp = "none"
	}
	fmt.Fprintf(bw, "%s %s %s\n", magic, comp, enc)
	var under io.Writer = bw
	var ageW io.WriteCloser
	if len(c.Recipients) > 0 {
		if ageW, err = age.Encrypt(bw, c.Recipients...); err != nil {
			return tmpBlob{}, fmt.Errorf("pool: encrypt: %w", err)
		}
		under = ageW
	}
	zw, err := stream.NewBlobWriter(under, comp, c.Level)
	if err != nil {
		return tmpBlob{}, fmt.Errorf("pool: %w", err)
	}
	h := sha1.New()
	n, err := io.Copy(io.MultiWriter(zw, h), r)
	if err != nil {
		zw.Close()
		return tmpBlob{}, err
	}
	if err := zw.Close(); err != nil {
		return tmpBlob{}, fmt.Errorf("pool: compress: %w", err)
	}
	if ageW != nil {
		if err := ageW.Close(); err != nil {
			return tmpBlob{}, fmt.Errorf("pool: encrypt: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return tmpBlob{}, fmt.Errorf("pool: %w", err)
	}
	stored, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return tmpBlob{}, fmt.Errorf("pool: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return tmpBlob{}, fmt.Errorf("pool: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return tmpBlob{}, fmt.Errorf("pool: %w", err)
	}
	ok = true
	return tmpBlob{path: tmp.Name(), blob: Blob{SHA1: hex.EncodeToString(h.Sum(nil)), Size: n}, stored: stored}, nil
}

// syncFile writes a temporary file's data out to the disk.
func (p *Pool) syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("pool: sync: %w", err)
	}
	return nil
}

// ErrCorrupt says a blob's bytes do not hash to its name.
var ErrCorrupt = errors.New("the blob's content does not match its name")

// OpenBlob reads blob b back, decrypted and decompressed. The reader fails
// at the end, instead of io.EOF, when what it gave does not hash to b.
func (p *Pool) OpenBlob(b Blob, identities []age.Identity) (io.ReadCloser, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	f, err := os.Open(p.Path(b))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s is missing from the pool %s", b, p.dir)
		}
		return nil, err
	}
	rc, err := Decode(f, b, identities)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", b, err)
	}
	return &closeBoth{ReadCloser: rc, f: f}, nil
}

type closeBoth struct {
	io.ReadCloser
	f *os.File
}

func (c *closeBoth) Close() error {
	c.ReadCloser.Close()
	return c.f.Close()
}

// Decode reads a stored blob (its header, then the content) from r and
// checks it against b at the end.
func Decode(r io.Reader, b Blob, identities []age.Identity) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("no header: %w", err)
	}
	comp, enc, err := parseHeader(line)
	if err != nil {
		return nil, err
	}
	var in io.Reader = br
	switch enc {
	case "age":
		if len(identities) == 0 {
			return nil, stream.ErrNoIdentity
		}
		d, err := age.Decrypt(br, identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		in = d
	}
	zr, err := stream.NewBlobReader(in, comp)
	if err != nil {
		return nil, err
	}
	return &checking{r: zr, want: b, h: sha1.New()}, nil
}

// parseHeader reads a blob file's header line: its compression and its
// encryption ("age" or "plain").
func parseHeader(line string) (comp, enc string, err error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != magic {
		return "", "", fmt.Errorf("header %q is not a pool blob's", strings.TrimSpace(line))
	}
	if f[2] != "age" && f[2] != "plain" {
		return "", "", fmt.Errorf("unknown encryption %q", f[2])
	}
	return f[1], f[2], nil
}

// matches checks content read whole against b's name.
func (b Blob) matches(content []byte) error {
	switch n := int64(len(content)); {
	case n < b.Size:
		return fmt.Errorf("blob %s: %w (it ended early)", b, ErrCorrupt)
	case n > b.Size:
		return fmt.Errorf("blob %s: %w (longer than its name says)", b, ErrCorrupt)
	}
	sum := sha1.Sum(content)
	if got := hex.EncodeToString(sum[:]); got != b.SHA1 {
		return fmt.Errorf("blob %s: %w (read %d bytes hashing to %s)", b, ErrCorrupt, len(content), got)
	}
	return nil
}

// checking hashes what is read and turns the end into an error when the
// content does not match the blob's name.
type checking struct {
	r    io.ReadCloser
	want Blob
	h    hash.Hash
	n    int64
}

func (c *checking) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	switch {
	case err == io.EOF:
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want.SHA1 || c.n != c.want.Size {
			return n, fmt.Errorf("blob %s: %w (read %d bytes hashing to %s)", c.want, ErrCorrupt, c.n, got)
		}
	case err != nil:
		// The stored bytes do not decompress (or decrypt): damaged.
		return n, fmt.Errorf("blob %s: %w: %v", c.want, ErrCorrupt, err)
	}
	return n, err
}

func (c *checking) Close() error { return c.r.Close() }

// ReadRefs reads a set's POOL_REFS into a sealed Marks: each blob once,
// 28 bytes a blob, whatever the number of files. A set without POOL_REFS
// references nothing.
func ReadRefs(setDir string) (*Marks, error) {
	m := &Marks{}
	if err := eachRefFile(setDir, m.addKey); err != nil {
		return nil, err
	}
	m.Seal()
	return m, nil
}

// EachRef calls fn for each reference of a set's POOL_REFS as it reads the
// file: a sweep of a site of millions of files must not hold a set's
// references as strings. A set without POOL_REFS references nothing.
func EachRef(setDir string, fn func(Blob)) error {
	return eachRefFile(setDir, func(k *refKey) { fn(k.blob()) })
}

func eachRefFile(setDir string, fn func(*refKey)) error {
	f, err := os.Open(filepath.Join(setDir, RefsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return eachRef(f, filepath.Join(setDir, RefsFile), fn)
}

func eachRef(r io.Reader, name string, fn func(*refKey)) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		k, ok := parseRef(sc.Bytes())
		if !ok {
			return fmt.Errorf("%s line %d: %q is not \"<sha1> <size>\"", name, line, sc.Text())
		}
		fn(&k)
	}
	return sc.Err()
}

// RefsWriter appends a set's references as a backup makes them. It is
// safe for concurrent use.
type RefsWriter struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    int
	line []byte
}

// CreateRefs starts POOL_REFS in a staging directory.
func CreateRefs(dir string) (*RefsWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, RefsFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &RefsWriter{f: f, w: bufio.NewWriter(f)}, nil
}

// Add records that the set references b.
func (r *RefsWriter) Add(b Blob) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.line = append(strconv.AppendInt(append(append(r.line[:0], b.SHA1...), ' '), b.Size, 10), '\n')
	_, err := r.w.Write(r.line)
	return err
}

// Count is how many references were added.
func (r *RefsWriter) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close makes the file durable.
func (r *RefsWriter) Close() error {
	if err := r.w.Flush(); err != nil {
		r.f.Close()
		return err
	}
	if err := r.f.Sync(); err != nil {
		r.f.Close()
		return err
	}
	return r.f.Close()
}

// Swept is what a sweep removed.
type Swept struct {
	Blobs int
	Bytes int64
	Kept  int
}

// Sweep deletes every blob that mark does not mark, and what interrupted
// writes left in .pool/.tmp. mark calls add for every blob a complete set
// references; the caller holds the root's lock. Mark, then sweep: the
// pool's blobs are listed (28 bytes each, sorted), mark sets a bit for
// each one referenced, and only then are the unmarked deleted, so a sweep
// that is killed leaves unreferenced blobs behind, never a referenced one
// missing. An error from mark stops the sweep before anything is deleted.
func (p *Pool) Sweep(mark func(add func(Blob)) error, dryRun bool) (Swept, error) {
	var out Swept
	var keys Marks
	if err := p.Walk(func(b Blob, _ string, _ int64) error {
		keys.Add(b)
		return nil
	}); err != nil {
		return out, err
	}
	keys.Seal()
	if err := mark(func(b Blob) { keys.Mark(b) }); err != nil {
		return out, err
	}
	if !dryRun {
		p.CleanTmp()
	}
	for b, marked := range keys.All() {
		if marked {
			out.Kept++
			continue
		}
		path := p.Path(b)
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		if !dryRun {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return out, err
			}
		}
		out.Blobs++
		out.Bytes += fi.Size()
	}
	return out, nil
}

// Walk calls fn for every blob in the pool, in name order. Names that are
// not blobs are left alone.
func (p *Pool) Walk(fn func(b Blob, path string, stored int64) error) error {
	l1, err := readDirNames(p.dir)
	if err != nil {
		return err
	}
	for _, a := range l1 {
		if len(a) != 2 {
			continue
		}
		l2, err := readDirNames(filepath.Join(p.dir, a))
		if err != nil {
			return err
		}
		for _, c := range l2 {
			if len(c) != 2 {
				continue
			}
			d := filepath.Join(p.dir, a, c)
			ents, err := os.ReadDir(d)
			if err != nil {
				return err
			}
			for _, e := range ents {
				b, ok := ParseName(e.Name())
				if !ok || !e.Type().IsRegular() {
					continue
				}
				var size int64
				if fi, err := e.Info(); err == nil {
					size = fi.Size()
				}
				if err := fn(b, filepath.Join(d, e.Name()), size); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeSync(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Check looks for each referenced blob in the pool: that it is there and,
// with readData, that its content still hashes to its name (read with
// workers side by side; encrypted blobs need identities). It returns one
// line per problem. A blob missing marks the pool for a recheck
// (MarkRecheck): the next backup stores it again if the site has it.
func (p *Pool) Check(ctx context.Context, refs iter.Seq[Blob], readData bool, identities []age.Identity, workers int) []string {
	var (
		mu    sync.Mutex
		probs []string
	)
	report := func(s string) {
		mu.Lock()
		probs = append(probs, s)
		mu.Unlock()
	}
	jobs := make(chan Blob)
	missing := false
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				rc, err := p.OpenBlob(b, identities)
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
				if err != nil {
					report(err.Error())
				}
			}
		}()
	}
	for b := range refs {
		if ctx.Err() != nil {
			break
		}
		fi, err := os.Stat(p.Path(b))
		switch {
		case err != nil:
			report(fmt.Sprintf("blob %s is missing from the pool %s", b, p.dir))
			if !missing {
				missing = true
				if err := p.MarkRecheck(); err != nil {
					report(fmt.Sprintf("cannot ask the next backup to look up every blob (%v): it takes the newest set's references as present", err))
				}
			}
		case !fi.Mode().IsRegular():
			report(fmt.Sprintf("blob %s in the pool is not a regular file", b))
		case readData:
			jobs <- b
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		probs = append(probs, err.Error())
	}
	sort.Strings(probs)
	return probs
}

// RefsParser is an io.Writer that reads a POOL_REFS file as it is written
// to it (a download), calling fn for each reference: a store's sweep never
// holds a whole set's references. Close checks the end.
type RefsParser struct {
	name  string
	fn    func(Blob)
	carry []byte
	line  int
	err   error
}

// NewRefsParser parses POOL_REFS content named name (for errors).
func NewRefsParser(name string, fn func(Blob)) *RefsParser {
	return &RefsParser{name: name, fn: fn}
}

func (r *RefsParser) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	data := p
	if len(r.carry) > 0 {
		data = append(r.carry, p...)
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if err := r.parse(data[:i]); err != nil {
			r.err = err
			return 0, err
		}
		data = data[i+1:]
	}
	r.carry = append(r.carry[:0], data...)
	return len(p), nil
}

func (r *RefsParser) parse(line []byte) error {
	r.line++
	k, ok := parseRef(line)
	if !ok {
		return fmt.Errorf("%s line %d: %q is not \"<sha1> <size>\"", r.name, r.line, line)
	}
	r.fn(k.blob())
	return nil
}

// Close reports a parse error, or a last line without its newline.
func (r *RefsParser) Close() error {
	if r.err == nil && len(r.carry) > 0 {
		r.err = r.parse(r.carry)
	}
	return r.err
}

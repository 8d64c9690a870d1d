package pluginhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/sdk"
)

var storeSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "bucket", Type: sdk.String, Required: true},
}}

// memStore is a fake store plugin that keeps files in memory. Each test can
// replace Put and Get through the function fields.
type memStore struct {
	put func(ctx context.Context, set, file string, size int64, r io.Reader) (string, error)
	get func(ctx context.Context, set, file string, w io.Writer) error

	mu      sync.Mutex
	files   map[string][]byte // "set/file"
	deleted []string          // files in the order Delete removed them
	bucket  string            // from the last call's config
	calls   int
}

var _ sdk.Storer = (*memStore)(nil)

func (m *memStore) Describe() sdk.Info {
	return sdk.Info{Name: "mem", Version: "0.1", Kinds: []string{sdk.KindStore}}
}

func (m *memStore) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindStore {
		return sdk.Schema{}, fmt.Errorf("mem serves no %q stage", kind)
	}
	return storeSchema, nil
}

func (m *memStore) seen(cfg sdk.Config) {
	var s struct {
		Bucket string `cty:"bucket"`
	}
	_ = cfg.Decode(&s)
	m.mu.Lock()
	m.bucket = s.Bucket
	m.calls++
	m.mu.Unlock()
}

func (m *memStore) Put(ctx context.Context, cfg sdk.Config, set, file string, size int64, r io.Reader) (string, error) {
	m.seen(cfg)
	if m.put != nil {
		return m.put(ctx, set, file, size, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("upload %s/%s: %w", set, file, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[set+"/"+file] = b
	return "mem://" + m.bucket + "/" + set + "/" + file, nil
}

func (m *memStore) Get(ctx context.Context, cfg sdk.Config, set, file string, w io.Writer) error {
	m.seen(cfg)
	if m.get != nil {
		return m.get(ctx, set, file, w)
	}
	m.mu.Lock()
	b, ok := m.files[set+"/"+file]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("get mem://%s/%s/%s: no such file", m.bucket, set, file)
	}
	return writeChunks(ctx, w, b)
}

// List answers in reverse order: the SDK sorts.
func (m *memStore) List(_ context.Context, cfg sdk.Config) ([]sdk.StoredSet, error) {
	m.seen(cfg)
	m.mu.Lock()
	defer m.mu.Unlock()
	bySet := map[string]*sdk.StoredSet{}
	var out []sdk.StoredSet
	for k, b := range m.files {
		set, file, _ := strings.Cut(k, "/")
		if bySet[set] == nil {
			bySet[set] = &sdk.StoredSet{Name: set}
		}
		bySet[set].Files = append([]sdk.StoredFile{{Name: file, Size: int64(len(b))}}, bySet[set].Files...)
	}
	for _, s := range bySet {
		out = append([]sdk.StoredSet{*s}, out...)
	}
	return out, nil
}

func (m *memStore) Delete(_ context.Context, cfg sdk.Config, set string) error {
	m.seen(cfg)
	m.mu.Lock()
	defer m.mu.Unlock()
	remove := func(k string) {
		if _, ok := m.files[k]; ok {
			delete(m.files, k)
			m.deleted = append(m.deleted, k)
		}
	}
	remove(set + "/" + sdk.ManifestFile)
	for k := range m.files {
		if strings.HasPrefix(k, set+"/") {
			remove(k)
		}
	}
	return nil
}

func storeConfig(t testing.TB) *pb.Config {
	return encode(t, sdk.KindStore, storeSchema, map[string]cty.Value{"bucket": cty.StringVal("backups")})
}

func TestKinds(t *testing.T) {
	want := []string{"dump", "archive", "checksum", "retain", "store", "notify"}
	if !reflect.DeepEqual(sdk.Kinds(), want) {
		t.Errorf("Kinds = %v, want %v", sdk.Kinds(), want)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	m := &memStore{}
	c := connect(t, m)
	ctx := context.Background()
	cfg := storeConfig(t)
	big := bigPayload()[:20<<20]
	const set = "2024-03-01_03-00-00"
	files := []struct {
		name string
		data []byte
	}{
		{"moodle_2024-03-01_03-00-00.sql.gz", big},
		{"SHA256SUMS", []byte("abc  moodle_2024-03-01_03-00-00.sql.gz\n")},
		{"empty.txt", nil},
		{sdk.ManifestFile, []byte(`{"set":"2024-03-01_03-00-00"}`)},
	}
	for _, f := range files {
		reply, err := c.Put(ctx, cfg, set, f.name, int64(len(f.data)), bytes.NewReader(f.data))
		if err != nil {
			t.Fatalf("Put %s: %v", f.name, err)
		}
		if want := "mem://backups/" + set + "/" + f.name; reply.Bytes != int64(len(f.data)) || reply.Location != want {
			t.Errorf("Put %s = %+v; want %d bytes at %s", f.name, reply, len(f.data), want)
		}
	}
	if _, err := c.Put(ctx, cfg, "2024-02-29_03-00-00", "SHA256SUMS", 3, strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}

	sets, err := c.List(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.StoredSet{
		{Name: "2024-02-29_03-00-00", Files: []sdk.StoredFile{{Name: "SHA256SUMS", Size: 3}}},
		{Name: set, Files: []sdk.StoredFile{
			{Name: "SHA256SUMS", Size: int64(len(files[1].data))},
			{Name: "empty.txt", Size: 0},
			{Name: sdk.ManifestFile, Size: int64(len(files[3].data))},
			{Name: "moodle_2024-03-01_03-00-00.sql.gz", Size: int64(len(big))},
		}},
	}
	if !reflect.DeepEqual(sets, want) {
		t.Errorf("List = %+v\nwant %+v", sets, want)
	}
	if sets[0].Complete() || !sets[1].Complete() {
		t.Errorf("Complete = %v, %v; want false, true", sets[0].Complete(), sets[1].Complete())
	}

	for _, f := range files {
		w := newHashWriter()
		n, err := c.Get(ctx, cfg, set, f.name, w)
		if err != nil {
			t.Fatalf("Get %s: %v", f.name, err)
		}
		if n != int64(len(f.data)) || w.n != n || w.sum() != sha(f.data) {
			t.Errorf("Get %s: %d bytes (%d received) sha256 %s; want %d %s", f.name, n, w.n, w.sum(), len(f.data), sha(f.data))
		}
	}
	if _, err := c.Get(ctx, cfg, set, "nope", io.Discard); err == nil || err.Error() != "get mem://backups/"+set+"/nope: no such file" {
		t.Errorf("Get of a missing file: %v; want the plugin's own words", err)
	}

	if err := c.DeleteSet(ctx, cfg, set); err != nil {
		t.Fatal(err)
	}
	if len(m.deleted) != len(files) || m.deleted[0] != set+"/"+sdk.ManifestFile {
		t.Errorf("deleted %v; want the manifest first", m.deleted)
	}
	sets, err = c.List(ctx, cfg)
	if err != nil || len(sets) != 1 || sets[0].Name != "2024-02-29_03-00-00" {
		t.Errorf("after delete: %+v, %v", sets, err)
	}
}

func TestStoreNames(t *testing.T) {
	m := &memStore{}
	c := connect(t, m)
	ctx := context.Background()
	for _, tt := range []struct{ set, file string }{
		{"../etc", "f"}, {"a/b", "f"}, {"", "f"}, {".hidden", "f"},
		{"s", "../../x"}, {"s", ".f.part"}, {"s", ""}, {"s", `a\b`},
	} {
		t.Run(tt.set+"|"+tt.file, func(t *testing.T) {
			if _, err := c.Put(ctx, storeConfig(t), tt.set, tt.file, 1, strings.NewReader("x")); err == nil {
				t.Error("Put accepted the name")
			}
			if _, err := c.Get(ctx, storeConfig(t), tt.set, tt.file, io.Discard); err == nil {
				t.Error("Get accepted the name")
			}
		})
	}
	if err := c.DeleteSet(ctx, storeConfig(t), ".."); err == nil {
		t.Error("DeleteSet accepted ..")
	}
	if m.calls != 0 {
		t.Errorf("the plugin was called %d times with bad names", m.calls)
	}
}

// shortReader yields n bytes, then fails with err (io.EOF for a clean end).
type shortReader struct {
	n   int
	err error
}

func (s *shortReader) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, s.err
	}
	k := min(len(p), s.n)
	s.n -= k
	return k, nil
}

func TestStorePutFailures(t *testing.T) {
	const message = `upload s3://backups/s/moodle.sql.gz: api error AccessDenied: Access Denied`
	const size = 20 << 20
	errDisk := errors.New("read /b/s/moodle.sql.gz: input/output error")
	readAll := func(_ context.Context, _, _ string, _ int64, r io.Reader) (string, error) {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return "", fmt.Errorf("upload: %w", err)
		}
		return "ok", nil
	}
	tests := []struct {
		name string
		put  func(ctx context.Context, set, file string, size int64, r io.Reader) (string, error)
		r    io.Reader // nil: size bytes of payload
		want []string  // substrings of the error
	}{
		{"plugin fails midway", func(_ context.Context, _, _ string, _ int64, r io.Reader) (string, error) {
			io.CopyN(io.Discard, r, 5<<20)
			return "", errors.New(message)
		}, nil, []string{message}},
		{"plugin fails before reading", func(context.Context, string, string, int64, io.Reader) (string, error) {
			return "", errors.New(message)
		}, nil, []string{message}},
		{"plugin stops reading early", func(_ context.Context, _, _ string, _ int64, r io.Reader) (string, error) {
			io.CopyN(io.Discard, r, 1<<20)
			return "ok", nil
		}, nil, []string{"the plugin stopped reading before the end of the stream"}},
		{"core's file is shorter than announced", readAll, &shortReader{n: 3 << 20, err: io.EOF},
			[]string{"moodle.sql.gz ended after 3145728 of the 20971520 bytes announced", "the plugin then failed: upload: the core's stream ended after 3145728 of 20971520 bytes: unexpected EOF"}},
		{"core's file is longer than announced", readAll, &shortReader{n: size + 1, err: io.EOF},
			[]string{"moodle.sql.gz holds more than the 20971520 bytes announced"}},
		{"core cannot read its file", readAll, &shortReader{n: 2 << 20, err: errDisk},
			[]string{"reading moodle.sql.gz: " + errDisk.Error(), "the plugin then failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, &memStore{put: tt.put})
			r := tt.r
			if r == nil {
				r = bytes.NewReader(bigPayload()[:size])
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Put(context.Background(), storeConfig(t), "s", "moodle.sql.gz", size, r)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Put succeeded")
				}
				t.Log(err)
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to contain %q", err, w)
					}
				}
			case <-time.After(hangGuard):
				t.Fatal("Put hung")
			}
		})
	}
}

func TestStorePutCancel(t *testing.T) {
	started := make(chan struct{})
	pluginErr := make(chan error, 1)
	c := connect(t, &memStore{put: func(ctx context.Context, _, _ string, _ int64, r io.Reader) (string, error) {
		io.CopyN(io.Discard, r, 1<<20)
		close(started)
		_, err := io.Copy(io.Discard, r)
		if err == nil {
			err = ctx.Err()
		}
		pluginErr <- err
		return "", err
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-started
		cancel()
	}()
	// The core's reader never ends: only the cancel can stop the upload.
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		for {
			if _, err := pw.Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, storeConfig(t), "s", "f", 1<<40, pr)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Put did not return after its context was cancelled")
	}
	select {
	case err := <-pluginErr:
		if err == nil {
			t.Error("the plugin's Put succeeded after the core cancelled")
		}
	case <-time.After(hangGuard):
		t.Fatal("the plugin never learnt that the upload was cancelled")
	}
}

func TestStoreGetFailures(t *testing.T) {
	const message = `get s3://backups/s/f: api error NoSuchKey: The specified key does not exist.`
	tests := []struct {
		name string
		get  func(ctx context.Context, w io.Writer) error
		w    io.Writer
		want string
	}{
		{"plugin fails midway", func(ctx context.Context, w io.Writer) error {
			if err := writeChunks(ctx, w, bigPayload()[:5<<20]); err != nil {
				return err
			}
			return errors.New(message)
		}, io.Discard, message},
		{"core cannot write", func(ctx context.Context, w io.Writer) error {
			if err := writeChunks(ctx, w, bigPayload()); err != nil {
				return fmt.Errorf("get s3://backups/s/f: %w", err)
			}
			return nil
		}, &failingWriter{after: 4 << 20}, "no space left on device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, &memStore{get: func(ctx context.Context, _, _ string, w io.Writer) error { return tt.get(ctx, w) }})
			_, err := c.Get(context.Background(), storeConfig(t), "s", "f", tt.w)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// A plugin that does not serve the store kind says so.
func TestStoreNotServed(t *testing.T) {
	c := connect(t, &source{})
	_, err := c.Put(context.Background(), storeConfig(t), "s", "f", 1, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "does not implement") {
		t.Errorf("Put on a dump plugin: %v", err)
	}
	if _, err := c.List(context.Background(), storeConfig(t)); err == nil || !strings.Contains(err.Error(), "does not implement") {
		t.Errorf("List on a dump plugin: %v", err)
	}
}

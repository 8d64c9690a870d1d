package pluginhost_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/sdk"
)

// hangGuard bounds a call that must return promptly. It is no timing
// assertion: only a hang, by a wide margin, fails.
const hangGuard = 30 * time.Second

func TestBackup(t *testing.T) {
	data := bigPayload()
	var seen atomic.Value
	p := &source{backup: func(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
		seen.Store(req)
		if err := writeChunks(ctx, w, data); err != nil {
			return sdk.BackupResult{}, err
		}
		return sdk.BackupResult{
			Details:  map[string]any{"tables": 412, "server": "MariaDB 11.4"},
			InfoFile: "DB_INFO.txt", InfoText: "Database: moodle\nTables: 412\n",
		}, nil
	}}
	c := connect(t, p)
	w := newHashWriter()
	reply, err := c.Backup(context.Background(), dumpConfig(t), "db:moodle", "2024-03-01_03-00-00", w)
	if err != nil {
		t.Fatal(err)
	}
	if w.n != int64(len(data)) || w.sum() != sha(data) {
		t.Errorf("received %d bytes sha256 %s; sent %d bytes sha256 %s", w.n, w.sum(), len(data), sha(data))
	}
	if reply.Bytes != int64(len(data)) || reply.InfoFile != "DB_INFO.txt" || reply.InfoText != "Database: moodle\nTables: 412\n" {
		t.Errorf("reply = %d bytes, %q, %q", reply.Bytes, reply.InfoFile, reply.InfoText)
	}
	var details map[string]any
	if err := json.Unmarshal(reply.Details, &details); err != nil || !reflect.DeepEqual(details, map[string]any{"tables": 412.0, "server": "MariaDB 11.4"}) {
		t.Errorf("details %s (%v)", reply.Details, err)
	}
	req := seen.Load().(sdk.BackupRequest)
	if req.Artifact != "db:moodle" || req.Set != "2024-03-01_03-00-00" || req.Config.Kind != sdk.KindDump {
		t.Errorf("plugin got %+v", req)
	}
}

func TestBackupOutcomes(t *testing.T) {
	const message = `dump database "moodle" in container "db": mariadb-dump: Access denied for user 'moodle'@'localhost'`
	half := bigPayload()[:25<<20]
	tests := []struct {
		name    string
		backup  func(ctx context.Context, w io.Writer) error
		wantErr string // "" for success
		wantN   int64
	}{
		{"error after writing half", func(ctx context.Context, w io.Writer) error {
			if err := writeChunks(ctx, w, half); err != nil {
				return err
			}
			return errors.New(message)
		}, message, -1},
		{"error before writing", func(context.Context, io.Writer) error { return errors.New(message) }, message, -1},
		{"nothing written is a valid empty stream", func(context.Context, io.Writer) error { return nil }, "", 0},
		{"one byte", func(_ context.Context, w io.Writer) error { _, err := w.Write([]byte{7}); return err }, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &source{backup: func(ctx context.Context, _ sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
				return sdk.BackupResult{}, tt.backup(ctx, w)
			}}
			c := connect(t, p)
			w := newHashWriter()
			reply, err := c.Backup(context.Background(), dumpConfig(t), "db:moodle", "s", w)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("err = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reply.Bytes != tt.wantN || w.n != tt.wantN {
				t.Errorf("reply %d bytes, received %d; want %d", reply.Bytes, w.n, tt.wantN)
			}
		})
	}
}

// failingWriter stands for the core's file running out of space.
type failingWriter struct {
	after int64
	n     int64
}

var errDiskFull = errors.New("write /b/.mbk-partial-x/moodle.sql.gz: no space left on device")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+int64(len(p)) > f.after {
		return 0, errDiskFull
	}
	f.n += int64(len(p))
	return len(p), nil
}

// failingReaderFrom fails the same way, but reads the stream itself, as
// the core's zstd Sink does.
type failingReaderFrom struct{ failingWriter }

func (f *failingReaderFrom) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 100<<10)
	for {
		k, err := r.Read(buf)
		if _, werr := f.Write(buf[:k]); werr != nil {
			return f.n, werr
		}
		if err == io.EOF {
			return f.n, nil
		}
		if err != nil {
			return f.n, err
		}
	}
}

// coreWriters fail after n bytes: one is written to, one reads the stream.
func coreWriters(n int64) map[string]io.Writer {
	return map[string]io.Writer{
		"written to":         &failingWriter{after: n},
		"reading the stream": &failingReaderFrom{failingWriter{after: n}},
	}
}

// When the core cannot store the stream, the plugin's writes fail in turn
// and it reports a broken pipe. The error must still name the real cause.
func TestBackupCoreWriteFails(t *testing.T) {
	p := &source{backup: func(ctx context.Context, _ sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
		if err := writeChunks(ctx, w, bigPayload()); err != nil {
			return sdk.BackupResult{}, errors.New("dump database \"moodle\": " + err.Error())
		}
		return sdk.BackupResult{}, nil
	}}
	c := connect(t, p)
	for name, w := range coreWriters(4 << 20) {
		_, err := c.Backup(context.Background(), dumpConfig(t), "db:moodle", "s", w)
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("%s: err = %v\nwant it to name the core's write error (%v)", name, err, errDiskFull)
		}
	}
}

// A plugin that ignores write errors and vouches for the stream anyway is
// caught by the core's own count.
func TestBackupCoreWriteFailsPluginIgnores(t *testing.T) {
	p := &source{backup: func(ctx context.Context, _ sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
		_ = writeChunks(ctx, w, bigPayload()[:8<<20])
		return sdk.BackupResult{}, nil
	}}
	c := connect(t, p)
	for name, w := range coreWriters(1 << 20) {
		_, err := c.Backup(context.Background(), dumpConfig(t), "db:moodle", "s", w)
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestBackupCancel(t *testing.T) {
	tests := []struct {
		name string
		// run is the plugin's Backup after it has written a first part.
		run func(ctx context.Context, w io.Writer, release <-chan struct{}) error
	}{
		{"plugin honours its context", func(ctx context.Context, _ io.Writer, _ <-chan struct{}) error {
			<-ctx.Done()
			return ctx.Err()
		}},
		{"plugin ignores its context but keeps writing", func(_ context.Context, w io.Writer, _ <-chan struct{}) error {
			for {
				if _, err := w.Write(make([]byte, 64<<10)); err != nil {
					return err
				}
			}
		}},
		{"plugin hangs", func(_ context.Context, _ io.Writer, release <-chan struct{}) error {
			<-release
			return errors.New("released")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			pluginDone := make(chan error, 1)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			p := &source{backup: func(ctx context.Context, _ sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
				if _, err := w.Write(bigPayload()[:1<<20]); err != nil {
					return sdk.BackupResult{}, err
				}
				close(started)
				err := tt.run(ctx, w, release)
				pluginDone <- err
				return sdk.BackupResult{}, err
			}}
			c := connect(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-started
				cancel()
			}()
			done := make(chan error, 1)
			go func() {
				_, err := c.Backup(ctx, dumpConfig(t), "db:moodle", "s", io.Discard)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case <-time.After(hangGuard):
				t.Fatal("Backup did not return after its context was cancelled")
			}
			if tt.name == "plugin hangs" {
				return
			}
			// The plugin is told too (it kills its children then).
			select {
			case err := <-pluginDone:
				if err == nil {
					t.Error("the plugin's Backup succeeded after the core cancelled")
				}
			case <-time.After(hangGuard):
				t.Fatal("the plugin never learnt that the backup was cancelled")
			}
		})
	}
}

func TestRestore(t *testing.T) {
	data := bigPayload()
	var got struct {
		n       int64
		sum     string
		req     sdk.RestoreRequest
		summary string
	}
	p := &source{restore: func(_ context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return sdk.RestoreResult{}, err
		}
		got.n, got.sum, got.req = n, hex.EncodeToString(h.Sum(nil)), req
		return sdk.RestoreResult{Summary: "restored 412 tables into moodle_restore"}, nil
	}}
	c := connect(t, p)
	// The options travel typed; those left out arrive as their default.
	opts, err := wire.EncodeValue(cty.ObjectVal(map[string]cty.Value{
		"target_database": cty.StringVal("moodle_restore"), "clean": cty.True, "jobs": cty.NullVal(cty.Number),
	}), fakeRestoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	details := json.RawMessage(`{"tables":412,"server":"MariaDB 11.4"}`)
	reply, err := c.Restore(context.Background(), dumpConfig(t), "db:moodle", opts, details, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if reply.Bytes != int64(len(data)) || reply.Summary != "restored 412 tables into moodle_restore" {
		t.Errorf("reply = %+v", reply)
	}
	if got.n != int64(len(data)) || got.sum != sha(data) {
		t.Errorf("plugin read %d bytes sha256 %s; want %d %s", got.n, got.sum, len(data), sha(data))
	}
	var o struct {
		Target string `cty:"target_database"`
		Clean  bool   `cty:"clean"`
		Jobs   int    `cty:"jobs"`
	}
	if err := got.req.Options.Decode(&o); err != nil || o.Target != "moodle_restore" || !o.Clean || o.Jobs != 2 {
		t.Errorf("plugin decoded the restore options as %+v, %v", o, err)
	}
	if got.req.Artifact != "db:moodle" ||
		!reflect.DeepEqual(got.req.Details, map[string]any{"tables": 412.0, "server": "MariaDB 11.4"}) {
		t.Errorf("plugin got %+v", got.req)
	}

	// An empty stream is a stream.
	reply, err = c.Restore(context.Background(), dumpConfig(t), "db:moodle", nil, nil, bytes.NewReader(nil))
	if err != nil || reply.Bytes != 0 || got.n != 0 {
		t.Errorf("empty restore: %+v, %v (plugin read %d)", reply, err, got.n)
	}
}

func TestRestoreFailures(t *testing.T) {
	const message = `restore database "moodle_restore" in container "db": ERROR 1064 (42000) at line 12`
	tests := []struct {
		name    string
		restore func(r io.Reader) error
		want    string
	}{
		{"plugin stops reading early", func(r io.Reader) error {
			_, err := io.CopyN(io.Discard, r, 1<<20)
			return err
		}, "the plugin stopped reading before the end of the stream"},
		{"plugin reads nothing", func(io.Reader) error { return nil }, "the plugin stopped reading before the end of the stream"},
		{"plugin fails midway", func(r io.Reader) error {
			io.CopyN(io.Discard, r, 10<<20)
			return errors.New(message)
		}, message},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &source{restore: func(_ context.Context, _ sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
				return sdk.RestoreResult{Summary: "done"}, tt.restore(r)
			}}
			c := connect(t, p)
			done := make(chan error, 1)
			go func() {
				_, err := c.Restore(context.Background(), dumpConfig(t), "db:moodle", nil, nil, bytes.NewReader(bigPayload()))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || err.Error() != tt.want {
					t.Errorf("err = %v\nwant %s", err, tt.want)
				}
			case <-time.After(hangGuard):
				t.Fatal("Restore hung")
			}
		})
	}
}

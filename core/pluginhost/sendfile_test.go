package pluginhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

// TestSendFile: a plugin's stream takes files (sendfile into the side
// channel's socket) between ordinary writes, in order and counted, from the
// file's current offset; a file that ends early gives a short count; one
// sendfile cannot read is refused with ErrNoSendFile. 20 MiB outruns the
// socket's buffer, so the send must also wait for the core.
func TestSendFile(t *testing.T) {
	data := bigPayload()[:20<<20]
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var sends []int64
	p := &source{backup: func(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
		fs, ok := w.(sdk.FileSender)
		if !ok {
			return sdk.BackupResult{}, errors.New("the stream is no FileSender")
		}
		f, err := os.Open(path)
		if err != nil {
			return sdk.BackupResult{}, err
		}
		defer f.Close()
		io.WriteString(w, "header|")
		// From offset 100: what was read before is not sent again.
		if _, err := io.ReadFull(f, make([]byte, 100)); err != nil {
			return sdk.BackupResult{}, err
		}
		n, err := fs.SendFile(f, 15<<20)
		sends = append(sends, n)
		if err != nil {
			return sdk.BackupResult{}, err
		}
		io.WriteString(w, "|middle|")
		// More than is left: a short count, no error.
		n, err = fs.SendFile(f, 10<<20)
		sends = append(sends, n)
		if err != nil {
			return sdk.BackupResult{}, err
		}
		io.WriteString(w, "|end")
		// A file sendfile(2) cannot read (procfs has no splice): nothing is
		// sent, and the plugin is told to write instead.
		proc, err := os.Open("/proc/self/stat")
		if err != nil {
			return sdk.BackupResult{}, err
		}
		defer proc.Close()
		if n, err := fs.SendFile(proc, 100); n != 0 || !errors.Is(err, sdk.ErrNoSendFile) {
			return sdk.BackupResult{}, fmt.Errorf("SendFile from procfs = %d, %v; want 0, ErrNoSendFile", n, err)
		}
		return sdk.BackupResult{}, nil
	}}
	c := connect(t, p)
	var got bytes.Buffer
	reply, err := c.Backup(context.Background(), dumpConfig(t), "db:moodle", "2024-03-01_03-00-00", &got)
	if err != nil {
		t.Fatal(err)
	}
	rest := int64(len(data)) - 100 - 15<<20
	if len(sends) != 2 || sends[0] != 15<<20 || sends[1] != rest {
		t.Fatalf("SendFile counts %v, want [%d %d]", sends, 15<<20, rest)
	}
	var want bytes.Buffer
	want.WriteString("header|")
	want.Write(data[100 : 100+15<<20])
	want.WriteString("|middle|")
	want.Write(data[100+15<<20:])
	want.WriteString("|end")
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("received %d bytes, sha256 %s; want %d bytes, sha256 %s", got.Len(), sha(got.Bytes()), want.Len(), sha(want.Bytes()))
	}
	if reply.Bytes != int64(want.Len()) {
		t.Errorf("the plugin reported %d bytes, want %d", reply.Bytes, want.Len())
	}
}

// TestSendFileCoreWriteFails: when the core cannot keep the stream while a
// file is being sent, SendFile fails (the socket is closed) rather than
// waiting forever, and the error names the core's cause.
func TestSendFileCoreWriteFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, bigPayload(), 0o600); err != nil {
		t.Fatal(err)
	}
	sendErr := make(chan error, 1)
	p := &source{backup: func(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
		f, err := os.Open(path)
		if err != nil {
			return sdk.BackupResult{}, err
		}
		defer f.Close()
		_, err = w.(sdk.FileSender).SendFile(f, int64(len(bigPayload())))
		sendErr <- err
		return sdk.BackupResult{}, err
	}}
	c := connect(t, p)
	for name, w := range coreWriters(4 << 20) {
		done := make(chan error, 1)
		go func() {
			_, err := c.Backup(context.Background(), dumpConfig(t), "db:moodle", "s", w)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "no space left on device") {
				t.Errorf("%s: err = %v\nwant it to name the core's write error", name, err)
			}
		case <-time.After(hangGuard):
			t.Fatalf("%s: Backup hangs while the plugin sends a file the core cannot keep", name)
		}
		if err := <-sendErr; err == nil {
			t.Errorf("%s: SendFile succeeded although the core stopped reading", name)
		}
	}
}

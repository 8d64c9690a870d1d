package stream_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/stream"
)

func TestEncryptedRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	raw := bytes.Repeat([]byte("Moodle log line, ñandú 🦤\n"), 200000)
	for _, comp := range []string{"gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a"+stream.Ext(comp, true))
			s, err := stream.NewSink(path, comp, 0, []age.Recipient{id.Recipient()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(raw); err != nil {
				t.Fatal(err)
			}
			res, err := s.Close()
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := os.ReadFile(path)
			if int64(len(stored)) != res.Size || !bytes.HasPrefix(stored, []byte("age-encryption.org/v1")) {
				t.Fatalf("the stored file is not an age file of the reported size")
			}
			if bytes.Contains(stored, []byte("Moodle log line")) {
				t.Fatal("plain text in the encrypted file")
			}
			if _, err := stream.NewReader(bytes.NewReader(stored), comp, true, nil); !errors.Is(err, stream.ErrNoIdentity) {
				t.Fatalf("without identity: %v", err)
			}
			if _, err := stream.NewReader(bytes.NewReader(stored), comp, true, []age.Identity{other}); err == nil {
				t.Fatal("a wrong identity was accepted")
			}
			r, err := stream.NewReader(bytes.NewReader(stored), comp, true, []age.Identity{id})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("round trip: %v, %d bytes back of %d", err, len(got), len(raw))
			}
		})
	}
}

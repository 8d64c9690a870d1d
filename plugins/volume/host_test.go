package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// buildHostDataroot makes a small Moodle-shaped dataroot with every kind of
// entry the plugin must keep.
func buildHostDataroot(t *testing.T, root string) {
	t.Helper()
	old := time.Date(2001, 9, 9, 1, 46, 40, 123456789, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(name string, size int, mode os.FileMode) {
		full := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		name := fmt.Sprintf("%x", h[:20])
		write(filepath.Join("filedir", name[:2], name[2:4], name), i*37, 0o640)
	}
	write("filedir/aa/bb/big", 3<<20, 0o640)
	write("trashdir/de/ad/deadbeef", 10, 0o640)
	write("muc/config.php", 51, 0o600)
	write("lang/en/ñandú – file with spaces.txt", 7, 0o640)
	write("cache/cachestore_file/blob", 4096, 0o640)
	write("sessions/sess_x", 12, 0o600)
	write("climaintenance.html", 11, 0o644)
	must(t, os.MkdirAll(filepath.Join(root, "repository", "empty"), 0o750))
	must(t, os.Symlink("en", filepath.Join(root, "lang", "current")))
	must(t, os.Symlink("/etc/hostname", filepath.Join(root, "abs-link")))
	must(t, os.Link(filepath.Join(root, "muc", "config.php"), filepath.Join(root, "muc", "config-hardlink.php")))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, 33, 33); err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o750)
		}
		return nil
	}))
	must(t, os.Chmod(filepath.Join(root, "lang"), 0o2750))
	must(t, os.Chtimes(filepath.Join(root, "muc", "config.php"), old, old))
	must(t, os.Chtimes(filepath.Join(root, "repository", "empty"), old, old))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// hostFingerprint describes a host directory: path -> type, mode, owner,
// size, mtime in nanoseconds, link count, link target, sha256.
func hostFingerprint(t *testing.T, root string) map[string]string {
	t.Helper()
	fp := map[string]string{}
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v mode=%o owner=%d:%d mtime=%d", fi.Mode().Type(), st.Mode&0o7777, st.Uid, st.Gid,
			time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UnixNano())
		switch {
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			desc += fmt.Sprintf(" size=%d nlink=%d sha=%x", fi.Size(), st.Nlink, h.Sum(nil)[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " link=" + l
		}
		fp[filepath.ToSlash(rel)] = desc
		return nil
	}))
	return fp
}

func TestHostPathRoundTrip(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "moodledata")
	buildHostDataroot(t, src)
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(src)})

	file, res := mustBackup(t, p, cfg)
	if res.Details["files"].(int64) != 204 || res.Details["hard_links"].(int64) != 1 ||
		res.Details["symlinks"].(int64) != 2 || res.Details["other"].(int64) != 1 {
		t.Errorf("details = %v", res.Details)
	}
	if l := res.Details["largest_files"].([]sizedPath); l[0].Path != "filedir/aa/bb/big" || l[0].Size != 3<<20 {
		t.Errorf("largest = %v", l)
	}
	if !strings.Contains(res.InfoText, "cache") || !strings.Contains(res.InfoText, "4.0 KiB") {
		t.Errorf("info text lacks the excluded cache:\n%s", res.InfoText)
	}

	// The FIFO is archived but, without keep_special, not restored.
	want := without(hostFingerprint(t, src), append(moodleExcluded, "fifo")...)
	dst := filepath.Join(base, "restored", "moodledata") // does not exist yet
	tests := []struct {
		name    string
		opts    map[string]string
		prepare func(t *testing.T)
		wantErr string
	}{
		{name: "into a new directory", opts: map[string]string{"target_path": dst}},
		{name: "not empty", opts: map[string]string{"target_path": dst},
			wantErr: "not empty"},
		{name: "clean", opts: map[string]string{"target_path": dst, "clean": "true"},
			prepare: func(t *testing.T) {
				must(t, os.WriteFile(filepath.Join(dst, "stale"), []byte("old"), 0o600))
				must(t, os.RemoveAll(filepath.Join(dst, "filedir")))
			}},
		{name: "into the source itself", opts: map[string]string{"clean": "false"},
			wantErr: "not empty"},
		{name: "both targets", opts: map[string]string{"target_path": dst, "target_volume": "v"},
			wantErr: "not both"},
		{name: "root", opts: map[string]string{"target_path": "/", "clean": "true"},
			wantErr: "refusing to restore into /"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(t)
			}
			rres, err := restoreFile(t, p, cfg, tc.opts, file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Restore error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if !strings.Contains(rres.Summary, "204 files") || !strings.Contains(rres.Summary, "1 special files (devices, FIFOs) not restored") {
				t.Errorf("summary = %q", rres.Summary)
			}
			got := hostFingerprint(t, dst)
			if d := diff(want, got); len(d) > 0 {
				t.Errorf("restored directory differs:\n%s", strings.Join(d, "\n"))
			}
			a, _ := os.Stat(filepath.Join(dst, "muc", "config.php"))
			b, _ := os.Stat(filepath.Join(dst, "muc", "config-hardlink.php"))
			if !os.SameFile(a, b) {
				t.Error("the hard link was restored as two files")
			}
		})
	}
}

// TestChangingFile covers a file that shrinks or grows between its header
// and its data: the archive stays valid, with a warning. Each case runs with
// the data copied through tar.Writer, sent around it (a stream that takes
// files; the real side channel's sendfile is tested in core/sdk and end to
// end by the volume round trips), and refused by the stream's filesystem.
func TestChangingFile(t *testing.T) {
	text := func(n int) string { return strings.Repeat("moodledata", n/10+1)[:n] }
	big := sendFileMin + 12345
	tests := []struct {
		name, data string
		size       int64
		want, warn string
	}{
		{"shrank", "abc", 6, "abc\x00\x00\x00", "shrank from 6 to 3 bytes"},
		{"grew", "abcdefgh", 4, "abcd", "grew while being read"},
		{"same", "abcd", 4, "abcd", ""},
		{"large shrank", text(big), int64(big + 700), text(big) + strings.Repeat("\x00", 700), fmt.Sprintf("shrank from %d to %d bytes", big+700, big)},
		{"large grew", text(3*sendChunk + 5), 3 * sendChunk, text(3 * sendChunk), "grew while being read"},
		{"large same", text(big), int64(big), text(big), ""},
	}
	for _, tc := range tests {
		for _, way := range []string{"copied", "sent", "refused"} {
			t.Run(tc.name+"/"+way, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "f")
				if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				// copied: a stream that takes no files; sent: one that does;
				// refused: one whose filesystem cannot (the copy takes over).
				out := &fileStream{refuse: way == "refused"}
				var w io.Writer = &out.Buffer
				if way != "copied" {
					w = out
				}
				tw := newArchiveWriter(w)
				if err := tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o600, Size: tc.size}); err != nil {
					t.Fatal(err)
				}
				var warned string
				err = fileData(t.Context(), tw, f, tc.size, func(f string, a ...any) {
					warned = fmt.Sprintf(f, a...)
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := tw.Close(); err != nil {
					t.Fatal(err)
				}
				tr := tar.NewReader(&out.Buffer)
				if _, err := tr.Next(); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Errorf("wrote %d bytes, want %d (or they differ)", len(got), len(tc.want))
				}
				if _, err := tr.Next(); err != io.EOF {
					t.Errorf("after the entry: %v, want the end of the archive", err)
				}
				if !strings.Contains(warned, tc.warn) || (tc.warn == "" && warned != "") {
					t.Errorf("warning %q, want %q", warned, tc.warn)
				}
				if wantSent := way == "sent" && tc.size >= sendFileMin; (out.sent > 0) != wantSent {
					t.Errorf("%d bytes went around tar.Writer; want some: %v", out.sent, wantSent)
				}
			})
		}
	}
}

// fileStream is a stream that takes files, as the side channel does, into
// the same buffer as its writes.
type fileStream struct {
	bytes.Buffer
	sent   int64
	refuse bool
}

func (s *fileStream) SendFile(f *os.File, n int64) (int64, error) {
	if s.refuse {
		return 0, sdk.ErrNoSendFile
	}
	k, err := io.CopyN(&s.Buffer, f, n)
	s.sent += k
	if err == io.EOF {
		err = nil
	}
	return k, err
}

// The scan's entryInfo answers as os.Lstat's FileInfo and DirEntry do, for
// every kind of entry a site can hold, special bits included.
func TestEntryInfoAsLstat(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, fn func(string) error) string {
		p := filepath.Join(dir, name)
		if err := fn(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	paths := []string{
		mk("file", func(p string) error { return os.WriteFile(p, []byte("twelve bytes"), 0o640) }),
		mk("setuid", func(p string) error {
			if err := os.WriteFile(p, nil, 0o755); err != nil {
				return err
			}
			return os.Chmod(p, 0o755|os.ModeSetuid|os.ModeSetgid)
		}),
		mk("dir", func(p string) error { return os.Mkdir(p, 0o750) }),
		mk("sticky", func(p string) error {
			if err := os.Mkdir(p, 0o777); err != nil {
				return err
			}
			return os.Chmod(p, 0o777|os.ModeSticky)
		}),
		mk("link", func(p string) error { return os.Symlink("file", p) }),
		mk("fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }),
		"/dev/null",
	}
	for _, p := range paths {
		want, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		got := entryInfo{name: filepath.Base(p)}
		if err := lstatInto(p, &got); err != nil {
			t.Fatal(err)
		}
		if got.Name() != want.Name() || got.Mode() != want.Mode() || got.Size() != want.Size() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() || got.Type() != want.Mode().Type() {
			t.Errorf("%s: entryInfo says %s %v %d %v, os.Lstat %s %v %d %v", p,
				got.Name(), got.Mode(), got.Size(), got.ModTime(), want.Name(), want.Mode(), want.Size(), want.ModTime())
		}
		if *got.Sys().(*syscall.Stat_t) != *want.Sys().(*syscall.Stat_t) {
			t.Errorf("%s: Sys differs from os.Lstat's", p)
		}
		if fi, err := got.Info(); err != nil || fi != fs.FileInfo(&got) {
			t.Errorf("%s: Info is not the entry itself", p)
		}
	}
	var e entryInfo
	if err := lstatInto(filepath.Join(dir, "missing"), &e); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("lstat of a missing name: %v", err)
	}
}

// relTo cuts the walk's paths and works out any other as filepath.Rel.
func TestRelTo(t *testing.T) {
	for _, c := range []struct{ root, full, want string }{
		{"/srv/data", "/srv/data", "."},
		{"/srv/data", "/srv/data/filedir/ab/cd/x", "filedir/ab/cd/x"},
		{"/srv/data", "/srv/database/x", "../database/x"},
		{"/srv/data", "/srv/data/a/../b", "b"},
		{"/", "/etc/passwd", "etc/passwd"},
		{"/srv/data/", "/srv/data/x", "x"},
		{"/srv/data", "/srv/data/x//y", "x/y"},
		{"/srv/data", "/srv/data/x/./y/", "x/y"},
		{"/srv/data", "/srv/data/.hidden", ".hidden"},
	} {
		if got, err := relTo(c.root, c.full); err != nil || got != c.want {
			t.Errorf("relTo(%q, %q) = %q, %v; want %q", c.root, c.full, got, err, c.want)
		}
	}
}

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// archiveEntries is the headers of a pooled archive's entries in their
// order, each line of a pool listing as the header of the PAX form (a
// pooled file's with its records), and how many listing entries there
// were.
func archiveEntries(t testing.TB, r io.Reader) (hs []*tar.Header, listings int) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, listings
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := h.PAXRecords[spec.PoolPAXListing]; !ok {
			hs = append(hs, h)
			continue
		}
		listings++
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := spec.ParseListing(data, func(e *spec.ListEntry) error {
			lh := &tar.Header{Typeflag: tar.TypeDir, Name: e.Name, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: e.ModTime}
			if !e.Dir {
				lh.Typeflag = tar.TypeReg
				lh.PAXRecords = map[string]string{spec.PoolPAXSHA1: e.SHA1, spec.PoolPAXSize: strconv.FormatInt(e.Size, 10)}
			}
			hs = append(hs, lh)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// testTimeout bounds one plugin call in the tests.
const testTimeout = 2 * time.Minute

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTestPlugin(t testing.TB) *plugin {
	return &plugin{log: hclog.New(&hclog.LoggerOptions{Name: "volume", Output: testLog{t}, Level: hclog.Debug})}
}

func testConfig(t testing.TB, p *plugin, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	s, err := p.Schema(sdk.KindArchive)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sdk.NewConfig(sdk.KindArchive, s, attrs)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func strs(ss ...string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}

// backupFile runs Backup into a new temp file.
func backupFile(t testing.TB, p *plugin, cfg sdk.Config) (string, sdk.BackupResult, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "moodledata.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := p.Backup(ctx, sdk.BackupRequest{Config: cfg, Artifact: artifactID, Set: "test"}, f)
	return file, res, err
}

func mustBackup(t testing.TB, p *plugin, cfg sdk.Config) (string, sdk.BackupResult) {
	t.Helper()
	file, res, err := backupFile(t, p, cfg)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return file, res
}

// restoreBytes runs Restore from a reader holding an archive.
func restoreFrom(t testing.TB, p *plugin, cfg sdk.Config, opts map[string]string, r io.Reader) (sdk.RestoreResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return p.Restore(ctx, sdk.RestoreRequest{Config: cfg, Artifact: artifactID, Options: ropts(t, opts)}, r)
}

func restoreFile(t testing.TB, p *plugin, cfg sdk.Config, opts map[string]string, file string) (sdk.RestoreResult, error) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return restoreFrom(t, p, cfg, opts, f)
}

// tarEntries reads an archive into name -> description (type, mode, owner,
// size, mtime, link target, content hash), failing on a bad archive.
func tarEntries(t testing.TB, file string) (map[string]string, []string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	var order []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		if _, dup := out[h.Name]; dup {
			t.Errorf("%s: entry %q appears twice", file, h.Name)
		}
		out[h.Name] = fmt.Sprintf("type=%c mode=%o uid=%d gid=%d size=%d mtime=%d link=%q sha=%x uname=%q",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.UnixNano(), h.Linkname, sum.Sum(nil)[:8], h.Uname)
		order = append(order, h.Name)
	}
	return out, order
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	typ  byte
	name string
	link string
	body string
	mode int64
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode,
			ModTime: time.Unix(1000000000, 0), Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fingerprintScript prints, for every entry below $1, NUL-separated
// "meta", path and link target, then "SUMS" and sha256sum -z of the files.
const fingerprintScript = `set -e
cd "$1"
find . -printf '%y %m %U %G %s %T@ %n\0%p\0%l\0'
printf 'SUMS\0'
find . -type f -print0 | xargs -0 -r sha256sum -z`

// fingerprint describes a directory inside a container: path -> type,
// mode, owner, size, mtime (seconds), link count, link target, sha256.
// Directory sizes are left out: they depend on the filesystem's history.
func fingerprint(t testing.TB, ctr, dir string) map[string]string {
	t.Helper()
	out, stderr, code := testenv.Exec(t, ctr, nil, "sh", "-c", fingerprintScript, "sh", dir)
	if code != 0 {
		t.Fatalf("fingerprint %s in %s: exit %d: %s", dir, ctr, code, stderr)
	}
	meta, sums, ok := strings.Cut(out, "SUMS\x00")
	if !ok {
		t.Fatalf("fingerprint %s in %s: no SUMS marker", dir, ctr)
	}
	hashes := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(sums, "\x00"), "\x00") {
		if line == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("bad sha256sum line %q", line)
		}
		hashes[name] = sum
	}
	fields := strings.Split(strings.TrimSuffix(meta, "\x00"), "\x00")
	if len(fields)%3 != 0 {
		t.Fatalf("fingerprint %s in %s: %d fields", dir, ctr, len(fields))
	}
	fp := map[string]string{}
	for i := 0; i < len(fields); i += 3 {
		m := strings.Fields(fields[i])
		name, link := fields[i+1], fields[i+2]
		typ, mode, uid, gid, size, mtime, nlink := m[0], m[1], m[2], m[3], m[4], m[5], m[6]
		sec, _, _ := strings.Cut(mtime, ".")
		if typ == "d" {
			size, nlink = "-", "-"
		}
		fp[name] = fmt.Sprintf("%s mode=%s owner=%s:%s size=%s mtime=%s nlink=%s link=%q sha=%s",
			typ, mode, uid, gid, size, sec, nlink, link, hashes[name])
	}
	return fp
}

// without drops the paths that are, or lie below, one of roots.
func without(fp map[string]string, roots ...string) map[string]string {
	out := map[string]string{}
	for name, v := range fp {
		rel := strings.TrimPrefix(name, "./")
		drop := false
		for _, r := range roots {
			if rel == r || strings.HasPrefix(rel, r+"/") {
				drop = true
			}
		}
		if !drop {
			out[name] = v
		}
	}
	return out
}

// diff lists the differences between two fingerprints, at most 20.
func diff(want, got map[string]string) []string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("missing %q (%s)", k, w))
		} else if g != w {
			out = append(out, fmt.Sprintf("%q:\n  want %s\n  got  %s", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected %q (%s)", k, g))
		}
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = append(out[:20], "... and "+strconv.Itoa(len(out)-20)+" more")
	}
	return out
}

// removeVolumeAtCleanup removes a volume the plugin creates.
func removeVolumeAtCleanup(t testing.TB, name string) {
	cli := testenv.Docker(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cli.VolumeRemove(ctx, name, true); err != nil && !client.IsErrNotFound(err) {
			t.Logf("cleanup: remove volume %s: %v", name, err)
		}
	})
}

func removeContainer(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.Docker(t).ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove container %s: %v", name, err)
	}
}

// helpersLeft lists helper containers that still mount a volume.
func helpersLeft(t testing.TB, vol string) []string {
	t.Helper()
	e, err := newEngine(hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	users, err := e.containersUsing(context.Background(), vol, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range users {
		if u.Labels[helperLabel] != "" {
			out = append(out, u.Names...)
		}
	}
	return out
}

// ropts are restore options as `mbk restore` would send them, from strings.
func ropts(t testing.TB, opts map[string]string) sdk.Config {
	t.Helper()
	c, err := sdk.NewRestoreOptions(sdk.Schema{RestoreOptions: restoreOptions}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setVar sets *v to x for a test; the returned func puts it back.
func setVar[T any](v *T, x T) func() {
	old := *v
	*v = x
	return func() { *v = old }
}

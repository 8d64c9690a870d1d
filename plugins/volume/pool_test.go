package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// corePool is the core's pool package behind the SDK's interface, as the
// core serves it (core/engine/pooled.go); the gRPC path between the two is
// covered end to end in cmd/mbk. A restore reads the archive as the core
// expands it (core/pool's Expand).
type corePool struct {
	p    *pool.Pool
	mu   sync.Mutex
	puts int // read once the backup is over
}

func (c *corePool) Have(_ context.Context, bs []sdk.Blob) ([]bool, error) {
	out := make([]bool, len(bs))
	for i, b := range bs {
		out[i] = c.p.Has(pool.Blob(b))
	}
	return out, nil
}

func (c *corePool) Put(_ context.Context, _ sdk.Blob, r io.Reader) (sdk.Blob, error) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	w, err := c.p.Put(r, pool.Codec{Compression: "zstd"})
	return sdk.Blob(w.Blob), err
}

// pooledSite is sha1Dataroot in a test directory, a pool beside it, and
// the plugin with filedir = "pool" over it.
type pooledSite struct {
	base, src, corrupt string
	pl                 *pool.Pool
	p                  *plugin
	cfg                sdk.Config
}

func newPooledSite(t *testing.T) *pooledSite {
	s := &pooledSite{base: t.TempDir()}
	s.src = filepath.Join(s.base, "moodledata")
	s.corrupt = sha1Dataroot(t, s.src)
	var err error
	s.pl, err = pool.Open(filepath.Join(s.base, "root"))
	must(t, err)
	s.p = newTestPlugin(t)
	s.cfg = testConfig(t, s.p, map[string]cty.Value{"path": cty.StringVal(s.src), "filedir": cty.StringVal("pool")})
	return s
}

// sha1Dataroot is buildHostDataroot with filedir laid out as Moodle does:
// each file named by the SHA-1 of its content, except one whose content was
// changed after it was named (corruption in the site), and one more link
// to a pooled file.
func sha1Dataroot(t *testing.T, root string) (corrupt string) {
	buildHostDataroot(t, root)
	var files []string
	must(t, filepath.WalkDir(filepath.Join(root, "filedir"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && len(d.Name()) == 40 {
			files = append(files, p)
		}
		return err
	}))
	for i, p := range files {
		b, err := os.ReadFile(p)
		must(t, err)
		h := sha1.Sum(b)
		name := hex.EncodeToString(h[:])
		dst := filepath.Join(root, "filedir", name[:2], name[2:4], name)
		must(t, os.MkdirAll(filepath.Dir(dst), 0o750))
		must(t, os.Rename(p, dst))
		for d := filepath.Dir(dst); d != filepath.Join(root, "filedir"); d = filepath.Dir(d) {
			must(t, os.Lchown(d, 33, 33))
		}
		if i == 7 {
			must(t, os.WriteFile(dst, []byte("changed behind Moodle's back"), 0o640))
			corrupt = "filedir/" + name[:2] + "/" + name[2:4] + "/" + name
		}
	}
	return corrupt
}

// A pooled archive restores the tree a whole archive restores: same bytes,
// owners, modes, times, links. A second backup of the unchanged tree sends
// no content, a restore without the pool and one from a damaged blob fail,
// and a file whose content does not match its name is stored under its real
// hash with a warning.
func TestHostPoolRoundTrip(t *testing.T) {
	// Batches of 7: one is with the core while the walk fills the next,
	// 29 of them for the 200 pooled files.
	defer func(n int) { poolBatch = n }(poolBatch)
	poolBatch = 7
	site := newPooledSite(t)
	base, src, corrupt, pl, p, cfg := site.base, site.src, site.corrupt, site.pl, site.p, site.cfg
	cp := &corePool{p: pl}
	backup := func() (string, sdk.BackupResult) { return pooledBackup(t, p, cfg, cp) }
	restore := func(file, dst string, expand bool) error { return restoreHost(t, p, pl, cfg, file, dst, expand) }

	file, res := backup()
	if got := res.Details["pool_sent_blobs"].(int64); got != 200 || cp.puts != 200 {
		t.Fatalf("first backup: %d new blobs, %d puts; want 200", got, cp.puts)
	}
	if res.Details["pool_mismatched"] != int64(1) || !strings.Contains(res.InfoText, corrupt) {
		t.Errorf("the mismatched file was not reported: details %v\n%s", res.Details, res.InfoText)
	}
	if res.Details["files"].(int64) != 204 {
		t.Errorf("details = %v", res.Details)
	}
	pooled, inTar, last := 0, int64(0), ""
	f, _ := os.Open(file)
	hs, listings := archiveEntries(t, f)
	if listings == 0 {
		t.Error("the archive holds no pool listing")
	}
	for _, h := range hs {
		if _, ok := h.PAXRecords[paxPoolSHA1]; ok {
			pooled++
			// In the walk's order, each once, whatever batch it was in.
			if h.Name <= last {
				t.Errorf("pooled entry %q comes after %q", h.Name, last)
			}
			last = h.Name
		}
		inTar += h.Size
	}
	f.Close()
	if pooled != 200 || inTar > 3<<20+4096 {
		t.Errorf("the archive holds %d pooled entries and %d bytes of data; want 200 and only the unpooled files", pooled, inTar)
	}

	want := without(hostFingerprint(t, src), append(moodleExcluded, "fifo")...)
	dst := filepath.Join(base, "restored")
	must(t, restore(file, dst, true))
	if d := diff(want, hostFingerprint(t, dst)); len(d) > 0 {
		t.Errorf("restored directory differs:\n%s", strings.Join(d, "\n"))
	}

	// Unchanged: nothing is read or sent again, but for the file whose
	// name is not its content's hash (the pool cannot know it by name).
	cp.puts = 0
	file2, res2 := backup()
	if res2.Details["pool_sent_blobs"].(int64) != 1 || cp.puts != 1 {
		t.Errorf("second backup put %d blobs (%v new)", cp.puts, res2.Details["pool_sent_blobs"])
	}
	a, _ := os.Stat(file)
	b, _ := os.Stat(file2)
	if a.Size() != b.Size() {
		t.Errorf("the unchanged archive is %d bytes, the first %d", b.Size(), a.Size())
	}

	// The listing entry carries the pooled entries' record too: a restore
	// of the stream as stored refuses it (here, as any mbk before
	// listings would, since it takes it for a pooled entry).
	if err := restore(file, filepath.Join(base, "nopool"), false); err == nil || !strings.Contains(err.Error(), "pool") ||
		!strings.Contains(err.Error(), spec.PoolListingName) {
		t.Errorf("a restore of the archive as it is stored, not expanded, gave %v", err)
	}

	// Damage one blob: the restore fails, naming it.
	var victim string
	must(t, pl.Walk(func(b pool.Blob, path string, _ int64) error {
		if victim == "" && b.Size > 100 {
			victim = path
		}
		return nil
	}))
	raw, err := os.ReadFile(victim)
	must(t, err)
	raw[len(raw)-3] ^= 0xff
	must(t, os.WriteFile(victim, raw, 0o600))
	err = restore(file, filepath.Join(base, "damaged"), true)
	if err == nil {
		t.Fatal("a restore from a damaged blob succeeded")
	}
	if !strings.Contains(err.Error(), pool.ErrCorrupt.Error()) {
		t.Errorf("restore from a damaged blob: %v", err)
	}
}

// restoreHost restores the archive in file into host directory dst, as
// the core expands it from pl when expand is set, as stored otherwise.
func restoreHost(t *testing.T, p *plugin, pl *pool.Pool, cfg sdk.Config, file, dst string, expand bool) error {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	var r io.Reader = f
	if expand {
		xr := pl.ExpandReader(context.Background(), f, nil)
		defer xr.Close()
		r = xr
	}
	_, err = p.Restore(context.Background(), sdk.RestoreRequest{Config: cfg, Artifact: artifactID,
		Options: ropts(t, map[string]string{"target_path": dst})}, r)
	return err
}

// failingPool is corePool whose Have or Put fails at a given call (1-based;
// 0: never), and which counts the calls that begin after Backup returned.
type failingPool struct {
	p                     *pool.Pool
	failHaveAt, failPutAt int
	// cancelAt: that question cancels the backup and answers late.
	cancelAt          int
	cancel            context.CancelFunc
	mu                sync.Mutex
	haves, puts, late int
	returned          bool
}

func (f *failingPool) call(n *int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.returned {
		f.late++
	}
	*n++
	return *n
}

func (f *failingPool) Have(_ context.Context, bs []sdk.Blob) ([]bool, error) {
	n := f.call(&f.haves)
	if n == f.failHaveAt {
		return nil, errors.New("the core's disk is full")
	}
	if n == f.cancelAt {
		f.cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return make([]bool, len(bs)), nil // nothing there: every file is put
}

func (f *failingPool) Put(_ context.Context, _ sdk.Blob, r io.Reader) (sdk.Blob, error) {
	if f.call(&f.puts) == f.failPutAt {
		return sdk.Blob{}, errors.New("the core's disk is full")
	}
	w, err := f.p.Put(r, pool.Codec{Compression: "zstd"})
	return sdk.Blob(w.Blob), err
}

// When the core fails a question or a put midway (batches of 7, one with
// the core while the walk fills the next), Backup fails with the core's
// error; when the run is cancelled while a batch is with the core, Backup
// waits for it. Either way nothing reaches the core once Backup returned.
func TestHostPoolCoreFails(t *testing.T) {
	defer func(n int) { poolBatch = n }(poolBatch)
	poolBatch = 7
	base := t.TempDir()
	src := filepath.Join(base, "moodledata")
	sha1Dataroot(t, src)
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(src), "filedir": cty.StringVal("pool")})
	poolCoreFails(t, p, cfg, base, 5, 60, 3)
}

// The same through a helper container walking a volume (helperwalk.go):
// its one batch's question fails, its 60th put, or the run is cancelled
// while the question is with the core. The core's error is Backup's.
func TestEnginePoolCoreFails(t *testing.T) {
	src, _ := poolApp(t, "mbktest-pool-fail", "")
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(src), "read": cty.StringVal("engine"), "filedir": cty.StringVal("pool")})
	poolCoreFails(t, p, cfg, t.TempDir(), 1, 60, 1)
}

// poolCoreFails backs up cfg against a core that fails the question have,
// the put put, or cancels the run at the question cancel.
func poolCoreFails(t *testing.T, p *plugin, cfg sdk.Config, base string, have, put, cancelAt int) {
	for _, tc := range []struct {
		name              string
		have, put, cancel int
		want              string
	}{
		{"question", have, 0, 0, "ask the pool: the core's disk is full"},
		{"put", 0, put, 0, "in the pool: the core's disk is full"},
		{"cancelled", 0, 0, cancelAt, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := pool.Open(filepath.Join(base, "root-"+tc.name))
			must(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fp := &failingPool{p: pl, failHaveAt: tc.have, failPutAt: tc.put, cancelAt: tc.cancel, cancel: cancel}
			_, err = p.Backup(ctx, sdk.BackupRequest{Config: cfg, Artifact: artifactID, Set: "s", Pool: fp}, io.Discard)
			fp.mu.Lock()
			fp.returned = true
			fp.mu.Unlock()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Backup: %v; want an error with %q", err, tc.want)
			}
			time.Sleep(100 * time.Millisecond) // room for a straggler to show itself
			fp.mu.Lock()
			defer fp.mu.Unlock()
			if fp.late != 0 {
				t.Errorf("%d calls reached the core after Backup returned", fp.late)
			}
		})
	}
}

// pooledBackup backs up cfg with the core's pool cp into a file of its
// own and returns the file and the result.
func pooledBackup(t *testing.T, p *plugin, cfg sdk.Config, cp sdk.Pool) (string, sdk.BackupResult) {
	t.Helper()
	return pooledBackupCached(t, p, cfg, cp, "")
}

// pooledBackupCached is pooledBackup with the walk cache in cacheDir.
func pooledBackupCached(t *testing.T, p *plugin, cfg sdk.Config, cp sdk.Pool, cacheDir string) (string, sdk.BackupResult) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "moodledata.tar")
	f, err := os.Create(file)
	must(t, err)
	defer f.Close()
	res, err := p.Backup(context.Background(), sdk.BackupRequest{Config: cfg, Artifact: artifactID, Set: "s", Pool: cp, CacheDir: cacheDir}, f)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return file, res
}

// poolApp is a volume named after prefix, filled by poolScript and then
// script, and an app container mounting it at moodleDataroot.
func poolApp(t *testing.T, prefix, script string) (src, app string) {
	t.Helper()
	src = testenv.UniqueName(t, prefix)
	testenv.CreateVolume(t, src)
	app = testenv.StartApp(t, src, moodleDataroot)
	if _, stderr, code := testenv.Exec(t, app, nil, "sh", "-c", poolScript+script, "sh", moodleDataroot); code != 0 {
		t.Fatalf("build the dataroot: exit %d: %s", code, stderr)
	}
	return src, app
}

// poolScript fills $1 with files named by the SHA-1 of their content in
// filedir and trashdir (one of them a megabyte), beside the rest of a
// dataroot, owned by www-data.
const poolScript = `set -eu
cd "$1"
mkdir -p lang/en muc
i=0
while [ $i -lt 300 ]; do
  printf 'content of file %d %0*d\n' $i $((i % 97)) 0 >/tmp/f
  h=$(sha1sum /tmp/f | cut -c1-40)
  mkdir -p filedir/$(echo $h | cut -c1-2)/$(echo $h | cut -c3-4)
  mv /tmp/f filedir/$(echo $h | cut -c1-2)/$(echo $h | cut -c3-4)/$h
  i=$((i + 1))
done
head -c 1048576 /dev/urandom >/tmp/f
h=$(sha1sum /tmp/f | cut -c1-40)
mkdir -p trashdir/$(echo $h | cut -c1-2)/$(echo $h | cut -c3-4)
mv /tmp/f trashdir/$(echo $h | cut -c1-2)/$(echo $h | cut -c3-4)/$h
printf '<?php $string["thislanguage"] = "English";\n' >lang/en/langconfig.php
printf '<?php $configuration = array();\n' >muc/config.php
ln -s en lang/current
chown -R 33:33 .
find . -type f -exec chmod 0640 {} +
touch -d @1000000000 muc/config.php
`

// Through the Engine both ways (a remote Engine, or read = "engine"), for
// a volume and for a path in a container: the pooled backup walks the tree
// in a helper container and sends every blob once; an unchanged one reads
// no file's content; the default exclusions hold; and a restore into a new
// volume through a helper container from the expanded archive gives back
// the same tree. A file whose content does not match its name is stored
// under its real hash and warned of, every night (its name's blob is never
// in the pool). Where no helper can run, the archive API is read: the
// same archive, every file read.
func TestEnginePoolRoundTrip(t *testing.T) {
	const misnamed = "not what its name says\n"
	src, app := poolApp(t, "mbktest-pool-src", `
mkdir -p cache/x sessions && echo cached >cache/x/c && echo s >sessions/sess_1
mkdir -p filedir/ee/ff && printf '`+strings.TrimSuffix(misnamed, "\n")+`\n' >filedir/ee/ff/eeff000000000000000000000000000000000000 && chown -R 33:33 filedir/ee
# Hard links to a pooled file: a name after filedir, and trashdir's.
f=$(ls -d filedir/0*/*/* | head -n 1); ln "$f" zz-copy; mkdir -p "$(dirname "trashdir/${f#filedir/}")"; ln "$f" "trashdir/${f#filedir/}"; chown -R 33:33 trashdir`)
	// The walk cache records no directory changed in the 5 s before a walk.
	time.Sleep(walkCacheMargin + 500*time.Millisecond)
	want := without(fingerprint(t, app, moodleDataroot), moodleExcluded...)
	for _, way := range []struct {
		name   string
		cfg    map[string]cty.Value
		helper bool
		source string
	}{
		{"volume, helper", map[string]cty.Value{"volume": cty.StringVal(src), "read": cty.StringVal("engine")}, true,
			"walked by a helper container next to it"},
		{"container path, helper", map[string]cty.Value{"container": cty.StringVal(app), "path": cty.StringVal(moodleDataroot)}, true,
			"walked by a helper container next to it"},
		{"volume, archive API", map[string]cty.Value{"volume": cty.StringVal(src), "read": cty.StringVal("engine")}, false,
			"read through running container"},
	} {
		t.Run(way.name, func(t *testing.T) {
			defer func() { helperWalks = true }()
			helperWalks = way.helper
			pl, err := pool.Open(t.TempDir())
			must(t, err)
			cp := &corePool{p: pl}
			p := newTestPlugin(t)
			way.cfg["filedir"] = cty.StringVal("pool")
			engineCfg := testConfig(t, p, way.cfg)
			// The helper walks with the walk cache the core gives: it goes
			// into the helper and comes back out.
			cache := ""
			if way.helper {
				cache = t.TempDir()
			}
			backup := func() (string, sdk.BackupResult) { return pooledBackupCached(t, p, engineCfg, cp, cache) }
			file, res := backup()
			if s, _ := res.Details["source"].(string); !strings.Contains(s, way.source) {
				t.Fatalf("source %q, want it read the Engine's way: %q", s, way.source)
			}
			sent := res.Details["pool_sent_bytes"].(int64)
			if cp.puts != 302 || res.Details["pool_sent_blobs"].(int64) != 302 || res.Details["pool_read_bytes"].(int64) != sent {
				t.Fatalf("first backup: %d puts, details %v; want 302, every pooled byte read once", cp.puts, res.Details)
			}
			if res.Details["pool_mismatched"] != int64(1) || res.Details["warnings"] != 1 || res.Details["hard_links"] != int64(2) {
				t.Errorf("first backup: details %v; want the misnamed file counted and warned of, and 2 hard links", res.Details)
			}
			if n := len(res.Details["excluded"].([]sizedPath)); n != 2 {
				t.Errorf("excluded %v, want cache and sessions", res.Details["excluded"])
			}
			cp.puts = 0
			firstRead, _ := res.Details["walk_dirs_read"].(int64)
			file2, res := backup()
			if way.helper {
				// Every directory of the pooled areas the first read, from
				// the cache; the same archive.
				if firstRead < 256 || res.Details["walk_dirs_read"] != int64(0) || res.Details["walk_dirs_cached"] != firstRead {
					t.Errorf("walk_dirs_read %d in the first backup, then %v, and walk_dirs_cached %v; want every directory of filedir and trashdir read, then none, all from the cache",
						firstRead, res.Details["walk_dirs_read"], res.Details["walk_dirs_cached"])
				}
				a, err := os.ReadFile(file)
				must(t, err)
				b, err := os.ReadFile(file2)
				must(t, err)
				if !bytes.Equal(a, b) {
					t.Errorf("the unchanged backup through the cache wrote another archive (%d bytes, first %d)", len(b), len(a))
				}
			}
			read, wantRead := res.Details["pool_read_bytes"].(int64), int64(len(misnamed))
			if !way.helper {
				wantRead = sent
			}
			if cp.puts != 1 || read != wantRead || res.Details["pool_mismatched"] != int64(1) {
				t.Errorf("the unchanged backup put %d blobs and read %d bytes of pooled files (details %v), want the misnamed file's 1 and %d",
					cp.puts, read, res.Details, wantRead)
			}

			dst := testenv.UniqueName(t, "mbktest-pool-dst")
			removeVolumeAtCleanup(t, dst)
			f, err := os.Open(file)
			must(t, err)
			defer f.Close()
			xr := pl.ExpandReader(context.Background(), f, nil)
			defer xr.Close()
			_, err = p.Restore(context.Background(), sdk.RestoreRequest{Config: engineCfg, Artifact: artifactID,
				Options: ropts(t, map[string]string{"target_volume": dst})}, xr)
			if err != nil {
				t.Fatalf("Restore through the Engine: %v", err)
			}
			got := fingerprint(t, testenv.StartApp(t, dst, "/data"), "/data")
			if d := diff(want, got); len(d) > 0 {
				t.Errorf("the volume restored from the pool differs from the source:\n%s", strings.Join(d, "\n"))
			}
			if len(got) < 300 {
				t.Errorf("only %d entries restored", len(got))
			}
		})
	}
}

// Which archive paths go to the pool: a file named by a SHA-1 below filedir
// or trashdir, at any depth, and nothing else.
func TestPoolable(t *testing.T) {
	sum := "da39a3ee5e6b4b0d3255bfef95601890afd80709"
	for path, want := range map[string]bool{
		"filedir/da/39/" + sum:                  true,
		"trashdir/da/39/" + sum:                 true,
		"filedir/" + sum:                        true,
		"filedir/a/b/c/" + sum:                  true,
		"filedir/da/39/" + sum[:39]:             false,
		"filedir/da/39/" + sum + "0":            false,
		"filedir/da/39/" + strings.ToUpper(sum): false,
		"filedir/da/39/" + sum[:39] + "g":       false,
		"filedir/warning.txt":                   false,
		"cache/da/39/" + sum:                    false,
		"filedirx/da/39/" + sum:                 false,
		sum:                                     false,
		"filedir//" + sum:                       false,
	} {
		if got := poolable(path); got != want {
			t.Errorf("poolable(%q) = %v, want %v", path, got, want)
		}
	}
}

// linkAsking is corePool that, asked about the blob of victim's name,
// first moves victim out of the tree, to away: the name vanishes between
// the walk's lstat and its read, and the file keeps its other names.
type linkAsking struct {
	corePool
	t            *testing.T
	victim, away string
}

func (c *linkAsking) Have(ctx context.Context, bs []sdk.Blob) ([]bool, error) {
	for _, b := range bs {
		if c.victim != "" && b.SHA1 == filepath.Base(c.victim) {
			must(c.t, os.Rename(c.victim, c.away))
			c.victim = ""
		}
	}
	return c.corePool.Have(ctx, bs)
}

// TestHostPoolHardLinks: pooled files with other names. Names outside the
// tree (a same-disk snapshot) leave a file pooled as any other; a second
// name inside the tree is a hard link entry behind the pooled one, in the
// pooled areas and outside them, or the pooled file is a link to a name
// archived whole before it. The restore of the expanded archive is the
// restore of a whole archive of the same tree, links included. A first
// name that vanishes before it is read leaves its second name archived
// with its data.
func TestHostPoolHardLinks(t *testing.T) {
	defer setVar(&poolBatch, 7)()
	base := t.TempDir()
	src := filepath.Join(base, "moodledata")
	sha1Dataroot(t, src)
	var pooled []string // filedir's files, in the walk's order
	must(t, filepath.WalkDir(filepath.Join(src, "filedir"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && len(d.Name()) == 40 {
			pooled = append(pooled, p)
		}
		return err
	}))
	rel := func(p string) string { r, _ := filepath.Rel(src, p); return filepath.ToSlash(r) }
	link := func(from, to string) {
		must(t, os.MkdirAll(filepath.Dir(to), 0o750))
		must(t, os.Link(from, to))
	}
	// Names outside the tree: a snapshot of the first 20 files.
	for _, p := range pooled[:20] {
		link(p, filepath.Join(base, "snapshot", rel(p)))
	}
	// trashdir's name of a filedir file (a dedup tool's work), a name
	// after filedir in the walk, and one before it.
	trash := filepath.Join(src, "trashdir", rel(pooled[30])[len("filedir/"):])
	link(pooled[30], trash)
	link(pooled[31], filepath.Join(src, "zz-copy"))
	link(pooled[32], filepath.Join(src, "aa-copy"))

	pl, err := pool.Open(filepath.Join(base, "root"))
	must(t, err)
	cp := &corePool{p: pl}
	p := newTestPlugin(t)
	pooledCfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(src), "filedir": cty.StringVal("pool")})
	wholeCfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(src)})
	restore := func(file, dst string, expand bool) {
		t.Helper()
		must(t, restoreHost(t, p, pl, wholeCfg, file, dst, expand))
	}
	entries := func(file string) (pooledNames map[string]bool, links map[string]string) {
		t.Helper()
		pooledNames, links = map[string]bool{}, map[string]string{}
		f, err := os.Open(file)
		must(t, err)
		defer f.Close()
		hs, _ := archiveEntries(t, f)
		seen := map[string]bool{}
		for _, h := range hs {
			if _, ok := h.PAXRecords[paxPoolSHA1]; ok {
				pooledNames[h.Name] = true
			}
			if h.Typeflag == tar.TypeLink {
				if !seen[h.Linkname] {
					t.Errorf("link %q to %q comes before its target", h.Name, h.Linkname)
				}
				links[h.Name] = h.Linkname
			}
			seen[h.Name] = true
		}
		return pooledNames, links
	}

	file, res := pooledBackup(t, p, pooledCfg, cp)
	pooledNames, links := entries(file)
	for _, p := range pooled[:20] {
		if !pooledNames[rel(p)] {
			t.Errorf("%s, with a name outside the tree, is not pooled", rel(p))
		}
	}
	wantLinks := map[string]string{rel(trash): rel(pooled[30]), "zz-copy": rel(pooled[31]), rel(pooled[32]): "aa-copy", "muc/config.php": "muc/config-hardlink.php"}
	if !maps.Equal(links, wantLinks) {
		t.Errorf("hard links in the archive: %v, want %v", links, wantLinks)
	}
	if got := len(pooledNames); got != len(pooled)-1 {
		t.Errorf("%d pooled entries, want %d: every filedir file but the one linked to aa-copy", got, len(pooled)-1)
	}
	if got := res.Details["hard_links"]; got != int64(4) {
		t.Errorf("details: hard_links %v, want 4", got)
	}

	// The same tree restored from a whole archive and from the pool.
	wholeFile, _ := pooledBackup(t, p, wholeCfg, cp)
	fromWhole, fromPool := filepath.Join(base, "from-whole"), filepath.Join(base, "from-pool")
	restore(wholeFile, fromWhole, false)
	restore(file, fromPool, true)
	if d := diff(hostFingerprint(t, fromWhole), hostFingerprint(t, fromPool)); len(d) > 0 {
		t.Errorf("the restore from the pool differs from the whole archive's:\n%s", strings.Join(d, "\n"))
	}
	for name, target := range wantLinks {
		a, err := os.Stat(filepath.Join(fromPool, name))
		must(t, err)
		b, err := os.Stat(filepath.Join(fromPool, target))
		must(t, err)
		if !os.SameFile(a, b) {
			t.Errorf("restored %s and %s are not one file", name, target)
		}
	}

	// The first name vanishes before it is read (its blob is new): the
	// trashdir name is archived with its data. It is queued behind the
	// first in one batch (the link entry falls back), or met after the
	// first's batch was written (it is taken as a first name).
	for _, batch := range []int{10000, 7} {
		defer setVar(&poolBatch, batch)()
		fresh := []byte(fmt.Sprintf("a file the pool has not seen, batch %d", batch))
		h := sha1.Sum(fresh)
		name := hex.EncodeToString(h[:])
		gone := filepath.Join(src, "filedir", name[:2], name[2:4], name)
		must(t, os.MkdirAll(filepath.Dir(gone), 0o750))
		must(t, os.WriteFile(gone, fresh, 0o640))
		kept := filepath.Join(src, "trashdir", name[:2], name[2:4], name)
		link(gone, kept)
		la := &linkAsking{corePool: corePool{p: pl}, t: t, victim: gone, away: filepath.Join(base, "moved-"+name)}
		file, res := pooledBackup(t, p, pooledCfg, la)
		if la.victim != "" {
			t.Fatal("the first name was never asked about")
		}
		if !strings.Contains(res.InfoText, rel(gone)) {
			t.Errorf("batch %d: no warning names the vanished %s:\n%s", batch, rel(gone), res.InfoText)
		}
		dst := filepath.Join(base, fmt.Sprintf("from-pool-%d", batch))
		restore(file, dst, true)
		if b, err := os.ReadFile(filepath.Join(dst, rel(kept))); err != nil || !bytes.Equal(b, fresh) {
			t.Errorf("batch %d: the second name of a vanished first: %q, %v; want its content", batch, b, err)
		}
		if _, err := os.Lstat(filepath.Join(dst, rel(gone))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("batch %d: the vanished first name was restored: %v", batch, err)
		}
	}

	// Past linkedMax, a second name is a file of its own: the trashdir
	// name a pooled entry, zz-copy archived whole.
	defer setVar(&linkedMax, 0)()
	file4, _ := pooledBackup(t, p, pooledCfg, cp)
	pooled4, links4 := entries(file4)
	if !pooled4[rel(trash)] || links4[rel(trash)] != "" || links4["zz-copy"] != "" {
		t.Errorf("past linkedMax: %s pooled %v, links %v; want it pooled, no link to it", rel(trash), pooled4[rel(trash)], links4)
	}
}

// Excluded directories inside a pooled area: a filedir/ab directory (a
// group the scan lists before the walk reaches it) and an ab/cd directory
// (a subtree scanned by a worker). Their files are neither pooled nor
// restored, and everything else is, with and without the walk cache and
// again from the cache.
func TestHostPoolExcludeInArea(t *testing.T) {
	site := newPooledSite(t)
	base, src, pl, p := site.base, site.src, site.pl, site.p
	abs, err := os.ReadDir(filepath.Join(src, "filedir"))
	must(t, err)
	var dirs []string
	for _, e := range abs {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) < 3 {
		t.Fatalf("filedir holds %d directories", len(dirs))
	}
	cds, err := os.ReadDir(filepath.Join(src, "filedir", dirs[2]))
	must(t, err)
	excluded := []string{"filedir/" + dirs[0], "filedir/" + dirs[2] + "/" + cds[0].Name()}
	cp := &corePool{p: pl}
	var pats []cty.Value
	for _, x := range append(slices.Clone(moodleExcluded), excluded...) {
		pats = append(pats, cty.StringVal(x))
	}
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(src), "filedir": cty.StringVal("pool"), "exclude": cty.ListVal(pats)})
	want := without(hostFingerprint(t, src), append(append(slices.Clone(moodleExcluded), "fifo"), excluded...)...)
	cache := t.TempDir()
	for i, dir := range []string{"", cache, cache} {
		file, res := pooledBackupCached(t, p, cfg, cp, dir)
		if res.Details["excluded"] == nil {
			t.Errorf("backup %d: no exclusions reported: %v", i, res.Details)
		}
		f, err := os.Open(file)
		must(t, err)
		hs, _ := archiveEntries(t, f)
		f.Close()
		for _, h := range hs {
			for _, x := range excluded {
				if n := strings.TrimSuffix(h.Name, "/"); n == x || strings.HasPrefix(n, x+"/") {
					t.Errorf("backup %d: %s is in the archive", i, h.Name)
				}
			}
		}
		dst := filepath.Join(base, fmt.Sprintf("restored-%d", i))
		must(t, restoreHost(t, p, pl, cfg, file, dst, true))
		if d := diff(want, hostFingerprint(t, dst)); len(d) > 0 {
			t.Errorf("backup %d: restored directory differs:\n%s", i, strings.Join(d, "\n"))
		}
	}
}

// The scan with 1 and 3 places for subtrees (fewer than a job's 8) writes
// the archive it writes with 64: the producer hands its job over before it
// waits for a place that only visit can free (without that, it waits
// forever).
func TestScanFewPlaces(t *testing.T) {
	site := newPooledSite(t)
	pl, p, cfg := site.pl, site.p, site.cfg
	read := func(file string) []byte {
		b, err := os.ReadFile(file)
		must(t, err)
		return b
	}
	file, _ := pooledBackup(t, p, cfg, &corePool{p: pl})
	want := read(file)
	for _, n := range []int{1, 3} {
		func() {
			defer func(was int) { scanAhead = was }(scanAhead)
			scanAhead = n
			// A deadlock here ends the test binary at its timeout, with
			// every goroutine's stack.
			f, _ := pooledBackup(t, p, cfg, &corePool{p: pl})
			if !bytes.Equal(read(f), want) {
				t.Errorf("with %d places the archive differs from the one with 64", n)
			}
		}()
	}
}

package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

const moodleDataroot = "/var/www/moodledata"

// bigFile is the 200 MB file of the sample dataroot.
const bigFile = "filedir/ff/ff/ffffffffffffffffffffffffffffffffffffffff"

// moodleScript fills $1 the way a Moodle site's dataroot looks: 5,000
// content-addressed files, trashdir, lang, muc/config.php, caches and
// sessions, with www-data (33) as owner and Moodle's modes, plus the awkward
// cases: symlinks, a hard link, an empty directory, unicode and spaces in
// names, a 200 MB file and mtimes in 2001.
const moodleScript = `set -eu
cd "$1"
awk 'BEGIN { srand(42); for (i = 0; i < 5000; i++) { h = "";
  for (j = 0; j < 5; j++) h = h sprintf("%08x", int(rand() * 4294967295));
  printf "filedir/%s/%s\t%s\t%d\n", substr(h, 1, 2), substr(h, 3, 2), h, i } }' >/tmp/files
cut -f1 /tmp/files | sort -u | xargs mkdir -p
awk -F'\t' '{ f = $1 "/" $2; for (k = 0; k <= $3 % 40; k++) printf "content %s line %d\n", $2, k > f; close(f) }' /tmp/files
mkdir -p trashdir/de/ad lang/en muc cache/cachestore_file/default localcache/mustache temp/backup sessions \
  repository/empty "日本語 dir" filedir/ff/ff
printf 'deleted file\n' >trashdir/de/ad/deadbeefdeadbeefdeadbeefdeadbeefdeadbeef
printf '<?php $string["thislanguage"] = "English";\n' >lang/en/langconfig.php
printf '<?php $configuration = array("stores" => array());\n' >muc/config.php
printf 'ñandú\n' >"lang/en/ñandú – file with spaces.txt"
printf 'x\n' >"日本語 dir/ファイル 1.txt"
head -c 300000 /dev/urandom >cache/cachestore_file/default/blob
printf 'tpl\n' >localcache/mustache/t.php
head -c 50000 /dev/urandom >temp/backup/partial.mbz
printf 'USER|s:1:"x";\n' >sessions/sess_0123456789abcdef
printf 'maintenance\n' >climaintenance.html
ln -s en lang/current
ln -s /etc/hostname abs-link
ln muc/config.php muc/config-hardlink.php
head -c 200M /dev/urandom >` + bigFile + `
chown -R 33:33 .
find . -type d -exec chmod 0750 {} +
find . -type f -exec chmod 0640 {} +
chmod 0600 muc/config.php sessions/sess_0123456789abcdef
chmod 2750 lang
touch -d @1000000000 muc/config.php lang/en/langconfig.php repository/empty
touch -h -d @978350400 abs-link
`

var moodleExcluded = []string{"cache", "localcache", "temp", "sessions", "climaintenance.html"}

// TestVolumeRoundTrip archives a Moodle-shaped volume through the running
// app container that mounts it, restores it into a new volume (through a
// helper container), archives that one again (through a helper too) and
// compares everything, inside containers and in the archives.
func TestVolumeRoundTrip(t *testing.T) {
	src := testenv.UniqueName(t, "mbktest-vol-src")
	testenv.CreateVolume(t, src)
	app := testenv.StartApp(t, src, moodleDataroot)
	if _, stderr, code := testenv.Exec(t, app, nil, "sh", "-c", moodleScript, "sh", moodleDataroot); code != 0 {
		t.Fatalf("build the sample dataroot: exit %d: %s", code, stderr)
	}

	p := newTestPlugin(t)
	// Through the Engine's archive API, as on a remote Engine; read = "auto"
	// (straight from the directory) is tested below against this archive.
	file1, res := mustBackup(t, p, testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(src), "read": cty.StringVal("engine")}))

	t.Run("details", func(t *testing.T) {
		d := res.Details
		if res.InfoFile != "MOODLEDATA_INFO.txt" {
			t.Errorf("InfoFile = %q", res.InfoFile)
		}
		if s, _ := d["source"].(string); !strings.Contains(s, app) {
			t.Errorf("source %q does not name the running container %s", s, app)
		}
		// 5000 + trashdir + langconfig + ñandú + ファイル + muc/config.php + big file.
		if got := d["files"].(int64); got != 5006 {
			t.Errorf("files = %d, want 5006", got)
		}
		if d["symlinks"].(int64) != 2 || d["hard_links"].(int64) != 1 {
			t.Errorf("symlinks = %v, hard links = %v, want 2 and 1", d["symlinks"], d["hard_links"])
		}
		largest := d["largest_files"].([]sizedPath)
		if len(largest) != 10 || largest[0].Path != bigFile || largest[0].Size != 200<<20 {
			t.Errorf("largest files = %+v", largest)
		}
		excl := map[string]sizedPath{}
		for _, x := range d["excluded"].([]sizedPath) {
			excl[x.Path] = x
		}
		for _, name := range moodleExcluded {
			if _, ok := excl[name]; !ok {
				t.Errorf("excluded paths %v lack %q", excl, name)
			}
		}
		if excl["cache"].Size != 300000 || excl["temp"].Size != 50000 {
			t.Errorf("excluded sizes: cache %d, temp %d", excl["cache"].Size, excl["temp"].Size)
		}
		for _, want := range []string{"Files:        5006", bigFile, "Excluded paths:", "cache", "200 MiB"} {
			if !strings.Contains(res.InfoText, want) {
				t.Errorf("info text lacks %q:\n%s", want, res.InfoText)
			}
		}
	})

	entries, order := tarEntries(t, file1)
	t.Run("archive layout", func(t *testing.T) {
		if order[0] != "./" {
			t.Errorf("first entry %q, want ./", order[0])
		}
		for _, name := range order {
			if strings.HasPrefix(name, "/") || strings.HasPrefix(name, "moodledata") || strings.HasPrefix(name, "../") {
				t.Errorf("entry %q is not relative to the dataroot", name)
			}
			if excludedName(name) {
				t.Errorf("excluded entry %q is in the archive", name)
			}
			if strings.Contains(entries[name], `uname="`) && !strings.Contains(entries[name], `uname=""`) {
				t.Errorf("entry %q carries a user name: %s", name, entries[name])
			}
		}
		for name, want := range map[string]string{
			"repository/empty/": "type=5",
			"lang/current":      `type=2 mode=777 uid=33 gid=33 size=0 mtime=`,
			"lang/en/ñandú – file with spaces.txt": "mode=640 uid=33",
			"日本語 dir/ファイル 1.txt":                   "type=0",
			"lang/en/langconfig.php":               "mode=640 uid=33 gid=33 size=43 mtime=1000000000000000000",
			"abs-link":                             `type=2 mode=777 uid=33 gid=33 size=0 mtime=978350400000000000 link="/etc/hostname"`,
			"./":                                   "type=5 mode=750 uid=33",
		} {
			if !strings.Contains(entries[name], want) {
				t.Errorf("entry %q = %q, want it to contain %q", name, entries[name], want)
			}
		}
		// The Engine sends the data under the first name it meets.
		reg, link := entries["muc/config-hardlink.php"], entries["muc/config.php"]
		if !strings.Contains(reg, "type=0 mode=600 uid=33 gid=33") || !strings.Contains(reg, "mtime=1000000000000000000") ||
			!strings.Contains(link, `type=1`) || !strings.Contains(link, `link="muc/config-hardlink.php"`) {
			t.Errorf("hard link pair:\n  %s\n  %s", reg, link)
		}
	})

	dst := testenv.UniqueName(t, "mbktest-vol-dst")
	removeVolumeAtCleanup(t, dst) // the plugin creates it
	rres, err := restoreFile(t, p, testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(src)}),
		map[string]string{"target_volume": dst}, file1)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !strings.Contains(rres.Summary, "5006 files") || !strings.Contains(rres.Summary, dst) {
		t.Errorf("summary = %q", rres.Summary)
	}
	if left := helpersLeft(t, dst); len(left) > 0 {
		t.Errorf("helper containers left behind: %v", left)
	}

	t.Run("archive of the restored volume is identical", func(t *testing.T) {
		file2, res2 := mustBackup(t, p, testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(dst), "read": cty.StringVal("engine")}))
		if s, _ := res2.Details["source"].(string); !strings.Contains(s, "helper container "+helperPrefix) {
			t.Errorf("source %q: want a helper container", s)
		}
		if left := helpersLeft(t, dst); len(left) > 0 {
			t.Errorf("helper containers left behind: %v", left)
		}
		again, _ := tarEntries(t, file2)
		if d := diff(entries, again); len(d) > 0 {
			t.Errorf("archives differ:\n%s", strings.Join(d, "\n"))
		}
	})

	t.Run("read straight from the volume's directory", func(t *testing.T) {
		file3, res3 := mustBackup(t, p, testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(src)}))
		if s, _ := res3.Details["source"].(string); !strings.Contains(s, "read from its directory") {
			t.Fatalf("source %q: want the volume's own directory", s)
		}
		direct := testenv.UniqueName(t, "mbktest-vol-direct")
		removeVolumeAtCleanup(t, direct)
		if _, err := restoreFile(t, p, testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(src)}),
			map[string]string{"target_volume": direct}, file3); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		want := without(fingerprint(t, app, moodleDataroot), moodleExcluded...)
		got := fingerprint(t, testenv.StartApp(t, direct, "/data"), "/data")
		if d := diff(want, got); len(d) > 0 {
			t.Errorf("a volume restored from the direct read differs from the source:\n%s", strings.Join(d, "\n"))
		}
	})

	t.Run("cancelled backup", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &cancellingWriter{after: 10 << 20, cancel: cancel}
		cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(dst)})
		_, err := p.Backup(ctx, sdk.BackupRequest{Config: cfg, Artifact: artifactID}, w)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Backup error = %v, want context.Canceled", err)
		}
		if w.n > 100<<20 {
			t.Errorf("Backup went on for %d bytes after the cancel", w.n)
		}
		if left := helpersLeft(t, dst); len(left) > 0 {
			t.Errorf("helper containers left behind: %v", left)
		}
	})

	t.Run("fingerprint inside containers", func(t *testing.T) {
		want := without(fingerprint(t, app, moodleDataroot), moodleExcluded...)
		got := fingerprint(t, testenv.StartApp(t, dst, "/data"), "/data")
		if d := diff(want, got); len(d) > 0 {
			t.Errorf("restored volume differs from the source:\n%s", strings.Join(d, "\n"))
		}
		for name := range got {
			if excludedName(strings.TrimPrefix(name, "./")) {
				t.Errorf("excluded %q was restored", name)
			}
		}
		if len(got) < 5000 {
			t.Errorf("only %d entries restored", len(got))
		}
	})
}

func excludedName(name string) bool {
	for _, x := range moodleExcluded {
		if name == x || strings.HasPrefix(name, x+"/") {
			return true
		}
	}
	return false
}

// cancellingWriter cancels a context once it has seen after bytes.
type cancellingWriter struct {
	n, after int64
	cancel   func()
}

func (w *cancellingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n >= w.after {
		w.cancel()
	}
	return len(p), nil
}

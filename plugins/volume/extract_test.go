package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestMain lets the test binary serve as the staged-restore helper that the
// Engine path starts in a container (selfhelper.go), as the plugin's does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == helperArg {
		os.Exit(helperMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// rawTar builds an archive from full headers (owners, devices, modes).
func rawTar(t testing.TB, hs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1100000000, 0)
		}
		h.Format = tar.FormatPAX
		body := h.Linkname
		if h.Typeflag == tar.TypeReg {
			body = h.Uname // the content rides in Uname, cleared below
			h.Size = int64(len(body))
			h.Uname = ""
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func dirH(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: 33, Gid: 33}
}
func regH(name, body string, mode int64, uid int) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Uname: body, Mode: mode, Uid: uid, Gid: uid}
}
func linkH(typ byte, name, target string) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777, Uid: 33, Gid: 33}
}

// logBuf is a logger that keeps what it logs, for the test to read.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// oldFilesScript fills $1 as a live site's dataroot would be before a restore.
const oldFilesScript = `set -e
cd "$1"
mkdir -p filedir/ab lang/en
printf 'old one\n' > filedir/ab/one
head -c 300000 /dev/urandom > filedir/ab/big
printf 'maintenance\n' > climaintenance.html
printf 'stale\n' > stale.txt
ln -s filedir/ab/one link
chown -R 33:33 .
chmod 0750 filedir lang
touch -d @1000000000 filedir/ab/one
`

// TestRestoreOverLiveVolume restores hostile archives with clean=true into
// a volume that holds a site's files and is mounted by a running container,
// once straight into the volume's directory and once through the Engine.
// Archives that fail midway (refused, truncated) leave every old file as it
// was and no staging directory; one that succeeds replaces the files but
// keeps climaintenance.html, changes nothing outside the volume, writes
// nothing through its symlinks, and skips, strips and lists the special
// entries.
func TestRestoreOverLiveVolume(t *testing.T) {
	for _, read := range []string{"auto", "engine"} {
		t.Run(read, func(t *testing.T) {
			t.Parallel()
			var logs logBuf
			p := &plugin{log: hclog.New(&hclog.LoggerOptions{Name: "volume", Output: io.MultiWriter(&logs, testLog{t}), Level: hclog.Debug})}
			vol := testenv.UniqueName(t, "mbktest-live")
			testenv.CreateVolume(t, vol)
			app := testenv.StartApp(t, vol, "/data")
			if _, stderr, code := testenv.Exec(t, app, nil, "sh", "-c", oldFilesScript, "sh", "/data"); code != 0 {
				t.Fatalf("old files: exit %d: %s", code, stderr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			v, err := testenv.Docker(t).VolumeInspect(ctx, vol)
			if err != nil {
				t.Fatal(err)
			}
			// Outside the target: a host directory the archive's links
			// point to, and the volume's own directory around _data.
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			must(t, os.Mkdir(outside, 0o755))
			victim := filepath.Join(outside, "victim")
			must(t, os.WriteFile(victim, []byte("keep me"), 0o600))
			old := time.Unix(900000000, 0)
			must(t, os.Chtimes(victim, old, old))
			volDir := filepath.Dir(v.Mountpoint)
			outBefore, volBefore := snapshotT(t, base, ""), snapshotT(t, volDir, v.Mountpoint)
			victimBefore := statLine(t, victim)

			cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol), "read": cty.StringVal(read)})
			clean := map[string]string{"clean": "true"}
			noStaging := func(t *testing.T) {
				t.Helper()
				out, _, _ := testenv.Exec(t, app, nil, "sh", "-c", "ls -a /data")
				if strings.Contains(out, stagingPrefix) {
					t.Errorf("a staging directory is left: %q", out)
				}
			}
			outsideSame := func(t *testing.T) {
				t.Helper()
				if got := snapshotT(t, base, ""); got != outBefore {
					t.Errorf("the restore changed the host outside the volume:\n%s\n---\n%s", outBefore, got)
				}
				if got := snapshotT(t, volDir, v.Mountpoint); got != volBefore {
					t.Errorf("the restore changed the volume's directory around _data:\n%s\n---\n%s", volBefore, got)
				}
				if got := statLine(t, victim); got != victimBefore {
					t.Errorf("the file the archive's symlinks point to changed: %s, was %s", got, victimBefore)
				}
			}

			// The root's own mtime changes (the staging directory came and
			// went); everything in it must be as it was.
			before := without(fingerprint(t, app, "/data"), ".")
			big := bytes.Repeat([]byte("moodle"), 1<<20)
			truncated := rawTar(t, dirH("./", 0o750), regH("filedir/ab/new", "new\n", 0o640, 33), regH("huge", string(big), 0o640, 33))
			for _, tc := range []struct {
				name, wantErr string
				archive       []byte
			}{
				{"symlink then a file through it", `passes through symlink "escape"`, rawTar(t, dirH("./", 0o750),
					regH("filedir/ab/new", "new\n", 0o640, 33), linkH(tar.TypeSymlink, "escape", outside), regH("escape/pwned", "x", 0o644, 33))},
				{"dot-dot", "climbs out", rawTar(t, dirH("./", 0o750),
					regH("filedir/ab/new", "new\n", 0o640, 33), regH("a/../../pwned", "x", 0o644, 33))},
				{"truncated", "truncated", truncated[:len(truncated)/2]},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := restoreFrom(t, p, cfg, clean, bytes.NewReader(tc.archive))
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "old files are untouched") {
						t.Errorf("Restore error = %v, want %q and the old files untouched", err, tc.wantErr)
					}
					if d := diff(before, without(fingerprint(t, app, "/data"), ".")); len(d) > 0 {
						t.Errorf("the old files changed:\n%s", strings.Join(d, "\n"))
					}
					noStaging(t)
					outsideSame(t)
					if left := helpersLeft(t, vol); len(left) > 0 {
						t.Errorf("helper containers left behind: %v", left)
					}
				})
			}

			t.Run("hostile entries that succeed", func(t *testing.T) {
				archive := rawTar(t,
					dirH("./", 0o750),
					regH("filedir/ab/new", "new\n", 0o640, 33),
					linkH(tar.TypeSymlink, "escape", outside),
					linkH(tar.TypeLink, "hard", "escape"),
					// A symlink to a host file, then an entry of that name
					// with its own mode, owner and mtime.
					linkH(tar.TypeSymlink, "s", victim),
					regH("s", "replaced\n", 0o666, 33),
					regH("suid", "#!/bin/sh\n", 0o4755, 33),
					regH("sgid", "#!/bin/sh\n", 0o2755, 33),
					regH("rootfile", "root's\n", 0o644, 0),
					&tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3},
					&tar.Header{Typeflag: tar.TypeBlock, Name: "disk", Mode: 0o660, Devmajor: 8},
					&tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o644, Uid: 33, Gid: 33},
					linkH(tar.TypeLink, "null-again", "null"),
					regH("climaintenance.html", "the archive's\n", 0o644, 33),
					dirH("lang/", 0o2750),
				)
				res, err := restoreFrom(t, p, cfg, clean, bytes.NewReader(archive))
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				for _, want := range []string{"6 files", "4 special files (devices, FIFOs) not restored",
					"2 files restored without setuid/setgid bits", "1 root-owned entries given the dataroot's owner"} {
					if !strings.Contains(res.Summary, want) {
						t.Errorf("summary %q lacks %q", res.Summary, want)
					}
				}
				for _, want := range []string{`not restored: character device (set keep_special=true to restore it): entry=null`,
					`not restored: block device (set keep_special=true to restore it): entry=disk`,
					`not restored: FIFO (set keep_special=true to restore it): entry=pipe`,
					`not restored: hard link to an entry that was not restored: entry=null-again`,
					`restored without its setuid/setgid bits: entry=suid mode=4755`,
					`owned by root in the archive: restored with the dataroot's owner: entry=rootfile owner=33:33`} {
					if !strings.Contains(logs.String(), want) {
						t.Errorf("log lacks %q", want)
					}
				}
				out, stderr, code := testenv.Exec(t, app, nil, "sh", "-c",
					`cd /data && find . -mindepth 1 | sort | while read -r f; do stat -c '%n %F %a %u:%g %h' "$f"; done; cat s climaintenance.html; readlink escape`)
				if code != 0 {
					t.Fatalf("list: %s", stderr)
				}
				want := strings.Join([]string{
					"./climaintenance.html regular file 644 33:33 1",
					"./escape symbolic link 777 33:33 2",
					"./filedir directory 755 0:0 -",
					"./filedir/ab directory 755 0:0 -",
					"./filedir/ab/new regular file 640 33:33 1",
					"./hard symbolic link 777 33:33 2",
					"./lang directory 2750 33:33 -",
					"./rootfile regular file 644 33:33 1",
					"./s regular file 666 33:33 1",
					"./sgid regular file 755 33:33 1",
					"./suid regular file 755 33:33 1",
					"replaced", "maintenance", outside, "",
				}, "\n")
				// Directory link counts depend on the filesystem: drop them.
				var lines []string
				for _, l := range strings.Split(out, "\n") {
					if strings.Contains(l, " directory ") {
						l = l[:strings.LastIndex(l, " ")] + " -"
					}
					lines = append(lines, l)
				}
				if got := strings.Join(lines, "\n"); got != want {
					t.Errorf("the volume holds:\n%s\nwant:\n%s", got, want)
				}
				if out, _, _ := testenv.Exec(t, app, nil, "stat", "-c", "%a %u:%g", "/data"); strings.TrimSpace(out) != "750 33:33" {
					t.Errorf("the volume's root is %q, want the archive's 750 33:33", out)
				}
				noStaging(t)
				outsideSame(t)
				if left := helpersLeft(t, vol); len(left) > 0 {
					t.Errorf("helper containers left behind: %v", left)
				}
			})

			t.Run("keep_special", func(t *testing.T) {
				archive := rawTar(t, dirH("./", 0o750), regH("suid", "x", 0o4755, 33), regH("rootfile", "r", 0o644, 0),
					&tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o640, Uid: 33, Gid: 33},
					&tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3})
				res, err := restoreFrom(t, p, cfg, map[string]string{"clean": "true", "keep_special": "true"}, bytes.NewReader(archive))
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if strings.Contains(res.Summary, "not restored") || strings.Contains(res.Summary, "without") {
					t.Errorf("summary %q: keep_special restores everything", res.Summary)
				}
				out, _, _ := testenv.Exec(t, app, nil, "sh", "-c", `cd /data && stat -c '%n %F %a %u:%g %t,%T' null pipe rootfile suid`)
				want := "null character special file 666 0:0 1,3\npipe fifo 640 33:33 0,0\nrootfile regular file 644 0:0 0,0\nsuid regular file 4755 33:33 0,0\n"
				if out != want {
					t.Errorf("with keep_special the volume holds:\n%s\nwant:\n%s", out, want)
				}
				outsideSame(t)
			})
		})
	}
}

// TestLeftoverStagingRemoved: a staging directory left by a killed restore
// is removed by the next one, and says so.
func TestLeftoverStagingRemoved(t *testing.T) {
	var logs logBuf
	p := &plugin{log: hclog.New(&hclog.LoggerOptions{Output: io.MultiWriter(&logs, testLog{t})})}
	dir := filepath.Join(t.TempDir(), "target")
	left := filepath.Join(dir, stagingPrefix+"0123456789abcdef", stageNew)
	must(t, os.MkdirAll(left, 0o700))
	must(t, os.WriteFile(filepath.Join(left, "half"), []byte("x"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "old"), []byte("x"), 0o600))
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(dir)})
	archive := rawTar(t, dirH("./", 0o750), regH("new", "n", 0o640, 33))
	if _, err := restoreFrom(t, p, cfg, map[string]string{"clean": "true"}, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if names, _ := readNames(dir); len(names) != 1 || names[0] != "new" {
		t.Errorf("target holds %v, want [new]", names)
	}
	if !strings.Contains(logs.String(), "removed a staging directory left by an interrupted restore") {
		t.Error("the removal was not logged")
	}
}

// snapshotT is snapshot for a *testing.T that also lists owners and times.
func snapshotT(t *testing.T, base, skip string) string {
	t.Helper()
	var b strings.Builder
	must(t, filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		b.WriteString(statLine(t, p) + "\n")
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	}))
	return b.String()
}

func statLine(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		return p + " " + err.Error()
	}
	return p + " " + fi.Mode().String() + " " + fi.ModTime().String() + " " + ownerOf(fi)
}

func ownerOf(fi os.FileInfo) string {
	st := fi.Sys().(*syscall.Stat_t)
	return strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid))
}

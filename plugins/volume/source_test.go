package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

func TestBackupErrors(t *testing.T) {
	vol := testenv.UniqueName(t, "mbktest-err")
	testenv.CreateVolume(t, vol)
	running := testenv.StartApp(t, vol, moodleDataroot)
	stopped := testenv.StartApp(t, vol, moodleDataroot)
	zero := 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.Docker(t).ContainerStop(ctx, stopped, container.StopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	missing := testenv.UniqueName(t, "mbktest-missing")
	p := newTestPlugin(t)
	tests := []struct {
		name    string
		attrs   map[string]cty.Value
		wantErr string
	}{
		{"missing volume", map[string]cty.Value{"volume": cty.StringVal(missing)},
			`volume "` + missing + `" does not exist`},
		{"missing container", map[string]cty.Value{"container": cty.StringVal(missing), "path": cty.StringVal("/data")},
			`container "` + missing + `" does not exist`},
		{"stopped container", map[string]cty.Value{"container": cty.StringVal(stopped), "path": cty.StringVal(moodleDataroot)},
			`container "` + stopped + `" is exited`},
		{"missing container path", map[string]cty.Value{"container": cty.StringVal(running), "path": cty.StringVal("/nonexistent/moodledata")},
			`path "/nonexistent/moodledata" does not exist in container "` + running + `"`},
		{"container path is a file", map[string]cty.Value{"container": cty.StringVal(running), "path": cty.StringVal("/etc/hostname")},
			`is not a directory`},
		{"missing host path", map[string]cty.Value{"path": cty.StringVal("/nonexistent/moodledata")},
			`host directory "/nonexistent/moodledata" does not exist`},
		{"host path is a file", map[string]cty.Value{"path": cty.StringVal("/etc/hostname")},
			`host path "/etc/hostname" is not a directory`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, p, tc.attrs)
			file, _, err := backupFile(t, p, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Backup error = %v, want %q", err, tc.wantErr)
			}
			t.Logf("failed as expected: %v", err)
			if fi, _ := os.Stat(file); fi.Size() != 0 {
				t.Errorf("a failed backup wrote %d bytes", fi.Size())
			}
			if ds := p.Preflight(context.Background(), cfg); !ds.HasErrors() || !strings.Contains(ds[0].Summary, tc.wantErr) {
				t.Errorf("Preflight = %+v, want %q", ds, tc.wantErr)
			}
		})
	}
}

// TestContainerPath archives a directory of a running container and
// restores it into another, empty, directory of the same container.
func TestContainerPath(t *testing.T) {
	vol := testenv.UniqueName(t, "mbktest-ctr")
	testenv.CreateVolume(t, vol)
	app := testenv.StartApp(t, vol, moodleDataroot)
	script := `set -e; cd "$1"; mkdir -p filedir/ab/cd cache; echo data >filedir/ab/cd/abcd; echo c >cache/x
ln -s filedir link; chown -R 33:33 .; chmod 0750 .; mkdir -p /srv/restored`
	if _, stderr, code := testenv.Exec(t, app, nil, "sh", "-c", script, "sh", moodleDataroot); code != 0 {
		t.Fatalf("prepare: %s", stderr)
	}
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{
		"container": cty.StringVal(app), "path": cty.StringVal(moodleDataroot), "artifact": cty.StringVal("site1"),
	})
	arts, err := p.Plan(context.Background(), cfg)
	if err != nil || len(arts) != 1 || arts[0].Name != "site1" || arts[0].Format != "tar" || arts[0].ID != artifactID {
		t.Fatalf("Plan = %+v, %v", arts, err)
	}
	file, res := mustBackup(t, p, cfg)
	if res.Details["files"].(int64) != 1 || res.Details["symlinks"].(int64) != 1 {
		t.Errorf("details = %v", res.Details)
	}
	restoreCfg := testConfig(t, p, map[string]cty.Value{
		"container": cty.StringVal(app), "path": cty.StringVal("/srv/restored"),
	})
	if _, err := restoreFile(t, p, restoreCfg, nil, file); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	want := without(fingerprint(t, app, moodleDataroot), "cache")
	if d := diff(want, fingerprint(t, app, "/srv/restored")); len(d) > 0 {
		t.Errorf("restored directory differs:\n%s", strings.Join(d, "\n"))
	}
	_, err = restoreFile(t, p, restoreCfg, map[string]string{"clean": "true"}, file)
	if err == nil || !strings.Contains(err.Error(), "cannot empty a container path") {
		t.Errorf("clean on a container path: %v", err)
	}
}

// TestRestoreVolumeClean covers a restore over a non-empty volume.
func TestRestoreVolumeClean(t *testing.T) {
	p := newTestPlugin(t)
	archive := makeTar(t,
		tarEntry{typ: tar.TypeDir, name: "./", mode: 0o750},
		tarEntry{typ: tar.TypeReg, name: "muc/config.php", body: "<?php\n", mode: 0o640},
	)
	// The archive API path (a remote Engine): clean restores beside the old
	// files and swaps them, through a started helper, even while a
	// container uses the volume.
	restore := func(vol string, opts map[string]string) error {
		cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol), "read": cty.StringVal("engine")})
		_, err := restoreFrom(t, p, cfg, opts, bytes.NewReader(archive))
		return err
	}

	labeled := testenv.UniqueName(t, "mbktest-clean")
	testenv.CreateVolume(t, labeled) // carries testenv's label
	if err := restore(labeled, nil); err != nil {
		t.Fatalf("first restore: %v", err)
	}
	if err := restore(labeled, nil); err == nil || !strings.Contains(err.Error(), `not empty (it holds "muc")`) {
		t.Fatalf("restore over a non-empty volume: %v", err)
	}
	app := testenv.StartApp(t, labeled, "/data")
	testenv.Exec(t, app, nil, "sh", "-c", "echo stale > /data/stale.txt")
	if err := restore(labeled, map[string]string{"clean": "true"}); err != nil {
		t.Fatalf("clean restore of a volume in use: %v", err)
	}
	if out, _, _ := testenv.Exec(t, app, nil, "ls", "-A", "/data"); out != "muc\n" {
		t.Errorf("after a clean restore the volume holds %q", out)
	}
	removeContainer(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := testenv.Docker(t).VolumeInspect(ctx, labeled)
	if err != nil || v.Labels[testenv.Label] == "" {
		t.Errorf("the volume lost its labels: %v %v", v.Labels, err)
	}
	check := testenv.StartApp(t, labeled, "/data")
	if out, _, _ := testenv.Exec(t, check, nil, "cat", "/data/muc/config.php"); out != "<?php\n" {
		t.Errorf("restored content %q", out)
	}

	t.Run("direct: clean empties the directory, even in use", func(t *testing.T) {
		vol := testenv.UniqueName(t, "mbktest-direct")
		testenv.CreateVolume(t, vol)
		app := testenv.StartApp(t, vol, "/data")
		testenv.Exec(t, app, nil, "sh", "-c", "echo stale > /data/stale.txt")
		direct := func(opts map[string]string) error {
			cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol)})
			_, err := restoreFrom(t, p, cfg, opts, bytes.NewReader(archive))
			return err
		}
		if err := direct(nil); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("restore over a non-empty volume: %v", err)
		}
		if err := direct(map[string]string{"clean": "true"}); err != nil {
			t.Fatalf("clean restore: %v", err)
		}
		out, _, _ := testenv.Exec(t, app, nil, "sh", "-c", "cat /data/muc/config.php; ls /data")
		if out != "<?php\nmuc\n" {
			t.Errorf("after a clean restore the volume holds %q", out)
		}
	})

	t.Run("truncated archive", func(t *testing.T) {
		vol := testenv.UniqueName(t, "mbktest-trunc")
		removeVolumeAtCleanup(t, vol)
		cut := archive[:len(archive)-1024] // drop the end-of-archive marker
		cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol)})
		_, err := restoreFrom(t, p, cfg, nil, bytes.NewReader(cut))
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("restore of a truncated archive: %v", err)
		}
	})
}

// TestScratchImage checks the fallback for hosts without any image: an
// imported empty image serves as a helper container's image.
func TestScratchImage(t *testing.T) {
	e, err := newEngine(hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ref := testenv.UniqueName(t, "mbktest-scratch") + ":latest"
	vol := testenv.UniqueName(t, "mbktest-scratch")
	testenv.CreateVolume(t, vol)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.importScratch(ctx, ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := e.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true}); err != nil {
			t.Logf("cleanup: remove image %s: %v", ref, err)
		}
	})
	name := testenv.UniqueName(t, "mbktest-scratch")
	_, err = e.ContainerCreate(ctx, &container.Config{Image: ref, Cmd: []string{"/never"}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: helperMount}}}, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	defer removeContainer(t, name)
	if found, err := e.firstEntry(ctx, name, "volume", helperMount); err != nil || found != "" {
		t.Errorf("read the volume through a scratch container: %q, %v", found, err)
	}
}

func TestExclude(t *testing.T) {
	tests := []struct {
		patterns []string
		path     string
		want     string
	}{
		{defaultExclude, "cache", "cache"},
		{defaultExclude, "cache/cachestore_file/x", "cache"},
		{defaultExclude, "filedir/cache", ""},
		{defaultExclude, "localcache/mustache", "localcache"},
		{defaultExclude, "climaintenance.html", "climaintenance.html"},
		{defaultExclude, "trashdir/ab/cd/x", ""},
		{defaultExclude, "muc/config.php", ""},
		{defaultExclude, ".", ""},
		{[]string{"*.log"}, "error.log", "error.log"},
		{[]string{"*.log"}, "logs/error.log", ""},
		{[]string{"lang/*/cache"}, "lang/en/cache/x", "lang/en/cache"},
		{[]string{"./temp/"}, "temp/x", "temp"},
		{[]string{"/temp/**"}, "temp/x/y", "temp"},
		{[]string{"filedir/??"}, "filedir/ab/cd", "filedir/ab"},
		{[]string{"filedir/??"}, "filedir/abc/cd", ""},
		{[]string{"lang/*/cache"}, "lang/en", ""},
		{[]string{"lang/*/cache"}, "lang/en/cache", "lang/en/cache"},
		{[]string{"lang/*/cache"}, "lang/en/cachex/y", ""},
		{[]string{"temp", "lang/*/cache"}, "lang/es/cache/z", "lang/es/cache"},
		{nil, "cache", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.patterns, ",")+"/"+tc.path, func(t *testing.T) {
			ex, err := newExcluder(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := ex.match(tc.path); got != tc.want {
				t.Errorf("match(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

func TestValidateConfig(t *testing.T) {
	p := newTestPlugin(t)
	tests := []struct {
		name    string
		attrs   map[string]cty.Value
		wantErr string
	}{
		{"volume", map[string]cty.Value{"volume": cty.StringVal("v")}, ""},
		{"container path", map[string]cty.Value{"container": cty.StringVal("app"), "path": cty.StringVal("/d")}, ""},
		{"host path", map[string]cty.Value{"path": cty.StringVal("/srv/moodledata")}, ""},
		{"nothing", map[string]cty.Value{}, "no source"},
		{"volume and path", map[string]cty.Value{"volume": cty.StringVal("v"), "path": cty.StringVal("/d")}, "not several"},
		{"container alone", map[string]cty.Value{"container": cty.StringVal("app")}, "needs path"},
		{"relative path", map[string]cty.Value{"path": cty.StringVal("data")}, "must be absolute"},
		{"root path", map[string]cty.Value{"path": cty.StringVal("/")}, "not / itself"},
		{"bad glob", map[string]cty.Value{"volume": cty.StringVal("v"), "exclude": strs("[a")}, "syntax error"},
		{"dot-dot pattern", map[string]cty.Value{"volume": cty.StringVal("v"), "exclude": strs("../x")}, `".." components`},
		{"everything", map[string]cty.Value{"volume": cty.StringVal("v"), "exclude": strs("/")}, "whole source"},
		{"empty exclude", map[string]cty.Value{"volume": cty.StringVal("v"), "exclude": strs()}, ""},
		{"bad name", map[string]cty.Value{"volume": cty.StringVal("v"), "artifact": cty.StringVal("a/b")}, "plain file name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := p.ValidateConfig(context.Background(), testConfig(t, p, tc.attrs))
			if tc.wantErr == "" {
				if ds.HasErrors() {
					t.Fatalf("unexpected diagnostics %+v", ds)
				}
				return
			}
			if !ds.HasErrors() || !strings.Contains(ds[0].Summary, tc.wantErr) {
				t.Fatalf("diagnostics %+v, want %q", ds, tc.wantErr)
			}
		})
	}
}

// TestTruncated checks the end-of-archive proof on a stream cut exactly
// between two entries, which Go's tar reader alone takes for a clean end.
func TestTruncated(t *testing.T) {
	full := makeTar(t,
		tarEntry{typ: tar.TypeDir, name: "./"},
		tarEntry{typ: tar.TypeReg, name: "a", body: strings.Repeat("x", 700)},
		tarEntry{typ: tar.TypeReg, name: "b", body: "y"},
	)
	cut := full[:512+512+1024] // the root's header, a's header and padded data
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{{"complete", full, false}, {"cut between entries", cut, true}, {"cut inside data", full[:1500], true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "target")
			p := newTestPlugin(t)
			cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(dir)})
			_, err := restoreFrom(t, p, cfg, nil, bytes.NewReader(tc.data))
			if tc.wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "truncated")) {
				t.Fatalf("Restore error = %v, want truncated: %v", err, tc.wantErr)
			}
		})
	}
}

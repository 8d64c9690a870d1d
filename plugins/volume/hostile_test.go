package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// hostileCase is an archive that tries to write outside the restore target.
// Every archive holds "before" (ahead of the bad entry) and "after".
type hostileCase struct {
	name    string
	entries func(outside, victim string) []tarEntry
	wantErr string
}

func hostileCases() []hostileCase {
	reg := func(name string) tarEntry { return tarEntry{typ: tar.TypeReg, name: name, body: "pwned"} }
	wrap := func(bad ...tarEntry) []tarEntry {
		out := []tarEntry{{typ: tar.TypeDir, name: "./", mode: 0o755}, reg("before")}
		return append(append(out, bad...), reg("after"))
	}
	return []hostileCase{
		{"dot-dot", func(string, string) []tarEntry { return wrap(reg("../outside/escape")) },
			`entry "../outside/escape" climbs out of the target`},
		{"dot-dot inside a name", func(string, string) []tarEntry { return wrap(reg("a/../../outside/escape")) },
			`entry "a/../../outside/escape" climbs out`},
		{"absolute path", func(outside, _ string) []tarEntry { return wrap(reg(outside + "/escape")) },
			`is an absolute path`},
		{"symlink then a file through it", func(outside, _ string) []tarEntry {
			return wrap(tarEntry{typ: tar.TypeSymlink, name: "l", link: outside}, reg("l/escape"))
		}, `entry "l/escape" passes through symlink "l"`},
		{"relative symlink then a file through it", func(string, string) []tarEntry {
			return wrap(tarEntry{typ: tar.TypeSymlink, name: "d/l", link: "../../outside"}, reg("d/l/escape"))
		}, `entry "d/l/escape" passes through symlink "d/l"`},
		{"hard link out", func(string, string) []tarEntry {
			return wrap(tarEntry{typ: tar.TypeLink, name: "h", link: "../victim/secret"})
		}, `hard link "h" points to "../victim/secret", which climbs out`},
		{"hard link through a symlink", func(_, victim string) []tarEntry {
			return wrap(tarEntry{typ: tar.TypeSymlink, name: "v", link: victim},
				tarEntry{typ: tar.TypeLink, name: "h", link: "v/secret"})
		}, `through symlink "v"`},
	}
}

func TestHostileArchivesHost(t *testing.T) {
	p := newTestPlugin(t)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			target, outside := filepath.Join(base, "target"), filepath.Join(base, "outside")
			victim := filepath.Join(base, "victim")
			must(t, os.Mkdir(outside, 0o755))
			must(t, os.Mkdir(victim, 0o755))
			must(t, os.WriteFile(filepath.Join(victim, "secret"), []byte("secret"), 0o600))
			cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(target)})

			_, err := restoreFrom(t, p, cfg, map[string]string{"target_path": target},
				bytes.NewReader(makeTar(t, tc.entries(outside, victim)...)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("Restore error = %v, want %q", err, tc.wantErr)
			}
			t.Logf("refused as expected: %v", err)
			if names, _ := readNames(outside); len(names) > 0 {
				t.Errorf("written outside the target: %v", names)
			}
			if fi, err := os.Stat(filepath.Join(victim, "secret")); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
				t.Errorf("victim file was linked to: %v", err)
			}
			if names, _ := readNames(base); len(names) != 3 {
				t.Errorf("base directory holds %v, want target, outside, victim", names)
			}
			if _, err := os.Stat(filepath.Join(target, "before")); err != nil {
				t.Errorf("the entry before the bad one is missing: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(target, "after")); err == nil {
				t.Error("the entry after the bad one was written")
			}
		})
	}
}

func TestHostileArchivesVolume(t *testing.T) {
	p := newTestPlugin(t)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vol := testenv.UniqueName(t, "mbktest-hostile")
			removeVolumeAtCleanup(t, vol)
			cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol)})
			_, err := restoreFrom(t, p, cfg, nil, bytes.NewReader(makeTar(t, tc.entries("/outside", "/victim")...)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("Restore error = %v, want %q", err, tc.wantErr)
			}
			if left := helpersLeft(t, vol); len(left) > 0 {
				t.Errorf("helper containers left behind: %v", left)
			}
			app := testenv.StartApp(t, vol, "/data")
			out, _, _ := testenv.Exec(t, app, nil, "find", "/data", "-mindepth", "1")
			// Whether "before" landed depends on how much of the stream
			// the Engine had received when the pipe broke.
			for _, name := range strings.Fields(out) {
				if !slices.Contains([]string{"/data/before", "/data/l", "/data/d", "/data/d/l", "/data/v"}, name) {
					t.Errorf("volume holds %q, which comes at or after the bad entry", name)
				}
			}
		})
	}
}

// TestEngineConfinement shows what the Engine's own extraction does with a
// hostile archive: it keeps entries inside the container's root, not inside
// the volume. That is why the plugin checks every entry itself.
func TestEngineConfinement(t *testing.T) {
	vol := testenv.UniqueName(t, "mbktest-confine")
	testenv.CreateVolume(t, vol)
	marker := testenv.UniqueName(t, "mbk-escape")
	e, err := newEngine(hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, remove, err := e.createHelper(ctx, vol, false)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	archive := makeTar(t, tarEntry{typ: tar.TypeReg, name: "data/../../../../" + marker, body: "x"})
	if err := e.CopyToContainer(ctx, h.id, "/", bytes.NewReader(archive), container.CopyToContainerOptions{}); err != nil {
		t.Logf("the Engine refused the archive: %v", err)
	}
	if _, err := os.Lstat("/" + marker); err == nil {
		os.Remove("/" + marker)
		t.Fatalf("the Engine wrote /%s on the host", marker)
	}
	if _, err := e.ContainerStatPath(ctx, h.id, "/"+marker); err != nil {
		t.Errorf("want the escaped entry confined to the helper's root, got: %v", err)
	}
	if found, err := e.firstEntry(ctx, h.id, "volume", helperMount); err != nil || found != "" {
		t.Errorf("volume holds %q (%v), want nothing", found, err)
	}
}

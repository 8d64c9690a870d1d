package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

// needRoot: the trust rules apply when mbk runs as root, and only root can
// give a file to another owner.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the plugin trust tests check what mbk does as root, and chown files: run them as root (CI does)")
	}
}

// binary writes an executable plugin "binary" at dir/mbk-plugin-name: a
// script that leaves ran beside itself when started, so that a test sees
// whether mbk ran it. The trust and pin checks come before any start.
func binary(t *testing.T, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, pluginhost.Prefix+name)
	script := "#!/bin/sh\ntouch \"$0.ran\"\nexit 1\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestTrustedPlaces: as root, a plugin binary is used only when it and
// every directory above it are owned by root and writable by no one else;
// otherwise Find refuses it, naming the binary, what is at fault and the
// command that fixes it, and does not pass over it to the next directory.
func TestTrustedPlaces(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T, base string) (pluginDir, atFault string)
		reason string
		fix    string
	}{
		{"a private root-owned directory", func(t *testing.T, base string) (string, string) {
			binary(t, filepath.Join(base, "plugins"), "x")
			return filepath.Join(base, "plugins"), ""
		}, "", ""},
		{"a group-writable plugin directory", func(t *testing.T, base string) (string, string) {
			dir := filepath.Join(base, "plugins")
			binary(t, dir, "x")
			chmod(t, dir, 0o775)
			return dir, dir
		}, "is writable by its group, gid 0 (mode 0775)", "chmod go-w "},
		{"a world-writable directory above it", func(t *testing.T, base string) (string, string) {
			dir := filepath.Join(base, "shared", "plugins")
			binary(t, dir, "x")
			chmod(t, filepath.Join(base, "shared"), 0o777)
			return dir, filepath.Join(base, "shared")
		}, "is writable by every user (mode 0777)", "chmod go-w "},
		{"a sticky root-owned directory above it, as /tmp", func(t *testing.T, base string) (string, string) {
			dir := filepath.Join(base, "tmp", "plugins")
			binary(t, dir, "x")
			chmod(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky)
			return dir, ""
		}, "", ""},
		{"a binary owned by another uid", func(t *testing.T, base string) (string, string) {
			dir := filepath.Join(base, "plugins")
			p := binary(t, dir, "x")
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return dir, p
		}, "is owned by uid 65534, not root", "chown root "},
		{"a group-writable binary", func(t *testing.T, base string) (string, string) {
			dir := filepath.Join(base, "plugins")
			chmod(t, binary(t, dir, "x"), 0o775)
			return dir, filepath.Join(dir, pluginhost.Prefix+"x")
		}, "is writable by its group", "chmod go-w "},
		{"a directory above it owned by another uid", func(t *testing.T, base string) (string, string) {
			dir := filepath.Join(base, "home", "plugins")
			binary(t, dir, "x")
			if err := os.Chown(filepath.Join(base, "home"), 1000, 1000); err != nil {
				t.Fatal(err)
			}
			return dir, filepath.Join(base, "home")
		}, "is owned by uid 1000, not root", "chown root "},
		{"a link in a trusted directory to a binary in an untrusted one", func(t *testing.T, base string) (string, string) {
			open := filepath.Join(base, "open")
			target := binary(t, open, "x")
			chmod(t, open, 0o777)
			dir := filepath.Join(base, "plugins")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, pluginhost.Prefix+"x")); err != nil {
				t.Fatal(err)
			}
			return dir, open
		}, "is writable by every user", "chmod go-w "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir, atFault := tc.setup(t, base)
			// A trusted binary of the same name later on the search path is
			// not a way round a refusal.
			t.Setenv("MBK_PLUGIN_DIR", filepath.Dir(binary(t, filepath.Join(t.TempDir(), "later"), "x")))
			h := pluginhost.New(pluginhost.Options{PluginDir: dir, Logger: hclog.NewNullLogger()})
			defer h.Close()
			f, err := h.Find("x")
			if tc.reason == "" {
				if err != nil || f.Path != filepath.Join(dir, pluginhost.Prefix+"x") {
					t.Fatalf("Find = %+v, %v; want the binary in %s", f, err, dir)
				}
				return
			}
			var ue *pluginhost.UntrustedError
			if !errors.As(err, &ue) || ue.Path != atFault {
				t.Fatalf("want the binary refused for %s, got %+v, %v", atFault, f, err)
			}
			msg := err.Error()
			for _, want := range []string{filepath.Join(dir, pluginhost.Prefix+"x"), atFault + " " + tc.reason, tc.fix + atFault, "owned by root and writable by no one else"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the error lacks %q: %s", want, msg)
				}
			}
			if _, _, err := h.Get(context.Background(), "x"); !errors.As(err, &ue) {
				t.Errorf("Get: want the refusal, got %v", err)
			}
		})
	}
}

// TestPinnedBinaries: a pin is checked by go-plugin before the binary
// starts, so a binary with another sha256 is refused without running, the
// error naming it, its sha256 and the pin; a binary named like a built-in
// is used only when pinned (a warning names an ignored one); a pin with no
// binary is an error, not a fallback to the built-in.
func TestPinnedBinaries(t *testing.T) {
	dir := t.TempDir()
	p := binary(t, dir, "fake")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	wrong := sha256.Sum256([]byte("another binary"))
	builtins := map[string]func(hclog.Logger) sdk.Plugin{"fake": func(hclog.Logger) sdk.Plugin { return &source{} }}
	newHost := func(t *testing.T, pins map[string][]byte, log hclog.Logger) *pluginhost.Host {
		t.Setenv("MBK_PLUGIN_DIR", "")
		h := pluginhost.New(pluginhost.Options{PluginDir: dir, Builtins: builtins, Pins: pins, Logger: log})
		t.Cleanup(h.Close)
		return h
	}

	t.Run("a wrong hash is refused before the binary runs", func(t *testing.T) {
		h := newHost(t, map[string][]byte{"fake": wrong[:]}, hclog.NewNullLogger())
		f, err := h.Find("fake")
		if err != nil || f.Builtin || !f.Pinned || f.Path != p {
			t.Fatalf("Find = %+v, %v; want the pinned binary", f, err)
		}
		_, _, err = h.Get(context.Background(), "fake")
		var pe *pluginhost.PinError
		if !errors.As(err, &pe) {
			t.Fatalf("want a PinError, got %v", err)
		}
		for _, want := range []string{p, "its sha256 is " + hex.EncodeToString(sum[:]), "pins " + hex.EncodeToString(wrong[:])} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error lacks %q: %v", want, err)
			}
		}
		if _, err := os.Stat(p + ".ran"); err == nil {
			t.Error("the binary ran")
		}
	})

	t.Run("a same-named binary does not replace a built-in unless pinned", func(t *testing.T) {
		var logged strings.Builder
		h := newHost(t, nil, hclog.New(&hclog.LoggerOptions{Output: &logged}))
		f, err := h.Find("fake")
		if err != nil || !f.Builtin || f.Ignored != p {
			t.Fatalf("Find = %+v, %v; want the built-in, the binary ignored", f, err)
		}
		if _, _, err := h.Get(context.Background(), "fake"); err != nil || h.Path("fake") != "built-in" {
			t.Fatalf("Get: %v, path %q; want the built-in", err, h.Path("fake"))
		}
		if !strings.Contains(logged.String(), "ignoring "+p+": it is named like the built-in plugin \"fake\"") {
			t.Errorf("no warning names the ignored binary: %s", logged.String())
		}
		found := h.Discover()
		if len(found) != 1 || !found[0].Builtin || found[0].Ignored != p || found[0].Err != nil {
			t.Errorf("Discover = %+v", found)
		}
	})

	t.Run("pinned, it replaces the built-in", func(t *testing.T) {
		h := newHost(t, map[string][]byte{"fake": sum[:]}, hclog.NewNullLogger())
		f, err := h.Find("fake")
		if err != nil || f.Builtin || !f.Pinned || f.Path != p {
			t.Fatalf("Find = %+v, %v; want the pinned binary", f, err)
		}
	})

	t.Run("a pin without a binary", func(t *testing.T) {
		h := newHost(t, map[string][]byte{"other": sum[:]}, hclog.NewNullLogger())
		if _, err := h.Find("other"); err == nil || !strings.Contains(err.Error(), `plugin "other" is pinned by its sha256, but no executable mbk-plugin-other is in `+dir) {
			t.Errorf("want the missing pinned binary named, got %v", err)
		}
	})
}

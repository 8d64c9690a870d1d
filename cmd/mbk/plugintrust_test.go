package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// copyPlugin copies the built faulty plugin to dir/mbk-plugin-name, 0755.
func copyPlugin(t *testing.T, dir, name string) string {
	t.Helper()
	src, err := os.Open(filepath.Join(binDir, "extra", "mbk-plugin-faulty"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, "mbk-plugin-"+name)
	dst, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(readFile(t, path)))
	return hex.EncodeToString(sum[:])
}

// TestPluginTrust: mbk (as root, as CI runs it) uses a plugin binary only
// from a place no one but root can change, runs a pinned binary only with
// the pinned sha256, and lets a binary named like a built-in replace it only
// when pinned; `mbk plugins FILE` says which binary is used and whether it
// is pinned.
func TestPluginTrust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the plugin trust rules apply to mbk run as root: run this test as root (CI does)")
	}
	// pipeline writes a pipeline using the faulty dump from pluginDir, with
	// pins and a retain stage, and returns its path.
	pipeline := func(t *testing.T, pluginDir, pins, retain string) string {
		d := t.TempDir()
		return writeFile(t, d, "trust.hcl", fmt.Sprintf(`plugin_dir = %q
%s
pipeline "trust" {
  root = %q

  stage "dump" "faulty" {
    mode = "ok"
    size = 4096
  }
  stage "retain" "policy" {
    %s
  }
}
`, pluginDir, pins, filepath.Join(d, "backups"), retain))
	}
	plugins := func(t *testing.T) (dir, faulty string) {
		dir = filepath.Join(t.TempDir(), "plugins")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		return dir, copyPlugin(t, dir, "faulty")
	}

	t.Run("a plugin from a private root-owned directory runs", func(t *testing.T) {
		dir, _ := plugins(t)
		file := pipeline(t, dir, "", "keep_last = 1")
		if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
			t.Fatalf("run: %s", r)
		}
	})

	t.Run("a group-writable plugin directory is refused", func(t *testing.T) {
		dir, bin := plugins(t)
		if err := os.Chmod(dir, 0o770); err != nil {
			t.Fatal(err)
		}
		file := pipeline(t, dir, "", "keep_last = 1")
		for _, cmd := range []string{"validate", "run"} {
			r := mbk(t, runOpts{}, cmd, file)
			want := fmt.Sprintf(`refusing plugin "faulty" at %s: directory %s is writable by its group, gid 0 (mode 0770)`, bin, dir)
			if r.code == 0 || !strings.Contains(flat(r.stderr), want) || !strings.Contains(flat(r.stderr), "Run: chmod go-w "+dir) {
				t.Errorf("%s: want the binary refused naming %s and the fix\n%s", cmd, dir, r)
			}
		}
		if got := sets(t, filepath.Join(filepath.Dir(file), "backups")); len(got) != 0 {
			t.Errorf("a run with a refused plugin made %v", got)
		}
	})

	t.Run("a plugin binary owned by another uid is refused", func(t *testing.T) {
		dir, bin := plugins(t)
		if err := os.Chown(bin, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		r := mbk(t, runOpts{}, "validate", pipeline(t, dir, "", "keep_last = 1"))
		if r.code != 1 || !strings.Contains(flat(r.stderr), bin+" is owned by uid 65534, not root") || !strings.Contains(flat(r.stderr), "Run: chown root "+bin) {
			t.Errorf("want the binary refused naming it and the fix\n%s", r)
		}
		p := mbk(t, runOpts{}, "plugins", "--plugin-dir", dir)
		if p.code != 1 || !strings.Contains(flat(p.stdout), "faulty: refusing plugin \"faulty\" at "+bin) {
			t.Errorf("mbk plugins should list the refusal\n%s", p)
		}
	})

	t.Run("a pinned binary with another sha256 is refused", func(t *testing.T) {
		dir, bin := plugins(t)
		wrong := strings.Repeat("ab", 32)
		r := mbk(t, runOpts{}, "run", pipeline(t, dir, fmt.Sprintf("plugin \"faulty\" {\n  sha256 = %q\n}\n", wrong), "keep_last = 1"))
		want := fmt.Sprintf(`refusing plugin "faulty" at %s: its sha256 is %s, but the pipeline file pins %s`, bin, sha256File(t, bin), wrong)
		if r.code != 2 || !strings.Contains(flat(r.stderr), want) {
			t.Errorf("want exit 2 and %q\n%s", want, r)
		}
		ok := mbk(t, runOpts{}, "run", pipeline(t, dir, fmt.Sprintf("plugin \"faulty\" {\n  sha256 = %q\n}\n", sha256File(t, bin)), "keep_last = 1"))
		if ok.code != 0 {
			t.Errorf("the right pin: %s", ok)
		}
	})

	t.Run("a binary named like a built-in replaces it only when pinned", func(t *testing.T) {
		dir, _ := plugins(t)
		impostor := copyPlugin(t, dir, "policy")
		// Unpinned: the built-in policy serves the stage (its keep_last),
		// and a warning names the ignored binary.
		file := pipeline(t, dir, "", "keep_last = 1")
		r := mbk(t, runOpts{}, "validate", file)
		if r.code != 0 || !strings.Contains(flat(r.stderr), "ignoring "+impostor+`: it is named like the built-in plugin "policy"`) {
			t.Errorf("want the built-in used and the binary named in a warning\n%s", r)
		}
		p := mbk(t, runOpts{}, "plugins", file)
		if p.code != 0 || !regexp.MustCompile(`(?m)^policy +\S+ +retain +built-in +-$`).MatchString(p.stdout) ||
			!strings.Contains(flat(p.stdout), "policy: "+impostor+" is not used: it is named like the built-in plugin, which it replaces only when pinned") {
			t.Errorf("mbk plugins should show the built-in used and the binary ignored\n%s", p)
		}
		if !regexp.MustCompile(`(?m)^faulty +0\.0\.1 +dump,retain +` + regexp.QuoteMeta(filepath.Join(dir, "mbk-plugin-faulty")) + ` +no$`).MatchString(p.stdout) {
			t.Errorf("mbk plugins should show faulty's binary, not pinned\n%s", p)
		}

		// Pinned: the binary serves the stage, with its own schema.
		pin := fmt.Sprintf("plugin \"policy\" {\n  sha256 = %q\n}\n", sha256File(t, impostor))
		file = pipeline(t, dir, pin, `mode = "delete-all-but-newest"`)
		if r := mbk(t, runOpts{}, "validate", file); r.code != 0 || strings.Contains(r.stderr, "ignoring") {
			t.Errorf("the pinned binary should serve the stage\n%s", r)
		}
		p = mbk(t, runOpts{}, "plugins", file)
		if p.code != 0 || !regexp.MustCompile(`(?m)^policy +0\.0\.1 +dump,retain +`+regexp.QuoteMeta(impostor)+` +yes \(sha256\)$`).MatchString(p.stdout) {
			t.Errorf("mbk plugins should show the pinned binary used\n%s", p)
		}
		if r := mbk(t, runOpts{}, "validate", pipeline(t, dir, pin, "keep_last = 1")); r.code != 1 || !strings.Contains(r.stderr, `"keep_last"`) {
			t.Errorf("the built-in's settings should not reach the pinned binary\n%s", r)
		}
	})
}

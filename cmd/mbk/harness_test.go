package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// The end-to-end tests run the real mbk binary with real plugin binaries,
// built once here, against a real Docker engine, MariaDB and SMTP server.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mbk-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	builds := map[string]string{
		"mbk":               ".",
		"mbk-plugin-mysql":  "../../plugins/mysql",
		"mbk-plugin-volume": "../../plugins/volume",
		"mbk-plugin-smtp":   "../../plugins/smtp",
		"mbk-plugin-s3":     "../../plugins/s3",
		"mbk-plugin-sftp":   "../../plugins/sftp",
	}
	for out, pkg := range builds {
		if err := goBuild(filepath.Join(dir, out), pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// Test-only plugins live apart, found through MBK_PLUGIN_DIR or plugin_dir.
	for out, pkg := range map[string]string{"mbk-plugin-faulty": "./testdata/faulty", "mbk-plugin-webhook": "../../plugins/webhook"} {
		if err := goBuild(filepath.Join(dir, "extra", out), pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.code, r.stdout, r.stderr)
}

type runOpts struct {
	env   []string
	stdin string
}

// baseEnv isolates a test's mbk from the machine: its own HOME (so
// ~/.mbk/plugins is empty), no colours.
func baseEnv(t *testing.T) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MBK_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "NO_COLOR=1")
}

func mbk(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mbk"), args...)
	cmd.Env = append(baseEnv(t), o.env...)
	cmd.Stdin = strings.NewReader(o.stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mbk %v did not finish in time\n%s", args, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mbk %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sets lists visible set directories under root.
func sets(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// removeVolume removes a volume a restore created.
func removeVolume(t *testing.T, name string) {
	testenv.Docker(t).VolumeRemove(context.Background(), name, true)
}

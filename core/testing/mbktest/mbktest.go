// Package mbktest is what the tests that run mbk's binaries share: building
// them once per test binary, an environment of their own for each run, and
// the look at the files a run leaves.
package mbktest

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
)

// Build builds Go main packages into dir: each output path (relative to
// dir) from its package (as go build takes it: relative to the test's
// package directory). It is for TestMain, before any test runs.
func Build(dir string, pkgs map[string]string) error {
	for out, pkg := range pkgs {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// Main is a TestMain's whole body for tests that run built binaries: it
// builds pkgs (see Build) into a fresh temporary directory, sets *dir to
// it, runs the tests, removes it and exits with the tests' code.
//
// The binaries' temporary files (side-channel sockets, go-plugin's sockets,
// spools) go to a directory of the test binary's own, removed with it: a
// test that kills mbk with SIGKILL leaves nothing in /tmp.
func Main(m *testing.M, dir *string, pkgs map[string]string) {
	d, err := os.MkdirTemp("", "mbk-test-bin-")
	if err == nil {
		tmpDir, err = os.MkdirTemp("", "mbk-test-tmp-")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*dir = d
	code := 1
	if err := Build(d, pkgs); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(d)
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

// tmpDir is TMPDIR for the binaries the tests run (see Main).
var tmpDir string

// Env isolates a test's mbk from the machine: the test process's
// environment without MBK_* variables nor locale variables (LANG, LC_*:
// English unless a test sets them), with a HOME of its own (so
// ~/.mbk/plugins is empty) and no colours.
func Env(t testing.TB) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MBK_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "TMPDIR=") {
			continue
		}
		// The machine's locale would choose mbk's language: tests that
		// assert output read English unless they set LANG themselves.
		if strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LANGUAGE=") || strings.HasPrefix(kv, "LC_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "NO_COLOR=1")
	if tmpDir != "" {
		env = append(env, "TMPDIR="+tmpDir)
	}
	return env
}

// Result is how a command ended.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// Run runs bin with args, env and stdin, without a terminal, and fails the
// test when it does not end within five minutes or cannot start.
func Run(t testing.TB, bin string, env []string, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish in time\n%s", filepath.Base(bin), args, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", filepath.Base(bin), args, err)
	}
	return Result{out.String(), errb.String(), code}
}

// WriteFile writes a private file and returns its path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadFile returns a file's content.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Sets lists the visible set directories under root; none when root does
// not exist.
func Sets(t testing.TB, root string) []string {
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

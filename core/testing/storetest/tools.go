package storetest

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// The S3 gateway the tests run. `make tools` installs this same version into
// bin/tools; keep the two in step.
const (
	VersityGWModule  = "github.com/versity/versitygw"
	VersityGWVersion = "v1.8.0"
	versityGWPackage = VersityGWModule + "/cmd/versitygw"
)

// buildTimeout bounds a first build of versitygw (module downloads included).
const buildTimeout = 8 * time.Minute

// ToolsDir is where `make tools` and the tests put the programs the tests
// run, inside the repository (bin/ is ignored by git).
func ToolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/mbk-backup/mbk\n")) {
			return filepath.Join(dir, "bin", "tools"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the mbk repository")
		}
		dir = parent
	}
}

// versitygw finds the gateway: $MBK_VERSITYGW, then bin/tools/versitygw at
// the pinned version, then versitygw on PATH; failing all three it builds
// bin/tools/versitygw with `go install`, once for all test processes.
func versitygw(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MBK_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("storetest: MBK_VERSITYGW: %v", err)
		}
		return p
	}
	hint := fmt.Sprintf("run `make tools` (GOBIN=$PWD/bin/tools go install %s@%s) or set MBK_VERSITYGW", versityGWPackage, VersityGWVersion)
	tools, err := ToolsDir()
	if err != nil {
		t.Fatalf("storetest: find bin/tools: %v; %s", err, hint)
	}
	bin := filepath.Join(tools, "versitygw")
	if pinned(bin) {
		return bin
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatalf("storetest: %v; %s", err, hint)
	}
	// Test binaries of several packages run at once: one builds, the others
	// wait for it and then find the result.
	lock := flock.New(filepath.Join(tools, ".versitygw.lock"))
	if err := lock.Lock(); err != nil {
		t.Fatalf("storetest: lock %s: %v", lock.Path(), err)
	}
	defer lock.Unlock()
	if pinned(bin) {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("storetest: versitygw is not built and the go command is not on PATH; %s", hint)
	}
	t.Logf("storetest: building %s@%s into %s (once)", versityGWPackage, VersityGWVersion, tools)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", versityGWPackage+"@"+VersityGWVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storetest: go install %s@%s: %v\n%s\n%s", versityGWPackage, VersityGWVersion, err, lastLines(out, 30), hint)
	}
	if !pinned(bin) {
		t.Fatalf("storetest: go install did not produce %s at %s; %s", bin, VersityGWVersion, hint)
	}
	return bin
}

// pinned reports whether bin is versitygw at VersityGWVersion.
func pinned(bin string) bool {
	info, err := buildinfo.ReadFile(bin)
	return err == nil && info.Main.Path == VersityGWModule && info.Main.Version == VersityGWVersion
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

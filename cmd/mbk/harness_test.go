package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/mbktest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// The end-to-end tests run the real mbk binary with real plugin binaries,
// built once here, against a real Docker engine, MariaDB and SMTP server.

var binDir string

func TestMain(m *testing.M) {
	// Test-only plugins live apart, in extra/, found through
	// MBK_PLUGIN_DIR or plugin_dir.
	mbktest.Main(m, &binDir, map[string]string{
		"mbk":                      ".",
		"mbk-plugin-mysql":         "../../plugins/mysql",
		"mbk-plugin-volume":        "../../plugins/volume",
		"mbk-plugin-smtp":          "../../plugins/smtp",
		"mbk-plugin-s3":            "../../plugins/s3",
		"mbk-plugin-sftp":          "../../plugins/sftp",
		"mbk-plugin-ping":          "../../plugins/ping",
		"extra/mbk-plugin-faulty":  "./testdata/faulty",
		"extra/mbk-plugin-webhook": "../../plugins/webhook",
		"extra/mbk-plugin-notes":   "./testdata/thirdparty", // a third-party dump plugin: core/sdk only
	})
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return mbktest.Result{Stdout: r.stdout, Stderr: r.stderr, Code: r.code}.String()
}

type runOpts struct {
	env   []string
	stdin string
}

// baseEnv isolates a test's mbk from the machine: its own HOME (so
// ~/.mbk/plugins is empty), no colours.
func baseEnv(t *testing.T) []string { return mbktest.Env(t) }

func mbk(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	r := mbktest.Run(t, filepath.Join(binDir, "mbk"), append(baseEnv(t), o.env...), o.stdin, args...)
	return result{r.Stdout, r.Stderr, r.Code}
}

var (
	writeFile = mbktest.WriteFile
	readFile  = mbktest.ReadFile
	// sets lists visible set directories under root.
	sets = mbktest.Sets
)

// removeVolume removes a volume a restore created.
func removeVolume(t *testing.T, name string) {
	testenv.Docker(t).VolumeRemove(context.Background(), name, true)
}

package menu

import (
	"path/filepath"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/mbktest"
)

// The menu is tested as a person uses it: the real mbk binary, built once
// here with the test-only faulty plugin and the real mysql and volume
// plugins (for restores over a real site), on a pseudo-terminal.

var binDir string

func TestMain(m *testing.M) {
	mbktest.Main(m, &binDir, map[string]string{
		"mbk":                     "..",
		"mbk-plugin-mysql":        "../../../plugins/mysql",
		"mbk-plugin-volume":       "../../../plugins/volume",
		"extra/mbk-plugin-faulty": "../testdata/faulty",
	})
}

var (
	writeFile = mbktest.WriteFile
	readFile  = mbktest.ReadFile
	sets      = mbktest.Sets
)

// baseEnv isolates the test's mbk from the machine.
func baseEnv(t *testing.T) []string { return mbktest.Env(t) }

// mbk runs the binary without a terminal.
func mbk(t *testing.T, args ...string) mbktest.Result {
	t.Helper()
	return mbktest.Run(t, filepath.Join(binDir, "mbk"), baseEnv(t), "", args...)
}

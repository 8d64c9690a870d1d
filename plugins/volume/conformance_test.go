package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk/sdktest"
)

// TestConformance runs the SDK's source kit on a host directory shaped like
// Moodle's dataroot, with a large file so that the archive is long enough
// to be cancelled midway, restored into a new host directory.
func TestConformance(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "moodledata")
	buildHostDataroot(t, src)
	large := make([]byte, sdktest.MinCancelBytes)
	rand.NewChaCha8([32]byte{3}).Read(large)
	must(t, os.WriteFile(filepath.Join(src, "filedir", "aa", "bb", "large"), large, 0o640))
	must(t, os.Lchown(filepath.Join(src, "filedir", "aa", "bb", "large"), 33, 33))
	dst := filepath.Join(base, "restored")

	sdktest.Source(t, newTestPlugin(t), sdktest.SourceCase{
		Settings:       map[string]cty.Value{"path": cty.StringVal(src)},
		RestoreOptions: map[string]cty.Value{"target_path": cty.StringVal(dst), "keep_special": cty.True}, // the dataroot holds a FIFO
		// The cancelled restore goes into the same directory, emptied.
		CancelRestoreOptions: map[string]cty.Value{"target_path": cty.StringVal(dst), "clean": cty.True, "keep_special": cty.True},
		Verify: func(tb testing.TB) {
			want := without(hostFingerprint(t, src), moodleExcluded...)
			if d := diff(want, hostFingerprint(t, dst)); len(d) > 0 {
				tb.Errorf("the restored directory differs:\n%s", strings.Join(d, "\n"))
			}
		},
	})
}

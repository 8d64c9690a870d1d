package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/volume"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestRestoreIntoFullVolume: a clean restore into a volume that holds a
// site's files and has no room for the archive (a 16 MiB tmpfs volume, a
// 24 MiB file), mounted by a running container, straight into its
// directory and through the Engine. The disk fills while the archive is
// written beside the old files: the restore fails saying so, every old file
// is as it was, and no staging directory or helper container is left.
// Through the Engine it is the Engine that stops reading the upload.
func TestRestoreIntoFullVolume(t *testing.T) {
	for _, read := range []string{"auto", "engine"} {
		t.Run(read, func(t *testing.T) {
			p := newTestPlugin(t)
			vol := testenv.UniqueName(t, "mbktest-full")
			cli := testenv.Docker(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Driver: "local",
				DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=16m"},
				Labels:     map[string]string{testenv.Label: "1"}}); err != nil {
				t.Fatal(err)
			}
			removeVolumeAtCleanup(t, vol)
			app := testenv.StartApp(t, vol, "/data")
			if _, stderr, code := testenv.Exec(t, app, nil, "sh", "-c", oldFilesScript, "sh", "/data"); code != 0 {
				t.Fatalf("old files: exit %d: %s", code, stderr)
			}
			before := without(fingerprint(t, app, "/data"), ".")
			archive := rawTar(t, dirH("./", 0o750), regH("filedir/ab/new", "new\n", 0o640, 33),
				regH("filedir/cd/big", strings.Repeat("moodle", 4<<20), 0o640, 33))
			cfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol), "read": cty.StringVal(read)})
			_, err := restoreFrom(t, p, cfg, map[string]string{"clean": "true"}, bytes.NewReader(archive))
			if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "old files are untouched") {
				t.Errorf("Restore into a full volume: %v; want the full disk named and the old files untouched", err)
			}
			if d := diff(before, without(fingerprint(t, app, "/data"), ".")); len(d) > 0 {
				t.Errorf("the old files changed:\n%s", strings.Join(d, "\n"))
			}
			if out, _, _ := testenv.Exec(t, app, nil, "sh", "-c", "ls -a /data"); strings.Contains(out, stagingPrefix) {
				t.Errorf("a staging directory is left: %q", out)
			}
			if left := helpersLeft(t, vol); len(left) > 0 {
				t.Errorf("helper containers left behind: %v", left)
			}
		})
	}
}

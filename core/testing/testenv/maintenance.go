package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// MaintenanceScript stands in for Moodle's admin/cli/maintenance.php, which
// needs a Moodle install: the same command line, the same status lines, and
// the same effect (CLI maintenance mode is climaintenance.html in the
// dataroot, here mounted at /data).
const MaintenanceScript = `flag=/data/climaintenance.html
case "$1" in
  --enable)  echo '<h1>Site under maintenance</h1>' > "$flag"; echo "CLI maintenance mode enabled" ;;
  --disable) rm -f "$flag"; echo "Status: disabled" ;;
  "")        if [ -f "$flag" ]; then echo "Status: CLI maintenance mode enabled."; else echo "Status: disabled"; fi ;;
  *)         echo "unknown option $1" >&2; exit 2 ;;
esac
`

// InstallMaintenance puts script (MaintenanceScript, or a variant of it)
// at /tmp/maintenance.sh in an app container.
func InstallMaintenance(t testing.TB, app, script string) {
	t.Helper()
	if _, stderr, code := Exec(t, app, strings.NewReader(script), "sh", "-c", "cat > /tmp/maintenance.sh"); code != 0 {
		t.Fatalf("install the maintenance script in %s: %s", app, stderr)
	}
}

// MaintenanceBlock is a pipeline's maintenance block that runs the
// installed script in the app container.
func MaintenanceBlock(app string) string {
	return fmt.Sprintf(`maintenance {
    container = %q
    user      = "0"  # numeric: the test image has no /etc/passwd of its own
    php       = "sh"
    script    = "/tmp/maintenance.sh"
  }`, app)
}

// InMaintenance reports whether the site in an app container is in CLI
// maintenance mode.
func InMaintenance(t testing.TB, app string) bool {
	_, _, code := Exec(t, app, nil, "test", "-f", "/data/climaintenance.html")
	return code == 0
}

package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// MoodleDir is where the stand-in Moodle CLI scripts live in an app
// container, and MaintenancePath the stand-in admin/cli/maintenance.php.
const (
	MoodleDir       = "/tmp/moodle"
	MaintenancePath = MoodleDir + "/admin/cli/maintenance.php"
	// MoodleCallsLog is where the stand-in scripts other than
	// maintenance.php record each call: the script's path under
	// MoodleDir, its arguments and "[maintenance on]" or "[maintenance
	// off]", one call per line.
	MoodleCallsLog = "/tmp/moodle-calls.log"
	// DefaultWWWRoot is what the stand-in cfg.php says $CFG->wwwroot is,
	// until SetMoodleConfig changes it.
	DefaultWWWRoot = "https://moodle.example"
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

// moodleScripts stand in for the other CLI scripts mbk runs. They have
// Moodle's command lines and record each call in MoodleCallsLog; cfg.php
// keeps settings as files under /tmp/moodle-cfg (config.php's wwwroot
// in wwwroot, as Moodle reads it). A script whose name is listed in
// /tmp/moodle-fail exits 1, for tests of a step that fails.
var moodleScripts = map[string]string{
	"admin/cli/purge_caches.php":         `echo "Caches purged."`,
	"admin/cli/kill_all_sessions.php":    `echo "Sessions killed."`,
	"admin/tool/replace/cli/replace.php": `echo "Search and replace: $1 $2 done"`,
	"admin/cli/cfg.php": `name=; set=; isset=
for a in "$@"; do
  case "$a" in
    --name=*) name=${a#--name=} ;;
    --set=*)  set=${a#--set=}; isset=1 ;;
  esac
done
mkdir -p /tmp/moodle-cfg
if [ -n "$isset" ]; then printf %s "$set" > "/tmp/moodle-cfg/$name"; exit 0; fi
if [ -f "/tmp/moodle-cfg/$name" ]; then cat "/tmp/moodle-cfg/$name"; echo; exit 0; fi
if [ "$name" = wwwroot ]; then echo "` + DefaultWWWRoot + `"; exit 0; fi
exit 3`,
}

// InstallMaintenance puts script (MaintenanceScript, or a variant of it)
// at MaintenancePath in an app container, and the stand-ins for the other
// CLI scripts beside it.
func InstallMaintenance(t testing.TB, app, script string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "set -e\nmkdir -p %s/admin/cli %s/admin/tool/replace/cli\ncat > %s <<'MBK_EOF'\n%sMBK_EOF\n", MoodleDir, MoodleDir, MaintenancePath, script)
	for rel, body := range moodleScripts {
		fmt.Fprintf(&b, "cat > %s/%s <<'MBK_EOF'\nm=off; [ -f /data/climaintenance.html ] && m=on; a=\"$*\"; [ -n \"$a\" ] && a=\" $a\"\necho \"%s$a [maintenance $m]\" >> %s\nif grep -qx '%s' /tmp/moodle-fail 2>/dev/null; then echo \"%s failed on purpose\" >&2; exit 1; fi\n%s\nMBK_EOF\n",
			MoodleDir, rel, rel, MoodleCallsLog, rel, rel, body)
	}
	if _, stderr, code := Exec(t, app, strings.NewReader(b.String()), "sh", "-s"); code != 0 {
		t.Fatalf("install the stand-in Moodle CLI scripts in %s: %s", app, stderr)
	}
}

// MaintenanceBlock is a pipeline's maintenance block that runs the
// installed scripts in the app container.
func MaintenanceBlock(app string) string {
	return fmt.Sprintf(`maintenance {
    container = %q
    user      = "0"  # numeric: the test image has no /etc/passwd of its own
    php       = "sh"
    script    = %q
  }`, app, MaintenancePath)
}

// InMaintenance reports whether the site in an app container is in CLI
// maintenance mode.
func InMaintenance(t testing.TB, app string) bool {
	_, _, code := Exec(t, app, nil, "test", "-f", "/data/climaintenance.html")
	return code == 0
}

// MoodleCalls returns the calls the stand-in CLI scripts recorded, in order
// ("admin/cli/purge_caches.php", "admin/cli/cfg.php --name=wwwroot"...).
func MoodleCalls(t testing.TB, app string) []string {
	t.Helper()
	out, _, _ := Exec(t, app, nil, "cat", MoodleCallsLog)
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			calls = append(calls, l)
		}
	}
	return calls
}

// SetMoodleConfig sets what the stand-in cfg.php says a setting is.
func SetMoodleConfig(t testing.TB, app, name, value string) {
	t.Helper()
	if _, stderr, code := Exec(t, app, strings.NewReader(value), "sh", "-c", "mkdir -p /tmp/moodle-cfg && cat > /tmp/moodle-cfg/"+name); code != 0 {
		t.Fatalf("set %s in %s: %s", name, app, stderr)
	}
}

// FailMoodleScript makes the stand-in script at rel (under MoodleDir) exit 1.
func FailMoodleScript(t testing.TB, app, rel string) {
	t.Helper()
	if _, stderr, code := Exec(t, app, strings.NewReader(rel+"\n"), "sh", "-c", "cat >> /tmp/moodle-fail"); code != 0 {
		t.Fatalf("fail %s in %s: %s", rel, app, stderr)
	}
}

// Package packaging holds what installs mbk like a real tool: the systemd
// units, the Debian package's builder (mkdeb), the container image's
// Dockerfile; its tests install each for real and run a backup with what was
// installed.
package packaging

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// repoRoot is the repository, where make runs.
var repoRoot, _ = filepath.Abs("..")

// run runs a command in the repository, failing the test with its output
// when it fails.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr runs a command in the repository and returns its output and error.
func runErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// runQuiet runs a cleanup command whose failure does not matter.
func runQuiet(name string, args ...string) { runErr(nil, name, args...) }

// makeInstall runs make install with a private build directory and returns
// the root of what was installed (DESTDIR, or PREFIX's tree when destdir is "").
func makeInstall(t *testing.T, prefix, destdir string) {
	t.Helper()
	args := []string{"install", "BIN=" + filepath.Join(t.TempDir(), "bin"), "PREFIX=" + prefix}
	if destdir != "" {
		args = append(args, "DESTDIR="+destdir)
	}
	run(t, nil, "make", args...)
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMakeInstall: make install with DESTDIR and PREFIX lays out every file,
// and the installed mbk finds the installed plugins with no configuration
// (as root: the trust rules pass, every file is root's and not writable by
// others).
func TestMakeInstall(t *testing.T) {
	dest := t.TempDir()
	makeInstall(t, "/usr", dest)
	u := filepath.Join(dest, "usr")
	for _, f := range []string{
		"bin/mbk",
		"lib/mbk/plugins/mbk-plugin-mysql", "lib/mbk/plugins/mbk-plugin-volume", "lib/mbk/plugins/mbk-plugin-smtp",
		"lib/mbk/plugins/mbk-plugin-s3", "lib/mbk/plugins/mbk-plugin-sftp",
		"share/bash-completion/completions/mbk", "share/zsh/site-functions/_mbk", "share/fish/vendor_completions.d/mbk.fish",
		"share/man/man1/mbk.1.gz", "share/man/man1/mbk-run.1.gz", "share/man/man1/mbk-restore.1.gz", "share/man/man1/mbk-daemon.1.gz",
		"share/doc/mbk/examples/production.hcl", "share/doc/mbk/examples/testing.hcl", "share/doc/mbk/examples/moodle.env.example",
		"lib/systemd/system/mbk-daemon.service", "lib/systemd/system/mbk-run@.service", "lib/systemd/system/mbk-run@.timer",
	} {
		st, err := os.Stat(filepath.Join(u, f))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if st.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s: mode %04o is writable by group or others", f, st.Mode().Perm())
		}
	}
	if man := gunzip(t, filepath.Join(u, "share/man/man1/mbk-run.1.gz")); !strings.Contains(man, `.TH "MBK"`) || !strings.Contains(man, "--pipeline") {
		t.Errorf("mbk-run.1 is not the run command's page:\n%s", man)
	}
	if unit, _ := os.ReadFile(filepath.Join(u, "lib/systemd/system/mbk-daemon.service")); !strings.Contains(string(unit), "ExecStart=/usr/bin/mbk daemon") {
		t.Errorf("mbk-daemon.service does not start /usr/bin/mbk:\n%s", unit)
	}

	// The bash completion loads and completes mbk's commands.
	comp := run(t, nil, "bash", "-c", `source "$1"; complete -p mbk`, "bash", filepath.Join(u, "share/bash-completion/completions/mbk"))
	if !strings.Contains(comp, "complete") || !strings.Contains(comp, "mbk") {
		t.Errorf("bash completion registers nothing for mbk: %s", comp)
	}
	for _, f := range []string{"share/zsh/site-functions/_mbk", "share/fish/vendor_completions.d/mbk.fish"} {
		if b, _ := os.ReadFile(filepath.Join(u, f)); !bytes.Contains(b, []byte("mbk")) {
			t.Errorf("%s is not mbk's completion", f)
		}
	}

	// The installed binary, with no MBK_PLUGIN_DIR and an empty home,
	// finds and starts every installed plugin; its commit is HEAD's.
	home := t.TempDir()
	cmd := exec.Command(filepath.Join(u, "bin/mbk"), "--version")
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mbk --version: %v\n%s", err, out)
	}
	head := strings.TrimSpace(run(t, nil, "git", "rev-parse", "HEAD"))
	if !strings.Contains(string(out), "commit: "+head) {
		t.Errorf("mbk --version does not name commit %s:\n%s", head, out)
	}
	for _, p := range []string{"mysql", "volume", "smtp", "s3", "sftp"} {
		re := regexp.MustCompile(`(?m)^` + p + `\s+\S+\s+` + regexp.QuoteMeta(filepath.Join(u, "lib/mbk/plugins/mbk-plugin-"+p)) + `$`)
		if !re.Match(out) {
			t.Errorf("installed mbk does not use the installed plugin %s:\n%s", p, out)
		}
	}
}

// TestSystemdUnits: systemd-analyze verify accepts the installed units (the
// template through an instance; the man pages their Documentation= names
// exist), and the daemon's stop timeout is longer than its --grace, so
// systemd never kills a backup that is finishing within the grace.
func TestSystemdUnits(t *testing.T) {
	for _, c := range []string{"systemd-analyze", "man"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is missing (scripts/stack.sh deps installs it): %v", c, err)
		}
	}
	prefix := t.TempDir()
	makeInstall(t, prefix, "")
	units := filepath.Join(prefix, "lib/systemd/system")
	out := run(t, []string{"MANPATH=" + filepath.Join(prefix, "share/man"), "SYSTEMD_LOG_LEVEL=notice"}, "systemd-analyze", "verify",
		filepath.Join(units, "mbk-daemon.service"), filepath.Join(units, "mbk-run@.service"), filepath.Join(units, "mbk-run@.timer"))
	if strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify has remarks:\n%s", out)
	}

	unit, err := os.ReadFile(filepath.Join(units, "mbk-daemon.service"))
	if err != nil {
		t.Fatal(err)
	}
	setting := func(re string) string {
		m := regexp.MustCompile(`(?m)` + re).FindStringSubmatch(string(unit))
		if m == nil {
			t.Fatalf("mbk-daemon.service lacks %s", re)
		}
		return m[1]
	}
	if km := setting(`^KillMode=(\S+)$`); km != "mixed" {
		t.Errorf("KillMode=%s, want mixed", km)
	}
	grace, err := time.ParseDuration(setting(`^ExecStart=.* --grace (\S+) `))
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(strings.Replace(setting(`^TimeoutStopSec=(\S+)$`), "min", "m", 1))
	if err != nil {
		t.Fatal(err)
	}
	if stop <= grace {
		t.Errorf("TimeoutStopSec %s is not longer than --grace %s", stop, grace)
	}
}

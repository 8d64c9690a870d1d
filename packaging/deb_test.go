package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// installed reports whether dpkg knows package mbk (installed, or removed
// with its conffiles left).
func installed() (status string, known bool) {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "mbk").Output()
	return strings.TrimSpace(string(out)), err == nil && strings.TrimSpace(string(out)) != ""
}

// TestDebPackage: make deb builds a package that dpkg installs on this
// machine; the installed mbk validates a pipeline and backs up a real site
// with the installed plugins; dpkg -r takes the program and keeps the
// conffile, dpkg -P takes the rest, and the backup set stays.
func TestDebPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("dpkg -i needs root (CI runs as root)")
	}
	if st, known := installed(); known {
		t.Fatalf("package mbk is already known to dpkg (%s): this test installs and purges its own, remove that one first", st)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	run(t, nil, "make", "deb", "BIN="+bin)
	debs, _ := filepath.Glob(filepath.Join(bin, "mbk_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb wrote %v", debs)
	}
	deb := debs[0]
	for field, want := range map[string]string{"Package": "mbk", "Recommends": "cron", "Suggests": "docker.io"} {
		if got := run(t, nil, "dpkg-deb", "-f", deb, field); !strings.Contains(got, want) {
			t.Errorf("control field %s = %q, want %q in it", field, got, want)
		}
	}
	if c := run(t, nil, "sh", "-c", `dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles`, "sh", deb); strings.TrimSpace(c) != "/etc/mbk/moodle.env" {
		t.Errorf("conffiles = %q, want /etc/mbk/moodle.env", c)
	}

	t.Cleanup(func() {
		if _, known := installed(); known {
			exec.Command("dpkg", "-P", "mbk").Run()
		}
	})
	run(t, nil, "dpkg", "-i", deb)
	st, err := os.Stat("/etc/mbk/moodle.env")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("/etc/mbk/moodle.env: mode %04o uid %d, want 0600 root", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid)
	}

	// The installed binaries back up a real site, with no configuration
	// telling mbk where its plugins are.
	s := newSite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := s.pipeline(t, dir, root)
	env := []string{"HOME=" + t.TempDir(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MYSQL_PASSWORD=" + s.password}
	mbk := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("/usr/bin/mbk", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("/usr/bin/mbk %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if v := mbk("--version"); !strings.Contains(v, "/usr/lib/mbk/plugins/mbk-plugin-mysql") {
		t.Errorf("installed mbk does not use /usr/lib/mbk/plugins:\n%s", v)
	}
	mbk("validate", file)
	mbk("run", file)
	checkSet(t, root)

	run(t, nil, "dpkg", "-r", "mbk")
	for _, gone := range []string{"/usr/bin/mbk", "/usr/lib/mbk", "/usr/lib/systemd/system/mbk-daemon.service", "/usr/share/man/man1/mbk.1.gz"} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("after dpkg -r, %s is still there (%v)", gone, err)
		}
	}
	if _, err := os.Stat("/etc/mbk/moodle.env"); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
	run(t, nil, "dpkg", "-P", "mbk")
	if _, err := os.Stat("/etc/mbk"); !os.IsNotExist(err) {
		t.Errorf("after dpkg -P, /etc/mbk is still there (%v)", err)
	}
	if st, known := installed(); known {
		t.Errorf("after dpkg -P, dpkg still knows mbk: %s", st)
	}
	checkSet(t, root) // the sets are the administrator's: never removed
}

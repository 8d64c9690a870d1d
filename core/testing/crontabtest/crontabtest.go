// Package crontabtest gives tests a crontab of their own: a throwaway
// system user whose crontab the real crontab(1) manages through -u, so a
// test never touches the crontab of the user running it.
package crontabtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// User creates a throwaway user for the test and removes it, with its
// crontab, when the test ends. It needs root and the crontab command.
func User(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("crontab"); err != nil {
		t.Fatal("the crontab command is missing: apt-get install cron (or: bash scripts/stack.sh deps)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("crontab tests create a throwaway user with useradd and manage its crontab with crontab -u: run them as root (CI does)")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "mbkt" + hex.EncodeToString(b)
	var out []byte
	var err error
	// useradd locks /etc/passwd; tests of other packages may hold it.
	for i := 0; i < 50; i++ {
		out, err = exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		exec.Command("crontab", "-u", name, "-r").Run()
		for i := 0; i < 50; i++ {
			out, err := exec.Command("userdel", name).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "lock") {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return name
}

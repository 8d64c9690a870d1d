package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

// The fault suite (issue 8): the disk fills up, the mail server fails after
// the set is committed.

// TestFaultSuiteDiskFull: the backup root on an 8 MiB tmpfs. A small set
// fits; a 16 MiB uncompressed one cannot: the run fails saying so, removes
// its partial set, and the older set stays intact and verifies.
func TestFaultSuiteDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs (the tests run as root, as `make test` does): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	root := filepath.Join(mnt, "backups")
	dir := t.TempDir()
	pipeline := func(name string, size int, compression string) string {
		return writeFile(t, dir, name, fmt.Sprintf(`plugin_dir = %q

pipeline "full" {
  root = %q

  stage "dump" "faulty" {
    mode        = "ok"
    size        = %d
    compression = %q
  }
  stage "checksum" "sha256" {}
}
`, filepath.Join(binDir, "extra"), root, size, compression))
	}

	small := pipeline("small.hcl", 1<<20, "gzip")
	if r := mbk(t, runOpts{}, "run", small); r.code != 0 {
		t.Fatalf("the small set should fit: %s", r)
	}
	older := sets(t, root)
	if len(older) != 1 {
		t.Fatalf("want one set, got %v", older)
	}
	before := readFile(t, filepath.Join(root, older[0], repo.SumsFile))

	big := pipeline("big.hcl", 16<<20, "none")
	r := mbk(t, runOpts{}, "run", big)
	if r.code != 1 {
		t.Fatalf("want exit 1: the set cannot fit\n%s", r)
	}
	if !strings.Contains(r.stdout+r.stderr, "no space left on device") {
		t.Errorf("the error does not say the disk is full\n%s", r)
	}
	if got := sets(t, root); len(got) != 1 || got[0] != older[0] {
		t.Errorf("want only the older set %s, got %v", older[0], got)
	}
	noLeftovers(t, root)
	if after := readFile(t, filepath.Join(root, older[0], repo.SumsFile)); after != before {
		t.Errorf("the older set's SHA256SUMS changed")
	}
	if v := mbk(t, runOpts{}, "verify", small, older[0]); v.code != 0 || !strings.Contains(v.stdout, older[0]+": OK") {
		t.Fatalf("the older set must still verify: %s", v)
	}
	// The space is back: the next small run fits again.
	if r := mbk(t, runOpts{}, "run", small); r.code != 0 {
		t.Fatalf("after the failure, a small run should fit again: %s", r)
	}
	if st, err := os.Stat(root); err != nil || st.Mode().Perm() != repo.DirMode {
		t.Errorf("root: %v %v", st, err)
	}
}

// TestFaultSuiteMailFailsAfterCommit: the mail server drops the connection
// in the middle of the message, rejects it, or stalls past the stage's
// timeout. The set is committed all the same, mbk exits 3, and backup.log
// says what failed.
func TestFaultSuiteMailFailsAfterCommit(t *testing.T) {
	tests := []struct {
		name  string
		opts  *smtptest.Options // nil: a server that never answers
		extra string
		want  string
	}{
		{"dropped mid-message", &smtptest.Options{TLS: "none", DropMidMessage: true}, "", `stage failed: stage="notify \"smtp\""`},
		{"message rejected", &smtptest.Options{TLS: "none", FailData: true}, "", "554"},
		// The plugin's own network deadline is the stage's: either may fire
		// first, so the log says "timed out" or "i/o timeout".
		{"server stalls past the timeout", nil, `timeout = "3s"`, "time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var port int
			if tc.opts != nil {
				_, port = smtptest.Start(t, *tc.opts).Addr()
			} else {
				port = stallingServer(t)
			}
			dir := t.TempDir()
			root := filepath.Join(dir, "backups")
			src := notifyPipeline(root, "127.0.0.1", port)
			if tc.extra != "" {
				src = strings.Replace(src, `tls  = "none"`, `tls  = "none"`+"\n    "+tc.extra, 1)
			}
			file := writeFile(t, dir, "mail.hcl", src)
			r := mbk(t, runOpts{}, "run", file)
			if r.code != 3 {
				t.Fatalf("want exit 3: committed, the notification failed\n%s", r)
			}
			got := sets(t, root)
			if len(got) != 1 {
				t.Fatalf("want the set committed, got %v", got)
			}
			log := readFile(t, filepath.Join(root, got[0], repo.LogFile))
			wants := []string{`stage failed: stage="notify \"smtp\""`, tc.want}
			if tc.opts != nil {
				// The server answered something: the error names it.
				wants = append(wants, "127.0.0.1:"+strconv.Itoa(port))
			}
			for _, want := range wants {
				if !strings.Contains(log, want) {
					t.Errorf("backup.log lacks %q:\n%s", want, log)
				}
			}
			if v := mbk(t, runOpts{}, "verify", file, got[0]); v.code != 0 {
				t.Errorf("the committed set does not verify: %s", v)
			}
		})
	}
}

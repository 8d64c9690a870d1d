package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

// The fault suite (issue 8) without Docker: mbk killed between commit and
// notify, a hung plugin with a child of its own, two runs at once.

// notifyPipeline: the faulty dump and an SMTP notify stage, plain text.
func notifyPipeline(root, host string, port int) string {
	return fmt.Sprintf(`plugin_dir = %q

pipeline "notified" {
  root = %q

  stage "dump" "faulty" {
    mode = "ok"
  }
  stage "checksum" "sha256" {}
  stage "notify" "smtp" {
    on   = ["success", "failure", "warning"]
    host = %q
    port = %d
    tls  = "none"
    auth = "none"
    from = "backups@example.com"
    to   = ["admin@example.com"]
  }
}
`, filepath.Join(binDir, "extra"), root, host, port)
}

// TestFaultSuiteKillBetweenCommitAndNotify: the set is committed, then the
// mail server stalls and mbk is killed while it waits. The set is complete
// (the rename made it so) and must be listed so and verify; the lock goes
// with the process, the plugins follow mbk, and the next run succeeds.
func TestFaultSuiteKillBetweenCommitAndNotify(t *testing.T) {
	stall := stallingServer(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "stalled.hcl", notifyPipeline(root, "127.0.0.1", stall))

	b := startMbk(t, nil, "run", file)
	b.waitStderr("set committed")
	b.waitStderr(`stage started: stage="notify \"smtp\""`)
	// Plugins live only while a stage needs them: by now the dump and
	// checksum plugins have stopped, the notifier is the one running.
	plugins := pluginsOf(b.cmd.Process.Pid)
	if len(plugins) != 1 || !strings.Contains(fmt.Sprint(plugins), "mbk-plugin-smtp") {
		t.Fatalf("want only the smtp plugin running, found %v", plugins)
	}
	b.kill()

	got := sets(t, root)
	if len(got) != 1 {
		t.Fatalf("the committed set is not there: %v\n%s", got, b)
	}
	set := got[0]
	l := mbk(t, runOpts{}, "list", file, "--json")
	var listed []struct{ Set, Status string }
	if l.code != 0 || json.Unmarshal([]byte(l.stdout), &listed) != nil || len(listed) != 1 || listed[0].Status != "complete" {
		t.Fatalf("a set committed before the kill must be listed complete: %s", l)
	}
	if v := mbk(t, runOpts{}, "verify", file, set); v.code != 0 || !strings.Contains(v.stdout, set+": OK") {
		t.Fatalf("a set committed before the kill must verify: %s", v)
	}
	waitGone(t, "plugin processes", plugins)
	noLeftovers(t, root)

	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	host, port := mail.Addr()
	next := writeFile(t, dir, "working.hcl", notifyPipeline(root, host, port))
	r := mbk(t, runOpts{}, "run", next)
	if r.code != 0 {
		t.Fatalf("the next run: %s", r)
	}
	if got := sets(t, root); len(got) != 2 {
		t.Fatalf("want two sets, got %v", got)
	}
	mail.WaitMessages(t, 1, time.Minute)
}

// TestFaultSuiteHungPluginWithAChild: a plugin that started a process and
// then ignores its timeout. The stage fails as timed out, and neither the
// plugin nor its child may outlive the run.
func TestFaultSuiteHungPluginWithAChild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	file, root := faultyPipeline(t, "hang-child", fmt.Sprintf("timeout = \"3s\"\n    pidfile = %q", pidFile))
	b := startMbk(t, nil, "run", file)
	var child proc
	b.waitFor("the plugin started its child", func() bool {
		raw, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		p, ok := readProc(pid)
		child = p
		return ok
	})
	t.Cleanup(func() {
		if alive(child) {
			syscall.Kill(child.pid, syscall.SIGKILL)
		}
	})
	plugins := pluginsOf(b.cmd.Process.Pid)
	r := b.wait()
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "timed out") || !strings.Contains(r.stdout+r.stderr, "plugin faulty") {
		t.Fatalf("want exit 1, the stage timed out, naming the plugin\n%s", r)
	}
	if got := sets(t, root); len(got) != 0 {
		t.Fatalf("sets %v", got)
	}
	noLeftovers(t, root)
	waitGone(t, "the hung plugin", plugins)
	waitGone(t, "the hung plugin's child", []proc{child})
}

// TestFaultSuiteTwoRunsAtOnce: a second `mbk run` of a pipeline, by hand or
// while `mbk daemon` runs it, is refused at once, naming the holder; the
// first run is not disturbed.
func TestFaultSuiteTwoRunsAtOnce(t *testing.T) {
	for _, first := range []string{"run", "daemon"} {
		t.Run("mbk run while mbk "+first+" runs it", func(t *testing.T) {
			dir := t.TempDir()
			root, gate := filepath.Join(dir, "backups"), filepath.Join(dir, "gate")
			schedule := ""
			args := []string{"run"}
			if first == "daemon" {
				// The daemon's clock runs 60 times faster: "* * * * *" fires
				// within a second or so.
				schedule = `schedule = "* * * * *"`
				args = []string{"daemon", "--time-scale", "60"}
			}
			file := writeFile(t, dir, "slow.hcl", fmt.Sprintf(`plugin_dir = %q

pipeline "slow" {
  root    = %q
  timeout = "5m"
  %s

  stage "dump" "faulty" {
    mode = "slow"
    size = 65536
    gate = %q
  }
}
`, filepath.Join(binDir, "extra"), root, schedule, gate))
			b := startMbk(t, nil, append(args, file)...)
			b.waitStderr("waiting at the gate")

			r := mbk(t, runOpts{}, "run", file)
			want := fmt.Sprintf("another mbk run (pid %d) holds the lock", b.cmd.Process.Pid)
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, want) {
				t.Fatalf("want exit 1 saying %q\n%s", want, r)
			}
			if err := os.WriteFile(gate, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if first == "run" {
				if r := b.wait(); r.code != 0 {
					t.Fatalf("the first run was disturbed: %s", r)
				}
			} else {
				b.waitFor("a set from the daemon", func() bool { return len(sets(t, root)) > 0 })
				b.cmd.Process.Signal(syscall.SIGTERM)
				b.wait()
			}
			if got := sets(t, root); len(got) == 0 {
				t.Fatalf("no set from the first run\n%s", b)
			}
			noLeftovers(t, root)
		})
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// deadOwner takes a helper's owner for gone only when it is a process of
// this host that has exited (reaped or not); this process, another host's
// process and a malformed label are left alone.
func TestDeadOwner(t *testing.T) {
	host, _ := os.Hostname()
	owner := func(pid int) string { return fmt.Sprintf("%s/%d", host, pid) }

	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	zombie := exec.Command("sleep", "60")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Wait() })
	if err := zombie.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Killed, not waited for: a zombie once the kernel is done with it.
	for range 100 {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zombie.Process.Pid)); len(b) > 0 && deadOwner(owner(zombie.Process.Pid)) {
			break
		}
		exec.Command("sleep", "0.01").Run()
	}
	for _, c := range []struct {
		owner string
		dead  bool
	}{
		{withOwner(nil)[ownerLabel], false},
		{owner(exited.Process.Pid), true},
		{owner(zombie.Process.Pid), true},
		{fmt.Sprintf("another-host/%d", exited.Process.Pid), false},
		{host + "/x", false},
		{host, false},
		{host + "/0", false},
	} {
		if got := deadOwner(c.owner); got != c.dead {
			t.Errorf("deadOwner(%q) = %v, want %v", c.owner, got, c.dead)
		}
	}
}

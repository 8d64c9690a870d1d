package wire

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSideChannelBuffer: both ends of a side channel ask for sendBuf. As
// root (CAP_NET_ADMIN) the kernel grants it whatever net.core.wmem_max
// says; otherwise up to wmem_max. Either way, doubled for its bookkeeping.
func TestSideChannelBuffer(t *testing.T) {
	sc, err := newSideChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	accepted := make(chan int, 1)
	go func() {
		c, err := sc.accept(t.Context())
		if err != nil {
			accepted <- -1
			return
		}
		defer c.Close()
		accepted <- sndbuf(t, c)
	}()
	c, err := Dial(sc.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := sendBuf
	if os.Geteuid() != 0 {
		b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
		if err != nil {
			t.Fatal(err)
		}
		max, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		want = min(want, max)
	}
	if got := sndbuf(t, c); got != 2*want {
		t.Errorf("the plugin's end has a send buffer of %d bytes, want %d", got, 2*want)
	}
	if got := <-accepted; got != 2*want {
		t.Errorf("the core's end has a send buffer of %d bytes, want %d", got, 2*want)
	}
}

func sndbuf(t *testing.T, c *net.UnixConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Error(err)
		return -1
	}
	n := -1
	rc.Control(func(fd uintptr) {
		n, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if err != nil {
		t.Error(err)
	}
	return n
}

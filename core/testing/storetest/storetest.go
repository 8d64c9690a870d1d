// Package storetest runs real storage servers on 127.0.0.1 for the tests of
// the store plugins: an S3 gateway (Versity's versitygw with its posix
// backend) and Debian's OpenSSH server with its internal SFTP server.
//
// Each server gets fresh random credentials and a private temporary
// directory, and is stopped by a t.Cleanup. A server that cannot start fails
// the test with a message saying how to get it: tests are never skipped.
package storetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds the wait for a server to listen; it only ends a
	// hang, it measures nothing.
	startTimeout = 60 * time.Second
	// portTries is how often a start is tried on a new port when another
	// process took the one picked.
	portTries = 3
)

// randomString is n characters of alphabet from crypto/rand.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const (
	lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	mixedAlnum = lowerAlnum + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// freePort asks the kernel for a port that is free right now. Another
// process may take it before the server binds it: callers retry.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// server is a child process that listens on 127.0.0.1:port.
type server struct {
	name string
	cmd  *exec.Cmd
	log  string // the process's stderr and stdout
	port int
	done chan struct{}
	err  error // how the process ended, once done is closed
}

// errPortTaken says that the server could not bind its port.
var errPortTaken = errors.New("port taken")

// start runs cmd (made by mk for a port) and waits until the port accepts
// connections. addrInUse is what the server prints when the port is taken.
func start(t testing.TB, name string, logDir string, addrInUse string, mk func(port int) *exec.Cmd) *server {
	t.Helper()
	for try := 1; ; try++ {
		s, err := startOnce(t, name, logDir, mk)
		if err == nil {
			return s
		}
		if errors.Is(err, errPortTaken) || strings.Contains(err.Error(), addrInUse) {
			if try < portTries {
				continue
			}
		}
		t.Fatalf("storetest: %v", err)
	}
}

func startOnce(t testing.TB, name, logDir string, mk func(port int) *exec.Cmd) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("%s: find a free port: %w", name, err)
	}
	s := &server{name: name, port: port, done: make(chan struct{})}
	s.log = filepath.Join(logDir, name+"-"+strconv.Itoa(port)+".log")
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer logf.Close()
	s.cmd = mk(port)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitListening(); err != nil {
		s.stop()
		return nil, err
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(s.stop)
		if t.Failed() {
			t.Logf("storetest: %s log:\n%s", name, s.tail())
		}
	})
	return s, nil
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *server) waitListening() error {
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err == nil {
			c.Close()
			// The port answers; make sure it is our process that answers.
			select {
			case <-s.done:
				return fmt.Errorf("%s exited (%v) while %s answered: %w\n%s", s.name, s.err, s.addr(), errPortTaken, s.tail())
			default:
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited before listening on %s (%v):\n%s", s.name, s.addr(), s.err, s.tail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %v:\n%s", s.name, s.addr(), startTimeout, s.tail())
		}
	}
}

// stop ends the process we started, by its own handle, and waits for it.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// tail is the end of the server's log, for failure messages.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log)
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The side channel: bulk bytes between core and plugin go through a unix
// socket in a private directory, not through gRPC messages. The core listens,
// the plugin connects. A unix socket moves 2.5-3
// GiB/s at a third of the CPU of gRPC chunks, measured through a real
// go-plugin subprocess on a 2-core machine: gRPC messages of 16-64 KiB moved
// about 0.6 GiB/s, 1 MiB messages about 1 GiB/s (BenchmarkSideChannel* in
// core/pluginhost measures the socket as mbk uses it).

type sideChannel struct {
	dir  string
	path string
	ln   *net.UnixListener
}

func newSideChannel() (*sideChannel, error) {
	dir, err := os.MkdirTemp("", "mbk-stream-")
	if err != nil {
		return nil, fmt.Errorf("side channel: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("side channel: %w", err)
	}
	path := filepath.Join(dir, "stream.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("side channel: %w", err)
	}
	return &sideChannel{dir: dir, path: path, ln: ln}, nil
}

// accept waits for the plugin to connect, or for ctx to end.
func (s *sideChannel) accept(ctx context.Context) (*net.UnixConn, error) {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	c, err := s.ln.AcceptUnix()
	if err != nil && ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if err == nil {
		widen(c)
	}
	return c, err
}

// Dial connects a plugin to the core's end of a side channel.
func Dial(socket string) (*net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to the core's stream: %w", err)
	}
	widen(c)
	return c, nil
}

// sendBuf is the send buffer asked for on each end of a side channel; the
// kernel doubles it for its bookkeeping. By default a unix socket holds 208
// KiB (net.core.wmem_default): a writer and a reader that both have work
// to do between their calls then hand each other 208 KiB at a time, each
// handoff waiting for a wake-up on a busy machine. The medium bench's
// archive stage waited 1.1-1.3 s of its 1.45 s for the plugin's next bytes
// that way; with 4 MiB in the socket it took 1.23-1.27 s. The memory is the
// kernel's, only while bytes wait in it (for a file sent with sendfile,
// references to the page cache).
const sendBuf = 2 << 20

// widen asks for sendBuf: beyond net.core.wmem_max where the process may
// (CAP_NET_ADMIN, as root), else up to it. It is only a speed-up: a socket
// that keeps a smaller buffer works the same.
func widen(c *net.UnixConn) {
	if rc, err := c.SyscallConn(); err == nil {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuf)
		}); err == nil && serr == nil {
			return
		}
	}
	_ = c.SetWriteBuffer(sendBuf)
}

// giveUpAcceptAfter bounds how long accept may still wait: used once the
// plugin has answered, when a connection that has not come will never come.
func (s *sideChannel) giveUpAcceptAfter(d time.Duration) {
	_ = s.ln.SetDeadline(time.Now().Add(d))
}

func (s *sideChannel) Close() {
	s.ln.Close()
	os.RemoveAll(s.dir)
}

// CountingWriter counts the bytes written through it.
type CountingWriter struct {
	W io.Writer
	N int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

// CountingReader counts the bytes read through it.
type CountingReader struct {
	R io.Reader
	N int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// ErrShortRead says a restore stopped consuming before the stream ended.
var ErrShortRead = errors.New("the plugin stopped reading before the end of the stream")

// StreamBuf is the side channel's buffer size on each end. 256 KiB moves
// 9-12 GB/s here at 0.09-0.12 CPU-s per GB (BenchmarkSideChannel*), no
// worse than 1 MiB, for less memory in every plugin and in mbk.
const StreamBuf = 256 << 10

// lateConnect bounds the wait for a side-channel connection after the plugin
// has already answered.
const lateConnect = 5 * time.Second

// Pull runs call, which has the plugin write a stream to the socket, while
// copying what arrives into w. It succeeds only when the call returned OK and
// the bytes w received match the count the plugin reported: end of stream
// alone proves nothing. what names the stream in errors.
func Pull(ctx context.Context, w io.Writer, what string, call func(ctx context.Context, socket string) (int64, error)) (int64, error) {
	sc, err := newSideChannel()
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	sink := &ErrWriter{W: w}
	go func() {
		conn, err := sc.accept(ctx)
		if err != nil {
			done <- copied{err: err}
			return
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		// Checked before each read too: under load the close above can come
		// late, and the plugin must not get to write its whole stream into
		// a backup that was cancelled.
		n, err := sink.ReadFrom(ctxReader{ctx, conn})
		done <- copied{n, err}
	}()
	reported, err := call(ctx, sc.path)
	if err != nil {
		cancel()
		<-done
		if parent.Err() != nil {
			// Cancelled: the stream was closed on the plugin, whose
			// failure to write (a broken pipe) is only the consequence.
			return 0, context.Cause(parent)
		}
		// When the core could not keep the bytes, the plugin fails on a
		// broken pipe: the core's own write error is the cause to report.
		if sink.Err != nil {
			return 0, fmt.Errorf("writing %s: %w (the plugin then failed: %v)", what, sink.Err, RPCError(err))
		}
		return 0, RPCError(err)
	}
	sc.giveUpAcceptAfter(lateConnect)
	cp := <-done
	if cp.err != nil {
		if parent.Err() != nil {
			return cp.n, context.Cause(parent)
		}
		return cp.n, fmt.Errorf("reading the stream: %w", cp.err)
	}
	if cp.n != reported {
		return cp.n, fmt.Errorf("the plugin reported %d bytes but %d arrived", reported, cp.n)
	}
	return cp.n, nil
}

// ContextReader stops a copy between two reads once ctx ends (the SDK
// offers it to plugins as sdk.ContextReader).
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ContextWriter is ContextReader's counterpart for writes.
func ContextWriter(ctx context.Context, w io.Writer) io.Writer { return ctxWriter{ctx, w} }

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Push runs call, which has the plugin read a stream from the socket, while
// send writes it. send says whether its error is local (about the core's own
// source), which is then the cause reported.
func Push(ctx context.Context, send func(conn *net.UnixConn) (n int64, err error, local bool), call func(ctx context.Context, socket string) (int64, error)) (int64, error) {
	sc, err := newSideChannel()
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type sent struct {
		n     int64
		err   error
		local bool
	}
	done := make(chan sent, 1)
	go func() {
		conn, err := sc.accept(ctx)
		if err != nil {
			done <- sent{err: err}
			return
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		n, err, local := send(conn)
		done <- sent{n, err, local}
	}()
	read, err := call(ctx, sc.path)
	if err != nil {
		cancel()
		s := <-done
		if s.local {
			return 0, fmt.Errorf("%w (the plugin then failed: %v)", s.err, RPCError(err))
		}
		return 0, RPCError(err)
	}
	sc.giveUpAcceptAfter(lateConnect)
	s := <-done
	if s.local {
		return 0, s.err
	}
	if s.err != nil {
		return 0, fmt.Errorf("sending the stream: %w", s.err)
	}
	if s.n != read {
		return 0, fmt.Errorf("sent %d bytes but the plugin read %d", s.n, read)
	}
	return s.n, nil
}

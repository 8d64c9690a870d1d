package wire

import (
	"bufio"
	"errors"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrNoSendFile says sendfile(2) refused the file: use Write. core/sdk
// exports it with the FileSender interface StreamWriter implements.
var ErrNoSendFile = errors.New("sendfile is not possible for this file")

// StreamWriter is the side channel as a source's Backup sees it: writes
// are buffered (a tar stream is many 512-byte headers: one syscall per
// buffer instead), files can be sent without a copy, and every byte is
// counted for the reply.
type StreamWriter struct {
	CountingWriter // over bw
	conn           *net.UnixConn
	bw             *bufio.Writer
}

// NewStreamWriter wraps a plugin's end of a side channel.
func NewStreamWriter(conn *net.UnixConn) *StreamWriter {
	bw := bufio.NewWriterSize(conn, StreamBuf)
	return &StreamWriter{CountingWriter: CountingWriter{W: bw}, conn: conn, bw: bw}
}

// Flush writes what is buffered.
func (s *StreamWriter) Flush() error { return s.bw.Flush() }

// SendFile writes the next n bytes of f into the stream straight from the
// page cache (sendfile(2) into the socket). It returns fewer than n only when
// f ended first; ErrNoSendFile, with nothing sent, when f's filesystem
// cannot do it.
func (s *StreamWriter) SendFile(f *os.File, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	if err := s.bw.Flush(); err != nil {
		return 0, err
	}
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	src := int(f.Fd())
	var sent int64
	var sendErr error
	// The socket is non-blocking, owned by Go's poller: on EAGAIN the
	// callback returns false and Write waits until the socket takes more.
	err = rc.Write(func(fd uintptr) bool {
		for sent < n {
			k, err := unix.Sendfile(int(fd), src, nil, int(min(n-sent, 1<<30)))
			if k > 0 {
				sent += int64(k)
			}
			switch {
			case err == unix.EAGAIN:
				return false
			case err == unix.EINTR:
			case err != nil:
				sendErr = err
				return true
			case k == 0: // the file ended
				return true
			}
		}
		return true
	})
	runtime.KeepAlive(f)
	s.N += sent
	if err == nil {
		err = sendErr
	}
	if sent == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
		return 0, ErrNoSendFile
	}
	if err != nil {
		return sent, &os.SyscallError{Syscall: "sendfile", Err: err}
	}
	return sent, nil
}

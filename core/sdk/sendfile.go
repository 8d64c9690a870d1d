package sdk

import (
	"bufio"
	"errors"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// FileSender is implemented by the writer a source's Backup gets: SendFile
// writes the next n bytes of f into the stream straight from the page cache
// (sendfile(2) into the side channel's socket), where Write would have the
// plugin copy them into its memory and out again. Bytes written before and
// after keep their order.
//
// It returns how many bytes it sent: fewer than n only when f ended first,
// with a nil error. ErrNoSendFile, with nothing sent, says the file's
// filesystem cannot do it: write the bytes instead.
type FileSender interface {
	SendFile(f *os.File, n int64) (int64, error)
}

// ErrNoSendFile says sendfile(2) refused the file: use Write.
var ErrNoSendFile = errors.New("sendfile is not possible for this file")

// streamWriter is the side channel as a source's Backup sees it: writes
// are buffered (a tar stream is many 512-byte headers: one syscall per
// buffer instead), files can be sent without a copy, and every byte is
// counted for the reply.
type streamWriter struct {
	countingWriter // over bw
	conn           *net.UnixConn
	bw             *bufio.Writer
}

func newStreamWriter(conn *net.UnixConn) *streamWriter {
	bw := bufio.NewWriterSize(conn, streamBuf)
	return &streamWriter{countingWriter: countingWriter{w: bw}, conn: conn, bw: bw}
}

// Flush writes what is buffered.
func (s *streamWriter) Flush() error { return s.bw.Flush() }

func (s *streamWriter) SendFile(f *os.File, n int64) (int64, error) {
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
	s.n += sent
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

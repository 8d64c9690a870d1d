// Package smtptest runs a real SMTP server on the loopback interface for
// tests: implicit TLS, STARTTLS or plain text, with AUTH PLAIN, LOGIN and
// XOAUTH2, a freshly made certificate authority, and switches that make it
// misbehave the way real servers do.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLS modes of a Server.
const (
	TLSImplicit = "implicit" // TLS from the first byte (port 465 style)
	TLSStartTLS = "starttls" // plain text, STARTTLS offered (port 587 style)
	TLSNone     = "none"     // plain text, no STARTTLS
)

// Options says how a Server behaves.
type Options struct {
	// TLS is TLSImplicit, TLSStartTLS or TLSNone; empty means TLSStartTLS.
	TLS string
	// Username and Password are the one account the server knows. AUTH is
	// offered only when Username is set, and (as real servers do) only over
	// TLS unless TLS is TLSNone.
	Username, Password string
	// RequireAuth refuses MAIL FROM until the client has logged in.
	RequireAuth bool
	// AllowLogin offers AUTH LOGIN besides PLAIN.
	AllowLogin bool
	// OAuth2Token, when set, offers AUTH XOAUTH2 for Username with this token.
	OAuth2Token string
	// FailData rejects every message at the end of DATA with 554.
	FailData bool
	// DropMidMessage closes the connection after reading a message's data,
	// before answering, like a server that dies mid-transaction.
	DropMidMessage bool
}

// Message is one message the server accepted.
type Message struct {
	From     string   // envelope sender (MAIL FROM)
	Rcpt     []string // envelope recipients (RCPT TO), in order
	Data     []byte   // the raw message as sent after DATA
	AuthMech string   // SASL mechanism the session logged in with; "" if none
	AuthUser string   // username the session logged in as
	TLS      bool     // whether the session was encrypted when DATA came
}

// Login is one successful AUTH.
type Login struct {
	Mech     string
	Username string
}

// Server is a running SMTP server. Start registers its Close with t.Cleanup.
type Server struct {
	opts   Options
	srv    *smtp.Server
	ln     net.Listener
	port   int
	caFile string
	caPEM  []byte
	served chan struct{}
	once   sync.Once
	log    *testLogger

	mu      sync.Mutex
	msgs    []Message
	logins  []Login
	changed chan struct{} // closed and replaced whenever msgs grows
	conns   []net.Conn    // every session's connection, closed by Close
}

// Start runs a server on 127.0.0.1 on a free port. It fails the test if the
// server cannot start.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.TLS == "" {
		opts.TLS = TLSStartTLS
	}
	if !slices.Contains([]string{TLSImplicit, TLSStartTLS, TLSNone}, opts.TLS) {
		t.Fatalf("smtptest: TLS is %q; want %q, %q or %q", opts.TLS, TLSImplicit, TLSStartTLS, TLSNone)
	}
	keys, err := newPKI()
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	caFile := filepath.Join(t.TempDir(), "smtptest-ca.pem")
	if err := os.WriteFile(caFile, keys.caPEM, 0o600); err != nil {
		t.Fatalf("smtptest: write CA file: %v", err)
	}

	s := &Server{opts: opts, caFile: caFile, caPEM: keys.caPEM, served: make(chan struct{}), changed: make(chan struct{}), log: &testLogger{t: t}}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "localhost"
	s.srv.ErrorLog = s.log
	s.srv.MaxMessageBytes = 32 << 20
	// Real submission servers offer AUTH only once the line is encrypted;
	// on a plain-text server the tests that want AUTH have to allow it.
	s.srv.AllowInsecureAuth = opts.TLS == TLSNone
	serverTLS := &tls.Config{Certificates: []tls.Certificate{keys.server}, MinVersion: tls.VersionTLS12}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	switch opts.TLS {
	case TLSImplicit:
		ln = tls.NewListener(ln, serverTLS)
	case TLSStartTLS:
		s.srv.TLSConfig = serverTLS
	}
	s.ln = ln
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.log.Printf("serve: %v", err)
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Addr is where the server listens.
func (s *Server) Addr() (host string, port int) { return "127.0.0.1", s.port }

// CAFile is the path of a PEM file holding the CA that signed the server's
// certificate.
func (s *Server) CAFile() string { return s.caFile }

// ClientTLSConfig trusts the server's CA, for clients written in tests.
func (s *Server) ClientTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.caPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Logins returns the successful AUTH exchanges so far, including those of
// sessions that sent nothing.
func (s *Server) Logins() []Login {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logins)
}

// WaitMessages waits until at least n messages have arrived and returns them.
// It fails the test if they do not arrive within timeout.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs, changed := slices.Clone(s.msgs), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: waited %v for %d messages, got %d", timeout, n, len(msgs))
		}
	}
}

// Close stops the server and drops every connection. Calling it again does
// nothing; after it the port refuses connections.
func (s *Server) Close() {
	s.once.Do(func() {
		_ = s.srv.Close()
		// Serve may not have registered the listener yet when Close
		// comes right after Start; closing it here ends Serve either way.
		_ = s.ln.Close()
		// go-smtp's Close can miss a connection it is still registering:
		// close every session's connection ourselves.
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-s.served
		s.log.stop()
	})
}

func (s *Server) addMessage(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) addLogin(l Login) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins = append(s.logins, l)
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns = append(s.conns, c.Conn())
	s.mu.Unlock()
	return &session{srv: s, conn: c}, nil
}

// session is one client connection.
type session struct {
	srv      *Server
	conn     *smtp.Conn
	authMech string
	authUser string
	from     string
	rcpt     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	o := ss.srv.opts
	if o.Username == "" {
		return nil
	}
	mechs := []string{sasl.Plain}
	if o.AllowLogin {
		mechs = append(mechs, sasl.Login)
	}
	if o.OAuth2Token != "" {
		mechs = append(mechs, "XOAUTH2")
	}
	return mechs
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(ss.AuthMechanisms(), mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	o := ss.srv.opts
	loggedIn := func(user string) {
		ss.authMech, ss.authUser = mech, user
		ss.srv.addLogin(Login{Mech: mech, Username: user})
	}
	password := func(username, password string) error {
		if username != o.Username || password != o.Password {
			return smtp.ErrAuthFailed
		}
		loggedIn(username)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, pw string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return password(username, pw)
		}), nil
	case sasl.Login:
		return &loginServer{check: password}, nil
	default: // XOAUTH2
		return &xoauth2Server{check: func(username, token string) error {
			if username != o.Username || token != o.OAuth2Token {
				return smtp.ErrAuthFailed
			}
			loggedIn(username)
			return nil
		}}, nil
	}
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.RequireAuth && ss.authMech == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpt = append(ss.rcpt, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	o := ss.srv.opts
	switch {
	case o.DropMidMessage:
		_ = ss.conn.Conn().Close()
		return errors.New("smtptest: dropped the connection on purpose")
	case o.FailData:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 3, 0}, Message: "Transaction failed (smtptest FailData)"}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.srv.addMessage(Message{
		From: ss.from, Rcpt: slices.Clone(ss.rcpt), Data: data,
		AuthMech: ss.authMech, AuthUser: ss.authUser, TLS: isTLS,
	})
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.rcpt = "", nil
}

func (ss *session) Logout() error { return nil }

// testLogger sends the server's own complaints to the test log until the
// server is closed; testing panics on logs after a test ends.
type testLogger struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (l *testLogger) Printf(format string, v ...any) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("smtptest: "+format, v...)
	}
}

func (l *testLogger) Println(v ...any) { l.Printf("%s", fmt.Sprintln(v...)) }

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/mbk-backup/mbk/core/sdk"
)

// noDeadline bounds a session when the caller's context has no deadline;
// the core normally gives every notify stage its own timeout.
const noDeadline = 2 * time.Minute

// session is an open SMTP connection, encrypted and logged in as the
// settings say.
type session struct {
	ctx    context.Context
	s      settings
	mc     *mail.Client
	sc     *smtp.Client
	stopMu sync.Mutex
	stop   func() bool // undoes the close-on-cancel hook
	conn   net.Conn
}

// stepError is a failure at one step of talking to the server, with the
// setting a user would look at first.
type stepError struct {
	addr string
	step string // "connect", "TLS handshake", `login as "x" refused`, ...
	attr string
	err  error
}

func (e *stepError) Error() string { return fmt.Sprintf("%s: %s: %v", e.addr, e.step, e.err) }
func (e *stepError) Unwrap() error { return e.err }

// replyError shows a server's reply as the server wrote it:
// `535 5.7.8 Authentication failed`, where textproto would quote the text.
type replyError struct{ e *textproto.Error }

func (r replyError) Error() string {
	return fmt.Sprintf("%03d %s", r.e.Code, strings.Join(strings.Fields(r.e.Msg), " "))
}
func (r replyError) Unwrap() error { return r.e }

// failed describes a failed step: "<step> refused: <reply>" when the server
// said no, "<step>: <error>" when the line broke.
func (ss *session) failed(step, attr string, err error) error {
	var reply *textproto.Error
	switch {
	case ss.ctx.Err() != nil:
		err = fmt.Errorf("gave up: %w", ss.ctx.Err())
	case errors.As(err, &reply):
		step, err = step+" refused", replyError{reply}
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("%w (the server closed the connection)", err)
	}
	return &stepError{addr: ss.s.addr(), step: step, attr: attr, err: err}
}

// describe says how the plugin talks to the server, for summaries and the
// test message; it never includes a secret.
func describe(s settings) string {
	tlsText := map[string]string{tlsImplicit: "implicit TLS", tlsStartTLS: "STARTTLS", tlsNone: "no TLS"}[s.TLS]
	if s.TLS != tlsNone && s.InsecureSkipVerify {
		tlsText += " without certificate verification"
	}
	authText := "no AUTH"
	if s.Auth != authNone {
		authText = "AUTH " + strings.ToUpper(s.Auth)
	}
	return fmt.Sprintf("%s (%s, %s)", s.addr(), tlsText, authText)
}

func (s settings) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify}
	if s.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	// Extra CAs add to the system's, so that a later move to a public
	// certificate does not break mail.
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", s.CAFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// open connects, encrypts and logs in; it sends no message.
func (p *plugin) open(ctx context.Context, s settings) (*session, error) {
	ss := &session{ctx: ctx, s: s}
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, ss.failed("load CAs", "ca_file", err)
	}
	if s.TLS != tlsNone && s.InsecureSkipVerify {
		p.log.Warn("insecure_skip_verify is on: the SMTP server's certificate is NOT verified; anyone on the path can read the password and the report", "server", s.addr())
	}

	timeout := noDeadline
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	mc, err := mail.NewClient(s.Host,
		mail.WithPort(s.port),
		// TLS and AUTH are done below, step by step, so that a failure
		// says which step failed and STARTTLS is never skipped.
		mail.WithTLSPolicy(mail.NoTLS),
		mail.WithTimeout(timeout),
		mail.WithDialContextFunc(func(dctx context.Context, network, addr string) (net.Conn, error) {
			return ss.dial(dctx, network, addr, tlsCfg)
		}),
	)
	if err != nil {
		return nil, ss.failed("set up the client", "", err)
	}
	ss.mc = mc
	sc, err := mc.DialToSMTPClientWithContext(ctx)
	if err != nil {
		ss.close()
		var se *stepError
		if errors.As(err, &se) {
			return nil, ss.failed(se.step, se.attr, se.err)
		}
		return nil, ss.failed("greeting", "host", err)
	}
	ss.sc = sc

	if s.TLS == tlsStartTLS {
		if ok, _ := sc.Extension("STARTTLS"); !ok {
			ss.close()
			return nil, ss.failed("STARTTLS", "tls", fmt.Errorf("the server does not offer STARTTLS, which tls = %q requires (use tls = %q if this port speaks TLS from the first byte)", tlsStartTLS, tlsImplicit))
		}
		if err := sc.StartTLS(tlsCfg); err != nil {
			ss.close()
			return nil, ss.failed("STARTTLS", tlsAttr(err), explainTLS(err))
		}
	}

	if err := ss.login(); err != nil {
		ss.close()
		return nil, err
	}
	return ss, nil
}

// dial opens the TCP connection (and, for implicit TLS, shakes hands) and
// arranges for ctx's end to close it, so that every later step stops
// promptly too. dctx is go-mail's dial-only context.
func (ss *session) dial(dctx context.Context, network, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(dctx, network, addr)
	if err != nil {
		// "connection refused" says it all; the dial's own wrapping
		// would repeat the address and the word "connect".
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		var sys *os.SyscallError
		if errors.As(err, &sys) {
			err = sys.Err
		}
		return nil, &stepError{step: "connect", attr: "host", err: err}
	}
	if ss.s.TLS == tlsImplicit {
		tc := tls.Client(c, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, &stepError{step: "TLS handshake", attr: tlsAttr(err), err: explainTLS(err)}
		}
		c = tc
	}
	ss.stopMu.Lock()
	ss.conn = c
	ss.stop = context.AfterFunc(ss.ctx, func() { c.Close() })
	ss.stopMu.Unlock()
	return c, nil
}

func tlsAttr(err error) string {
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return "ca_file"
	}
	return "tls"
}

// explainTLS adds what to do to a certificate error.
func explainTLS(err error) error {
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		return err
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return fmt.Errorf("%w (set ca_file to the PEM file of the CA that signed the server's certificate)", err)
	}
	return err
}

func (ss *session) login() error {
	s := ss.s
	if s.Auth == authNone {
		return nil
	}
	mech := strings.ToUpper(s.Auth)
	ok, offered := ss.sc.Extension("AUTH")
	if !ok {
		return ss.failed("AUTH", "auth", fmt.Errorf("the server offers no AUTH, but auth = %q", s.Auth))
	}
	if !slices.Contains(strings.Fields(strings.ToUpper(offered)), mech) {
		return ss.failed("AUTH", "auth", fmt.Errorf("the server does not offer AUTH %s (it offers %s)", mech, offered))
	}
	var a smtp.Auth
	attr := "password"
	switch s.Auth {
	case authPlain:
		a = smtp.PlainAuth("", s.Username, s.Password, s.Host, false)
	case authLogin:
		a = smtp.LoginAuth(s.Username, s.Password, s.Host, false)
	case authXOAUTH2:
		a, attr = smtp.XOAuth2Auth(s.Username, s.OAuth2Token), "oauth2_token"
	}
	if err := ss.sc.Auth(a); err != nil {
		return ss.failed(fmt.Sprintf("login as %q", s.Username), attr, err)
	}
	return nil
}

// envelope announces the sender and every recipient.
func (ss *session) envelope() error {
	if err := ss.sc.Mail(ss.s.from.Address); err != nil {
		return ss.failed(fmt.Sprintf("MAIL FROM:<%s>", ss.s.from.Address), "from", err)
	}
	for _, r := range ss.s.rcpts {
		if err := ss.sc.Rcpt(r.addr); err != nil {
			return ss.failed(fmt.Sprintf("RCPT TO:<%s>", r.addr), r.attr, err)
		}
	}
	return nil
}

// send transmits one message. The steps are go-mail's own, done here so
// that each failure carries the server's reply as it was written.
func (ss *session) send(m *mail.Msg) error {
	if err := ss.envelope(); err != nil {
		return err
	}
	w, err := ss.sc.Data()
	if err != nil {
		return ss.failed("DATA", "", err)
	}
	if _, err := m.WriteTo(w); err != nil {
		w.Close()
		return ss.failed("send the message", "", err)
	}
	// Only the reply to the final dot says the server took the message.
	if err := w.Close(); err != nil {
		var reply *textproto.Error
		if errors.As(err, &reply) {
			return ss.failed("message", "", err) // "message refused: 554 ..."
		}
		return ss.failed("send the message", "", err)
	}
	return nil
}

// quit ends the session politely; the message, if any, is already accepted.
func (ss *session) quit() error {
	defer ss.close()
	return ss.mc.CloseWithSMTPClient(ss.sc)
}

func (ss *session) close() {
	ss.stopMu.Lock()
	defer ss.stopMu.Unlock()
	if ss.stop != nil {
		ss.stop()
	}
	if ss.conn != nil {
		ss.conn.Close()
	}
}

// Notify sends one message with the report.
func (p *plugin) Notify(ctx context.Context, cfg sdk.Config, event string, r sdk.Report) (string, error) {
	s, err := usable(cfg)
	if err != nil {
		return "", err
	}
	via := describe(s)
	if s.Auth != authNone {
		via += fmt.Sprintf(" as %q", s.Username)
	}
	msg, err := buildMessage(s, event, r, via)
	if err != nil {
		return "", err
	}
	ss, err := p.open(ctx, s)
	if err != nil {
		return "", err
	}
	if err := ss.send(msg); err != nil {
		ss.close()
		return "", err
	}
	if err := ss.quit(); err != nil {
		p.log.Warn("the server accepted the message but QUIT failed", "server", s.addr(), "error", err)
	}
	noun := "recipients"
	if len(s.rcpts) == 1 {
		noun = "recipient"
	}
	return fmt.Sprintf("sent to %d %s via %s", len(s.rcpts), noun, describe(s)), nil
}

// Preflight connects, encrypts, logs in and asks the server whether it takes
// mail from the sender for every recipient, then resets: no message is sent.
func (p *plugin) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	s, d := load(cfg)
	if d.HasErrors() {
		return d
	}
	ss, err := p.open(ctx, s)
	if err != nil {
		return append(d, diagnose(err))
	}
	defer ss.close()
	if err := ss.envelope(); err != nil {
		return append(d, diagnose(err))
	}
	if err := ss.sc.Reset(); err != nil {
		return append(d, diagnose(ss.failed("RSET", "", err)))
	}
	if err := ss.quit(); err != nil {
		p.log.Debug("QUIT after preflight failed", "server", s.addr(), "error", err)
	}
	p.log.Info("SMTP server reachable and login accepted", "via", describe(s))
	return d
}

func diagnose(err error) sdk.Diagnostic {
	var se *stepError
	if errors.As(err, &se) {
		return sdk.Errorf(se.attr, "%v", err)
	}
	return sdk.Errorf("", "%v", err)
}

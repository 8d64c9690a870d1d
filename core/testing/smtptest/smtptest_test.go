package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const body = "Subject: hi\r\n\r\nhello\r\n"

func addr(s *Server) string {
	host, port := s.Addr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// dial connects the way the server's TLS mode wants.
func dial(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	var (
		c   *smtp.Client
		err error
	)
	switch s.opts.TLS {
	case TLSImplicit:
		c, err = smtp.DialTLS(addr(s), s.ClientTLSConfig())
	case TLSStartTLS:
		c, err = smtp.DialStartTLS(addr(s), s.ClientTLSConfig())
	default:
		c, err = smtp.Dial(addr(s))
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr(s), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// xoauth2Client is the client side of XOAUTH2, which go-sasl lacks.
type xoauth2Client struct{ user, token string }

func (x xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x xoauth2Client) Next([]byte) ([]byte, error) { return nil, errors.New("unexpected challenge") }

func TestDelivery(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		auth     sasl.Client
		wantMech string
		wantTLS  bool
	}{
		{"implicit TLS, PLAIN", Options{TLS: TLSImplicit, Username: "u", Password: "p", RequireAuth: true},
			sasl.NewPlainClient("", "u", "p"), sasl.Plain, true},
		{"STARTTLS, PLAIN", Options{TLS: TLSStartTLS, Username: "u", Password: "p", RequireAuth: true},
			sasl.NewPlainClient("", "u", "p"), sasl.Plain, true},
		{"implicit TLS, LOGIN", Options{TLS: TLSImplicit, Username: "u", Password: "p", AllowLogin: true, RequireAuth: true},
			sasl.NewLoginClient("u", "p"), sasl.Login, true},
		{"implicit TLS, XOAUTH2", Options{TLS: TLSImplicit, Username: "u", OAuth2Token: "tok", RequireAuth: true},
			xoauth2Client{"u", "tok"}, "XOAUTH2", true},
		{"plain text, no auth", Options{TLS: TLSNone}, nil, "", false},
		{"plain text, PLAIN", Options{TLS: TLSNone, Username: "u", Password: "p"},
			sasl.NewPlainClient("", "u", "p"), sasl.Plain, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			c := dial(t, s)
			if tt.auth != nil {
				if err := c.Auth(tt.auth); err != nil {
					t.Fatalf("auth: %v", err)
				}
			}
			if err := c.SendMail("from@example.com", []string{"a@example.com", "b@example.com"}, strings.NewReader(body)); err != nil {
				t.Fatalf("send: %v", err)
			}
			msgs := s.WaitMessages(t, 1, 10*time.Second)
			m := msgs[0]
			if m.From != "from@example.com" || strings.Join(m.Rcpt, ",") != "a@example.com,b@example.com" {
				t.Errorf("envelope = %q -> %q", m.From, m.Rcpt)
			}
			if string(m.Data) != body {
				t.Errorf("data = %q, want %q", m.Data, body)
			}
			if m.AuthMech != tt.wantMech || (tt.wantMech != "" && m.AuthUser != "u") {
				t.Errorf("auth = %q as %q, want %q as u", m.AuthMech, m.AuthUser, tt.wantMech)
			}
			if m.TLS != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", m.TLS, tt.wantTLS)
			}
			if tt.wantMech != "" && len(s.Logins()) != 1 {
				t.Errorf("logins = %v, want one", s.Logins())
			}
		})
	}
}

func TestAdvertisedExtensions(t *testing.T) {
	tests := []struct {
		name          string
		opts          Options
		wantStartTLS  bool
		wantAuthPlain string // AUTH parameter before any TLS upgrade; "" = not offered
	}{
		{"STARTTLS hides AUTH until upgraded", Options{TLS: TLSStartTLS, Username: "u", Password: "p"}, true, ""},
		{"plain text offers neither STARTTLS nor AUTH without a user", Options{TLS: TLSNone}, false, ""},
		{"plain text with a user offers AUTH", Options{TLS: TLSNone, Username: "u", AllowLogin: true}, false, "PLAIN LOGIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			c, err := smtp.Dial(addr(s))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("localhost"); err != nil {
				t.Fatal(err)
			}
			if got, _ := c.Extension("STARTTLS"); got != tt.wantStartTLS {
				t.Errorf("STARTTLS offered = %v, want %v", got, tt.wantStartTLS)
			}
			ok, mechs := c.Extension("AUTH")
			if !ok {
				mechs = ""
			}
			if mechs != tt.wantAuthPlain {
				t.Errorf("AUTH = %q, want %q", mechs, tt.wantAuthPlain)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		auth    sasl.Client
		wantErr string
	}{
		{"wrong password", Options{TLS: TLSImplicit, Username: "u", Password: "p"}, sasl.NewPlainClient("", "u", "wrong"), "535"},
		{"wrong user", Options{TLS: TLSImplicit, Username: "u", Password: "p"}, sasl.NewPlainClient("", "x", "p"), "535"},
		{"LOGIN not allowed", Options{TLS: TLSImplicit, Username: "u", Password: "p"}, sasl.NewLoginClient("u", "p"), "504"},
		{"wrong token", Options{TLS: TLSImplicit, Username: "u", OAuth2Token: "tok"}, xoauth2Client{"u", "bad"}, "535"},
		{"auth required", Options{TLS: TLSImplicit, Username: "u", Password: "p", RequireAuth: true}, nil, "502"},
		{"DATA rejected", Options{TLS: TLSNone, FailData: true}, nil, "554"},
		{"dropped mid-message", Options{TLS: TLSNone, DropMidMessage: true}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			c := dial(t, s)
			var err error
			if tt.auth != nil {
				err = c.Auth(tt.auth)
			}
			if err == nil {
				err = c.SendMail("from@example.com", []string{"a@example.com"}, strings.NewReader(body))
			}
			if err == nil {
				t.Fatal("the server accepted what it should refuse")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d messages recorded, want none", n)
			}
		})
	}
}

func TestUntrustedWithoutCA(t *testing.T) {
	s := Start(t, Options{TLS: TLSImplicit})
	_, err := smtp.DialTLS(addr(s), &tls.Config{ServerName: "127.0.0.1"})
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		t.Fatalf("dial without the CA: err = %v, want an unknown-authority error", err)
	}
}

func TestCloseRightAfterStart(t *testing.T) {
	// Close used to race Serve's registration of the listener and hang.
	for range 20 {
		s := Start(t, Options{TLS: TLSImplicit})
		s.Close()
	}
}

func TestClose(t *testing.T) {
	s := Start(t, Options{TLS: TLSNone})
	c := dial(t, s)
	// A round trip first, so the session surely exists: the client reads
	// the greeting lazily, and a connection still in the accept queue when
	// Close runs is no open session yet (that race made this test flaky).
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // a second Close (and the cleanup's) must be harmless
	if err := c.Noop(); err == nil {
		t.Error("an open connection still answers after Close")
	}
	if conn, err := net.Dial("tcp", addr(s)); err == nil {
		conn.Close()
		t.Fatalf("port %s still accepts connections after Close", addr(s))
	}
}

func TestCAFile(t *testing.T) {
	s := Start(t, Options{TLS: TLSImplicit})
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CAFile %s holds no PEM certificate", s.CAFile())
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr(s), &tls.Config{RootCAs: pool, ServerName: name})
			if err != nil {
				t.Fatalf("verify the server as %s with CAFile %s: %v", name, s.CAFile(), err)
			}
			conn.Close()
		})
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	netmail "net/mail"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

func TestNotifyDelivers(t *testing.T) {
	tests := []struct {
		name        string
		server      smtptest.Options
		attrs       []any
		wantMech    string
		wantTLS     bool
		wantSummary string
	}{
		{"implicit TLS, AUTH PLAIN",
			smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, Password: password, RequireAuth: true, AllowLogin: true},
			[]any{"tls", "implicit", "username", user, "password", password},
			"PLAIN", true, "(implicit TLS, AUTH PLAIN)"},
		{"implicit TLS, AUTH LOGIN",
			smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, Password: password, RequireAuth: true, AllowLogin: true},
			[]any{"tls", "implicit", "auth", "login", "username", user, "password", password},
			"LOGIN", true, "(implicit TLS, AUTH LOGIN)"},
		{"STARTTLS by default, AUTH PLAIN",
			smtptest.Options{TLS: smtptest.TLSStartTLS, Username: user, Password: password, RequireAuth: true},
			[]any{"username", user, "password", password},
			"PLAIN", true, "(STARTTLS, AUTH PLAIN)"},
		{"implicit TLS, AUTH XOAUTH2",
			smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, OAuth2Token: token, RequireAuth: true},
			[]any{"tls", "implicit", "auth", "xoauth2", "username", user, "oauth2_token", token},
			"XOAUTH2", true, "(implicit TLS, AUTH XOAUTH2)"},
		{"plain text relay without AUTH",
			smtptest.Options{TLS: smtptest.TLSNone},
			[]any{"tls", "none"},
			"", false, "(no TLS, no AUTH)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.server)
			p, _ := newPlugin(t)
			attrs := with(baseAttrs(srv), tt.attrs...)
			if tt.server.TLS != smtptest.TLSNone {
				attrs = with(attrs, "ca_file", srv.CAFile())
			}
			summary, err := p.Notify(context.Background(), config(t, attrs), sdk.EventSuccess, report(sdk.EventSuccess))
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			host, port := srv.Addr()
			wantSummary := "sent to 4 recipients via " + net.JoinHostPort(host, strconv.Itoa(port)) + " " + tt.wantSummary
			if summary != wantSummary {
				t.Errorf("summary = %q, want %q", summary, wantSummary)
			}

			msgs := srv.WaitMessages(t, 1, 10*time.Second)
			if len(msgs) != 1 {
				t.Fatalf("%d messages arrived, want one", len(msgs))
			}
			m := msgs[0]
			if m.AuthMech != tt.wantMech || (tt.wantMech != "" && m.AuthUser != user) {
				t.Errorf("logged in with %q as %q, want %q as %q", m.AuthMech, m.AuthUser, tt.wantMech, user)
			}
			if m.TLS != tt.wantTLS {
				t.Errorf("encrypted = %v, want %v", m.TLS, tt.wantTLS)
			}
			if m.From != "backups@example.com" {
				t.Errorf("envelope sender = %q", m.From)
			}
			wantRcpt := []string{"ops@example.com", "jane@example.com", "cc@example.com", "audit@example.com"}
			if !slices.Equal(m.Rcpt, wantRcpt) {
				t.Errorf("envelope recipients = %q, want %q", m.Rcpt, wantRcpt)
			}
			for _, secret := range []string{password, token} {
				if bytes.Contains(m.Data, []byte(secret)) {
					t.Errorf("the raw message contains a secret")
				}
			}

			mp := parseMail(t, m.Data)
			from, err := netmail.ParseAddress(mp.header.Get("From"))
			if err != nil || from.Name != "Moodle Backup System" || from.Address != "backups@example.com" {
				t.Errorf("From header = %q (%v)", mp.header.Get("From"), err)
			}
			if got := mp.subject(t); got != "[mbk] production OK "+set {
				t.Errorf("Subject = %q", got)
			}
			if mp.header.Get("Bcc") != "" || bytes.Contains(m.Data, []byte("audit@example.com")) {
				t.Errorf("the bcc recipient shows in the message:\n%s", m.Data)
			}
			assertContains(t, "Cc header", mp.header.Get("Cc"), "cc@example.com")
			assertContains(t, "To header", mp.header.Get("To"), "ops@example.com", "jane@example.com")
			for _, body := range []struct{ name, text string }{{"text body", mp.text}, {"HTML body", mp.html}} {
				assertContains(t, body.name, body.text, set, "production", "moodle1",
					"moodle_"+set+".sql.gz", "12 MiB", "12,897,280 bytes", "1.5 KiB", "1,536 bytes",
					"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
					"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
					"2m13s", "kept", "deleted", "older than every window", "changed while archiving")
			}
		})
	}
}

func TestNotifyEvents(t *testing.T) {
	tests := []struct {
		event, status string
		wantSubject   string
		wantBody      []string
		notBody       []string
	}{
		{sdk.EventSuccess, sdk.EventSuccess, "[mbk] production OK " + set,
			[]string{"Backup OK", "/backups/production/" + set}, []string{"mariadb-dump exited 2"}},
		{sdk.EventFailure, sdk.EventFailure, "[mbk] production FAILED " + set,
			[]string{"Backup FAILED", `dump database "moodle" in container "db": mariadb-dump: Access denied`,
				"mariadb-dump exited 2", "03:02:10 dump db: started", "no backup set was kept"}, nil},
		{sdk.EventWarning, sdk.EventWarning, "[mbk] production WARNING " + set,
			[]string{"Backup WARNING", "changed while archiving"}, nil},
		{sdk.EventTest, "", "[mbk] production TEST",
			[]string{"mbk test message from moodle1 for pipeline production", "STARTTLS, AUTH PLAIN", `as "` + user + `"`}, nil},
	}
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS, Username: user, Password: password, RequireAuth: true})
	p, _ := newPlugin(t)
	cfg := config(t, with(baseAttrs(srv), "username", user, "password", password, "ca_file", srv.CAFile()))
	for i, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			r := report(tt.status)
			if tt.event == sdk.EventTest {
				r = sdk.Report{Pipeline: "production", Host: "moodle1"}
			}
			if _, err := p.Notify(context.Background(), cfg, tt.event, r); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			m := srv.WaitMessages(t, i+1, 10*time.Second)[i]
			mp := parseMail(t, m.Data)
			if got := mp.subject(t); got != tt.wantSubject {
				t.Errorf("Subject = %q, want %q", got, tt.wantSubject)
			}
			assertContains(t, "text body", mp.text, tt.wantBody...)
			assertContains(t, "HTML body", strings.ReplaceAll(mp.html, "&#34;", `"`), tt.wantBody...)
			for _, no := range tt.notBody {
				if strings.Contains(mp.text, no) {
					t.Errorf("text body contains %q:\n%s", no, mp.text)
				}
			}
			if (tt.event == sdk.EventFailure) != strings.EqualFold(mp.header.Get("Importance"), "high") {
				t.Errorf("Importance = %q for a %s report", mp.header.Get("Importance"), tt.event)
			}
			if mp.header.Get("Auto-Submitted") != "auto-generated" {
				t.Errorf("Auto-Submitted = %q", mp.header.Get("Auto-Submitted"))
			}
		})
	}
}

func TestNotifyFails(t *testing.T) {
	// closed is a port where nothing listens any more.
	closed := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit})
	closed.Close()

	tests := []struct {
		name   string
		server *smtptest.Server
		attrs  []any
		noCA   bool // leave ca_file out, so only the system's CAs are trusted
		want   []string
	}{
		{"STARTTLS is required, never opportunistic",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSNone}),
			[]any{"tls", "starttls"}, false,
			[]string{"STARTTLS", "does not offer STARTTLS"}},
		{"wrong password",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, Password: "the-right-one"}),
			[]any{"tls", "implicit", "username", user, "password", password}, false,
			[]string{`login as "` + user + `" refused: 535 5.7.8`}},
		{"wrong OAuth2 token",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, OAuth2Token: "other"}),
			[]any{"tls", "implicit", "auth", "xoauth2", "username", user, "oauth2_token", token}, false,
			[]string{`login as "` + user + `" refused: 535`}},
		{"mechanism not offered",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, Password: password}),
			[]any{"tls", "implicit", "auth", "login", "username", user, "password", password}, false,
			[]string{"does not offer AUTH LOGIN (it offers PLAIN)"}},
		{"server down",
			closed,
			[]any{"tls", "implicit"}, false,
			[]string{": connect: connection refused"}},
		{"untrusted certificate, implicit TLS",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit}),
			[]any{"tls", "implicit"}, true,
			[]string{"TLS handshake", "certificate signed by unknown authority", "set ca_file"}},
		{"untrusted certificate, STARTTLS",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS}),
			nil, true,
			[]string{"STARTTLS", "certificate signed by unknown authority", "set ca_file"}},
		{"DATA rejected",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, FailData: true}),
			[]any{"tls", "implicit"}, false,
			[]string{"message refused: 554 5.3.0 Transaction failed"}},
		{"connection dropped during DATA",
			smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, DropMidMessage: true}),
			[]any{"tls", "implicit"}, false,
			[]string{"send the message: EOF (the server closed the connection)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPlugin(t)
			attrs := with(baseAttrs(tt.server), tt.attrs...)
			if !tt.noCA {
				attrs = with(attrs, "ca_file", tt.server.CAFile())
			}
			summary, err := p.Notify(context.Background(), config(t, attrs), sdk.EventFailure, report(sdk.EventFailure))
			if err == nil {
				t.Fatalf("Notify succeeded (%s), want an error", summary)
			}
			host, port := tt.server.Addr()
			assertContains(t, "error", err.Error(), append([]string{net.JoinHostPort(host, strconv.Itoa(port)) + ": "}, tt.want...)...)
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) {
				t.Errorf("the error contains a secret: %v", err)
			}
			if n := len(tt.server.Messages()); n != 0 {
				t.Errorf("%d messages arrived", n)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestNotifyInsecureSkipVerify(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit})
	p, log := newPlugin(t)
	summary, err := p.Notify(context.Background(), config(t, with(baseAttrs(srv), "tls", "implicit", "insecure_skip_verify", true)), sdk.EventTest, sdk.Report{Pipeline: "production"})
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	assertContains(t, "summary", summary, "implicit TLS without certificate verification")
	assertContains(t, "log", log.String(), `"@level":"warn"`, "NOT verified")
	srv.WaitMessages(t, 1, 10*time.Second)
}

func TestNotifyStopsWhenContextEnds(t *testing.T) {
	// A server that accepts and then says nothing, as a hung relay does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		c := <-accepted
		defer c.Close()
		cancel()
		io.Copy(io.Discard, c)
	}()
	p, _ := newPlugin(t)
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = p.Notify(ctx, config(t, map[string]cty.Value{
		"host": cty.StringVal("127.0.0.1"), "port": cty.NumberIntVal(int64(port)), "tls": cty.StringVal("none"),
		"from": cty.StringVal("b@example.com"), "to": strs("o@example.com"),
	}), sdk.EventSuccess, report(sdk.EventSuccess))
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Notify after cancel: err = %v, want it to say the context was canceled", err)
	}
}

package main

import (
	"bytes"
	"mime"
	netmail "net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/sdk/sdktest"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

// TestConformance runs the SDK's notifier kit against a real SMTP server:
// implicit TLS verified against the server's CA, AUTH PLAIN.
func TestConformance(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, Password: password, RequireAuth: true})
	p, _ := newPlugin(t)
	attrs := with(baseAttrs(srv), "tls", "implicit", "username", user, "password", password, "ca_file", srv.CAFile())
	outcome := map[string]string{sdk.EventSuccess: "OK", sdk.EventFailure: "FAILED", sdk.EventWarning: "WARNING", sdk.EventTest: "TEST"}
	sent := 0
	sdktest.Notifier(t, p, sdktest.NotifierCase{
		Settings: attrs,
		Check: func(t testing.TB, event string, rep sdk.Report) {
			sent++
			msgs := srv.WaitMessages(t, sent, 10*time.Second)
			m := msgs[len(msgs)-1]
			if !m.TLS || m.AuthMech != "PLAIN" || m.AuthUser != user || len(m.Rcpt) != 4 {
				t.Errorf("%s: TLS %v, AUTH %q as %q, %d recipients", event, m.TLS, m.AuthMech, m.AuthUser, len(m.Rcpt))
			}
			if bytes.Contains(m.Data, []byte(password)) {
				t.Errorf("%s: the message holds the password", event)
			}
			msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatalf("%s: %v", event, err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if want := "[mbk] " + rep.Pipeline + " " + outcome[event]; err != nil || !strings.HasPrefix(subject, want) {
				t.Errorf("%s: subject %q (%v), want it to start with %q", event, subject, err, want)
			}
		},
		Unresponsive: func(addr string) map[string]cty.Value {
			host, port, _ := strings.Cut(addr, ":")
			n, _ := strconv.Atoi(port)
			return with(attrs, "host", host, "port", cty.NumberIntVal(int64(n)))
		},
	})
}

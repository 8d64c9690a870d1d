package main

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

func TestPreflight(t *testing.T) {
	good := smtptest.Options{TLS: smtptest.TLSImplicit, Username: user, Password: password, RequireAuth: true}
	closed := smtptest.Start(t, good)
	closed.Close()
	tests := []struct {
		name      string
		server    *smtptest.Server
		attrs     []any
		wantAttr  string
		wantError string
	}{
		{"all good", smtptest.Start(t, good), nil, "", ""},
		{"wrong password", smtptest.Start(t, good), []any{"password", "not-it"}, "password", `login as "` + user + `" refused: 535`},
		{"server down", closed, nil, "host", "connection refused"},
		{"untrusted certificate", smtptest.Start(t, good), []any{"ca_file", cty.NullVal(cty.String)}, "ca_file", "unknown authority"},
		{"no STARTTLS", smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSNone}), []any{"tls", "starttls", "auth", "none", "username", cty.NullVal(cty.String), "password", cty.NullVal(cty.String)}, "tls", "does not offer STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPlugin(t)
			attrs := with(baseAttrs(tt.server), "tls", "implicit", "username", user, "password", password, "ca_file", tt.server.CAFile())
			attrs = with(attrs, tt.attrs...)
			diags := p.Preflight(context.Background(), config(t, attrs))
			if tt.wantError == "" {
				if diags.HasErrors() {
					t.Fatalf("Preflight: %v", diags)
				}
				if got := tt.server.Logins(); len(got) != 1 || got[0].Username != user {
					t.Errorf("logins = %v, want one as %s", got, user)
				}
			} else {
				if len(diags) != 1 || !diags[0].Error {
					t.Fatalf("diagnostics = %+v, want one error", diags)
				}
				if diags[0].Attribute != tt.wantAttr {
					t.Errorf("attribute = %q, want %q", diags[0].Attribute, tt.wantAttr)
				}
				assertContains(t, "diagnostic", diags[0].Summary, tt.wantError)
				if strings.Contains(diags[0].Summary, password) {
					t.Errorf("the diagnostic contains the password: %s", diags[0].Summary)
				}
			}
			if n := len(tt.server.Messages()); n != 0 {
				t.Errorf("Preflight sent %d messages", n)
			}
		})
	}
}

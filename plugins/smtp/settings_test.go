package main

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func validAttrs() map[string]cty.Value {
	return map[string]cty.Value{
		"host":     cty.StringVal("smtp.example.com"),
		"from":     cty.StringVal("Moodle Backup System <backups@example.com>"),
		"to":       strs("ops@example.com"),
		"username": cty.StringVal(user),
		"password": cty.StringVal(password),
	}
}

func TestValidateConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		attrs    []any
		wantAttr string
		wantText string
	}{
		{"empty host", []any{"host", ""}, "host", "host must name"},
		{"host with a port", []any{"host", "smtp.example.com:587"}, "host", "must not carry a port"},
		{"port zero", []any{"port", cty.NumberIntVal(0)}, "port", "from 1 to 65535"},
		{"port too big", []any{"port", cty.NumberIntVal(70000)}, "port", "from 1 to 65535"},
		{"unknown tls", []any{"tls", "ssl"}, "tls", `tls is "ssl"`},
		{"unknown auth", []any{"auth", "cram-md5"}, "auth", `auth is "cram-md5"`},
		{"plain without username", []any{"auth", "plain", "username", cty.NullVal(cty.String)}, "username", `username is required with auth = "plain"`},
		{"login without password", []any{"auth", "login", "password", cty.NullVal(cty.String)}, "password", `password is required with auth = "login"`},
		{"username without password", []any{"password", cty.NullVal(cty.String)}, "password", `password is required with auth = "plain"`},
		{"xoauth2 without token", []any{"auth", "xoauth2", "password", cty.NullVal(cty.String)}, "oauth2_token", "oauth2_token is required"},
		{"xoauth2 without username", []any{"auth", "xoauth2", "username", cty.NullVal(cty.String), "password", cty.NullVal(cty.String), "oauth2_token", token}, "username", "username is required"},
		{"credentials in clear text", []any{"tls", "none"}, "auth", "in clear text to smtp.example.com"},
		{"from not an address", []any{"from", "backups at example.com"}, "from", `from "backups at example.com" is not a mail address`},
		{"empty from", []any{"from", ""}, "from", "from must name the sender"},
		{"no recipient", []any{"to", cty.ListValEmpty(cty.String)}, "to", "at least one recipient"},
		{"bad to", []any{"to", strs("ops@example.com", "jane")}, "to", `to[1] "jane" is not a mail address`},
		{"bad cc", []any{"cc", strs("a b c")}, "cc", `cc[0] "a b c"`},
		{"bad bcc", []any{"bcc", strs("@example.com")}, "bcc", `bcc[0] "@example.com"`},
		{"subject does not parse", []any{"subject", "[mbk] {{.Pipeline"}, "subject", "subject template"},
		{"subject names no field", []any{"subject", "[mbk] {{.Pipline}}"}, "subject", "Pipline"},
	}
	p, _ := newPlugin(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := p.ValidateConfig(context.Background(), config(t, with(validAttrs(), tt.attrs...)))
			var errs []string
			found := false
			for _, d := range diags {
				if !d.Error {
					continue
				}
				errs = append(errs, d.Attribute+": "+d.Summary)
				if d.Attribute == tt.wantAttr && strings.Contains(d.Summary, tt.wantText) {
					found = true
				}
				if strings.Contains(d.Summary, password) || strings.Contains(d.Summary, token) {
					t.Errorf("a diagnostic shows a secret: %s", d.Summary)
				}
			}
			if !found {
				t.Errorf("want an error on %q containing %q; got %q", tt.wantAttr, tt.wantText, errs)
			}
			if len(errs) != 1 {
				t.Errorf("want exactly one error, got %q", errs)
			}
		})
	}
}

func TestValidateConfigAccepts(t *testing.T) {
	tests := []struct {
		name      string
		attrs     []any
		wantWarns []string // attributes that get a warning
	}{
		{"STARTTLS with PLAIN", nil, nil},
		{"implicit TLS with LOGIN and a private CA", []any{"tls", "implicit", "auth", "login", "ca_file", "/etc/ssl/private-ca.pem", "port", cty.NumberIntVal(2465)}, nil},
		{"Office 365 XOAUTH2", []any{"auth", "xoauth2", "password", cty.NullVal(cty.String), "oauth2_token", token}, nil},
		{"local relay without TLS or AUTH", []any{"host", "localhost", "tls", "none", "username", cty.NullVal(cty.String), "password", cty.NullVal(cty.String)}, nil},
		{"credentials in clear text to this machine", []any{"host", "127.0.0.1", "tls", "none"}, nil},
		{"custom subject", []any{"subject", "{{.Outcome | lower}} backup of {{.Pipeline}} on {{.Host}} ({{.Event}})"}, nil},
		{"unverified certificate", []any{"insecure_skip_verify", true}, []string{"insecure_skip_verify"}},
		{"username with auth none", []any{"auth", "none", "password", cty.NullVal(cty.String)}, []string{"username"}},
		{"token unused with plain", []any{"oauth2_token", token}, []string{"oauth2_token"}},
		{"TLS settings without TLS", []any{"host", "localhost", "tls", "none", "ca_file", "/ca.pem"}, []string{"ca_file"}},
	}
	p, _ := newPlugin(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := p.ValidateConfig(context.Background(), config(t, with(validAttrs(), tt.attrs...)))
			var warns []string
			for _, d := range diags {
				if d.Error {
					t.Errorf("unexpected error on %q: %s", d.Attribute, d.Summary)
					continue
				}
				warns = append(warns, d.Attribute)
			}
			if strings.Join(warns, ",") != strings.Join(tt.wantWarns, ",") {
				t.Errorf("warnings on %q, want on %q (%+v)", warns, tt.wantWarns, diags)
			}
		})
	}
}

func TestSettingsDefaults(t *testing.T) {
	tests := []struct {
		attrs    []any
		wantPort int
		wantAuth string
	}{
		{nil, 587, authPlain},
		{[]any{"tls", "implicit"}, 465, authPlain},
		{[]any{"host", "localhost", "tls", "none", "username", cty.NullVal(cty.String), "password", cty.NullVal(cty.String)}, 25, authNone},
		{[]any{"tls", "implicit", "port", cty.NumberIntVal(2465)}, 2465, authPlain},
	}
	for _, tt := range tests {
		s, d := load(config(t, with(validAttrs(), tt.attrs...)))
		if d.HasErrors() {
			t.Fatalf("%v: %+v", tt.attrs, d)
		}
		if s.port != tt.wantPort || s.Auth != tt.wantAuth || s.TLS == "" {
			t.Errorf("%v: port %d auth %q tls %q, want port %d auth %q", tt.attrs, s.port, s.Auth, s.TLS, tt.wantPort, tt.wantAuth)
		}
	}
}

func TestSchema(t *testing.T) {
	p, _ := newPlugin(t)
	s, err := p.Schema("notify")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"on", "timeout"} {
		if _, ok := s.Attribute(name); ok {
			t.Errorf("the schema declares %q, which the core handles", name)
		}
	}
	for _, name := range []string{"password", "oauth2_token"} {
		if a, ok := s.Attribute(name); !ok || !a.Sensitive {
			t.Errorf("%q is not declared sensitive", name)
		}
	}
	if _, err := p.Schema("dump"); err == nil {
		t.Error("Schema(dump) succeeded")
	}
}

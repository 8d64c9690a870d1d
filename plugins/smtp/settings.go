package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"slices"
	"strings"

	"github.com/mbk-backup/mbk/core/sdk"
)

const (
	tlsImplicit = "implicit"
	tlsStartTLS = "starttls"
	tlsNone     = "none"

	authPlain   = "plain"
	authLogin   = "login"
	authXOAUTH2 = "xoauth2"
	authNone    = "none"
)

// settings is a decoded, defaulted and checked stage body.
type settings struct {
	Host string `cty:"host"`
	// Port is nil when left out: the default follows tls. A fraction
	// never reaches here (the schema says sdk.Int).
	Port               *int     `cty:"port"`
	TLS                string   `cty:"tls"`
	CAFile             string   `cty:"ca_file"`
	InsecureSkipVerify bool     `cty:"insecure_skip_verify"`
	Auth               string   `cty:"auth"`
	Username           string   `cty:"username"`
	Password           string   `cty:"password"`
	OAuth2Token        string   `cty:"oauth2_token"`
	From               string   `cty:"from"`
	To                 []string `cty:"to"`
	Cc                 []string `cty:"cc"`
	Bcc                []string `cty:"bcc"`
	Subject            string   `cty:"subject"`

	port    int           // resolved from Port and TLS
	from    *mail.Address // parsed From
	rcpts   []recipient   // to, cc and bcc in order, parsed
	subject subjectTemplate
}

// recipient is one envelope recipient and the setting it came from.
type recipient struct{ attr, addr string }

// addr is host:port, the name errors give the server.
func (s settings) addr() string { return net.JoinHostPort(s.Host, fmt.Sprint(s.port)) }

// secret is what AUTH sends besides the username.
func (s settings) secret() string {
	if s.Auth == authXOAUTH2 {
		return s.OAuth2Token
	}
	return s.Password
}

// load decodes and checks a config without touching the outside world.
// Warnings come back with the settings; the settings are usable only when no
// diagnostic is an error.
func load(cfg sdk.Config) (settings, sdk.Diagnostics) {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return s, sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	var d sdk.Diagnostics
	warn := func(attr, format string, args ...any) {
		d = append(d, sdk.Diagnostic{Summary: fmt.Sprintf(format, args...), Attribute: attr})
	}

	s.Host = strings.TrimSpace(s.Host)
	switch {
	case s.Host == "":
		d = append(d, sdk.Errorf("host", "host must name the SMTP server"))
	case strings.Contains(s.Host, ":") && net.ParseIP(s.Host) == nil:
		d = append(d, sdk.Errorf("host", "host %q must not carry a port; set port instead", s.Host))
	}

	if s.TLS == "" {
		s.TLS = tlsStartTLS
	}
	defaultPort := map[string]int{tlsImplicit: 465, tlsStartTLS: 587, tlsNone: 25}
	if _, ok := defaultPort[s.TLS]; !ok {
		d = append(d, sdk.Errorf("tls", "tls is %q; it must be %q, %q or %q", s.TLS, tlsImplicit, tlsStartTLS, tlsNone))
	}
	s.port = defaultPort[s.TLS]
	if s.Port != nil {
		if p := *s.Port; p < 1 || p > 65535 {
			d = append(d, sdk.Errorf("port", "port is %d; it must be from 1 to 65535", p))
		}
		s.port = *s.Port
	}
	if s.TLS == tlsNone {
		if s.CAFile != "" {
			warn("ca_file", "ca_file is ignored: tls = %q makes no TLS connection", tlsNone)
		}
		if s.InsecureSkipVerify {
			warn("insecure_skip_verify", "insecure_skip_verify is ignored: tls = %q makes no TLS connection", tlsNone)
		}
	} else if s.InsecureSkipVerify {
		warn("insecure_skip_verify", "insecure_skip_verify = true: the server's certificate is not verified, so anyone on the path can read the password and the report")
	}

	d = append(d, s.checkAuth()...)

	if s.From != "" {
		a, err := mail.ParseAddress(s.From)
		if err != nil {
			d = append(d, sdk.Errorf("from", "from %q is not a mail address: %v", s.From, err))
		}
		s.from = a
	} else {
		d = append(d, sdk.Errorf("from", "from must name the sender"))
	}
	if len(s.To) == 0 {
		d = append(d, sdk.Errorf("to", "to must list at least one recipient"))
	}
	for _, l := range []struct {
		attr  string
		addrs []string
	}{{"to", s.To}, {"cc", s.Cc}, {"bcc", s.Bcc}} {
		for i, a := range l.addrs {
			pa, err := mail.ParseAddress(a)
			if err != nil {
				d = append(d, sdk.Errorf(l.attr, "%s[%d] %q is not a mail address: %v", l.attr, i, a, err))
				continue
			}
			s.rcpts = append(s.rcpts, recipient{attr: l.attr, addr: pa.Address})
		}
	}

	if s.Subject == "" {
		s.Subject = defaultSubject
	}
	st, err := parseSubject(s.Subject)
	if err != nil {
		d = append(d, sdk.Errorf("subject", "subject template: %v", err))
	}
	s.subject = st
	return s, d
}

func (s *settings) checkAuth() sdk.Diagnostics {
	var d sdk.Diagnostics
	if s.Auth == "" {
		s.Auth = authNone
		if s.Username != "" {
			s.Auth = authPlain
		}
	}
	unused := func(attr string) {
		d = append(d, sdk.Diagnostic{Attribute: attr, Summary: fmt.Sprintf("%s is set but not used with auth = %q", attr, s.Auth)})
	}
	switch s.Auth {
	case authPlain, authLogin:
		if s.Username == "" {
			d = append(d, sdk.Errorf("username", "username is required with auth = %q", s.Auth))
		}
		if s.Password == "" {
			d = append(d, sdk.Errorf("password", "password is required with auth = %q", s.Auth))
		}
		if s.OAuth2Token != "" {
			unused("oauth2_token")
		}
	case authXOAUTH2:
		if s.Username == "" {
			d = append(d, sdk.Errorf("username", "username is required with auth = %q", s.Auth))
		}
		if s.OAuth2Token == "" {
			d = append(d, sdk.Errorf("oauth2_token", "oauth2_token is required with auth = %q", s.Auth))
		}
		if s.Password != "" {
			unused("password")
		}
	case authNone:
		for _, a := range []struct{ name, v string }{{"username", s.Username}, {"password", s.Password}, {"oauth2_token", s.OAuth2Token}} {
			if a.v != "" {
				unused(a.name)
			}
		}
		return d
	default:
		return append(d, sdk.Errorf("auth", "auth is %q; it must be %q, %q, %q or %q", s.Auth, authPlain, authLogin, authXOAUTH2, authNone))
	}
	// A password in clear text is fine only to this machine, the same
	// exception go-mail's PLAIN and LOGIN make.
	if s.TLS == tlsNone && !slices.Contains([]string{"localhost", "127.0.0.1", "::1"}, s.Host) {
		d = append(d, sdk.Errorf("auth", "auth = %q over tls = %q would send the credentials in clear text to %s; use tls = %q or %q", s.Auth, tlsNone, s.Host, tlsStartTLS, tlsImplicit))
	}
	return d
}

// ValidateConfig checks the settings without any I/O.
func (p *plugin) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	_, d := load(cfg)
	return d
}

// usable loads the settings for a live call and turns error diagnostics into
// one error.
func usable(cfg sdk.Config) (settings, error) {
	s, d := load(cfg)
	var errs []error
	for _, x := range d {
		if x.Error {
			errs = append(errs, errors.New(x.Summary))
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("smtp settings: %w", errors.Join(errs...))
	}
	return s, nil
}

package main

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/mbk-backup/mbk/core/sdk"
)

// settings is a decoded, defaulted and checked stage body.
type settings struct {
	Host          string `cty:"host"`
	Port          int    `cty:"port"` // whole: the schema says sdk.Int
	User          string `cty:"user"`
	KeyFile       string `cty:"key_file"`
	KeyPassphrase string `cty:"key_passphrase"`
	KnownHosts    string `cty:"known_hosts"`
	Path          string `cty:"path"`
}

// load decodes and checks a config without touching the outside world. The
// settings are usable only when no diagnostic is an error.
func load(cfg sdk.Config) (settings, sdk.Diagnostics) {
	s := settings{Port: defaultPort}
	if err := cfg.Decode(&s); err != nil {
		return s, sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	var d sdk.Diagnostics
	s.Host = strings.TrimSpace(s.Host)
	switch {
	case s.Host == "":
		d = append(d, sdk.Errorf("host", "host must name the SFTP server"))
	case strings.Contains(s.Host, ":") && net.ParseIP(s.Host) == nil:
		d = append(d, sdk.Errorf("host", "host %q must not carry a port; set port instead", s.Host))
	}
	if s.Port < 1 || s.Port > 65535 {
		d = append(d, sdk.Errorf("port", "port is %d; it must be from 1 to 65535", s.Port))
	}
	if s.User == "" {
		d = append(d, sdk.Errorf("user", "user must name the account to log in as"))
	}
	if s.KeyFile == "" {
		d = append(d, sdk.Errorf("key_file", "key_file must name the private key to log in with"))
	}
	if s.KnownHosts == "" {
		d = append(d, sdk.Errorf("known_hosts", "known_hosts must name a file holding the server's host key: host keys are always checked"))
	}
	if s.Path != "" {
		s.Path = path.Clean(s.Path)
	}
	return s, d
}

// addr is host:port, as known_hosts and errors name the server.
func (s settings) addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// url names a remote path for people.
func (s settings) url(p string) string {
	return fmt.Sprintf("sftp://%s@%s%s", s.User, s.addr(), p)
}

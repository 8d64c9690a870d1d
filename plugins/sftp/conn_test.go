package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// writeKnownHosts writes lines to a fresh known_hosts file.
func writeKnownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func otherKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	k, err := storetest.NewKey(filepath.Join(t.TempDir(), "other"), "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The server's host key is checked against known_hosts: an unknown or
// changed key is refused, naming the host and the key it offered, and
// nothing reaches the server's disk.
func TestHostKeyChecking(t *testing.T) {
	srv := storetest.StartSFTP(t)
	offered := ssh.FingerprintSHA256(srv.HostKey)
	other := otherKey(t)
	hostname := knownhosts.Normalize(srv.Addr())
	tests := []struct {
		name       string
		knownHosts string
		want       []string
	}{
		{"empty known_hosts", writeKnownHosts(t, "# nothing yet"),
			[]string{"host " + srv.Addr() + " is not in known_hosts file", "offered the ssh-ed25519 key " + offered}},
		{"known on another port", writeKnownHosts(t, knownhosts.Line([]string{knownhosts.Normalize("127.0.0.1:2222")}, srv.HostKey)),
			[]string{"is not in known_hosts file", offered}},
		{"changed key", writeKnownHosts(t, knownhosts.Line([]string{hostname}, other)),
			[]string{"host key of " + srv.Addr() + " does not match known_hosts file", "offered the ssh-ed25519 key " + offered,
				"expects ssh-ed25519 " + ssh.FingerprintSHA256(other) + " (line 1)", "refusing to connect"}},
		{"revoked key", writeKnownHosts(t, "@revoked * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))), knownhosts.Line([]string{hostname}, srv.HostKey)),
			[]string{"offered the ssh-ed25519 key " + offered + ", which", "revokes (line 1)"}},
		{"no known_hosts file", filepath.Join(t.TempDir(), "missing"), []string{"known_hosts", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.Operations(t))
			p := newPlugin(t)
			cfg := stageConfig(t, srv, map[string]cty.Value{"known_hosts": cty.StringVal(tt.knownHosts)})
			_, err := p.Put(context.Background(), cfg, "s1", "f", 1, strings.NewReader("x"))
			if err == nil {
				t.Fatal("Put succeeded")
			}
			t.Logf("Put: %v", err)
			ds := p.Preflight(context.Background(), cfg)
			if len(ds) != 1 || !ds[0].Error || ds[0].Attribute != "known_hosts" {
				t.Errorf("Preflight: %+v; want one error on known_hosts", ds)
			}
			for _, msg := range []string{err.Error(), ds[0].Summary} {
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%q does not say %q", msg, w)
					}
				}
			}
			if ops := srv.Operations(t)[before:]; len(ops) > 0 {
				t.Errorf("the server got a session: %q", ops)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	srv := storetest.StartSFTP(t)
	const passphrase = "correct horse battery staple"
	encrypted := filepath.Join(t.TempDir(), "id_encrypted")
	pub, err := storetest.NewKey(encrypted, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	srv.Authorize(t, pub)
	stranger := filepath.Join(t.TempDir(), "id_stranger")
	if _, err := storetest.NewKey(stranger, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		attr  string   // the attribute Preflight blames; "" for success
		want  []string // in the error
	}{
		{"encrypted key with its passphrase", map[string]cty.Value{"key_file": cty.StringVal(encrypted), "key_passphrase": cty.StringVal(passphrase)}, "", nil},
		{"encrypted key without passphrase", map[string]cty.Value{"key_file": cty.StringVal(encrypted)}, "key_file",
			[]string{"key_file " + encrypted + " is encrypted: set key_passphrase"}},
		{"wrong passphrase", map[string]cty.Value{"key_file": cty.StringVal(encrypted), "key_passphrase": cty.StringVal("wrong passphrase")}, "key_file",
			[]string{"key_passphrase does not decrypt key_file " + encrypted}},
		{"key the server does not know", map[string]cty.Value{"key_file": cty.StringVal(stranger)}, "",
			[]string{"log in to " + srv.Addr() + " as " + srv.User + " with key_file " + stranger, "unable to authenticate"}},
		{"wrong user", map[string]cty.Value{"user": cty.StringVal("nobody")}, "",
			[]string{"log in to " + srv.Addr() + " as nobody", "unable to authenticate"}},
		{"missing key file", map[string]cty.Value{"key_file": cty.StringVal("/nonexistent/id")}, "key_file",
			[]string{"key_file: open /nonexistent/id: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlugin(t)
			cfg := stageConfig(t, srv, tt.attrs)
			_, err := p.Put(context.Background(), cfg, "s1", "f", 1, strings.NewReader("x"))
			ds := p.Preflight(context.Background(), cfg)
			if tt.want == nil {
				if err != nil || len(ds) > 0 {
					t.Errorf("Put: %v; Preflight: %+v", err, ds)
				}
				return
			}
			if err == nil {
				t.Fatal("Put succeeded")
			}
			t.Logf("Put: %v", err)
			if len(ds) != 1 || !ds[0].Error || ds[0].Attribute != tt.attr {
				t.Errorf("Preflight: %+v; want one error on %q", ds, tt.attr)
			}
			for _, msg := range []string{err.Error(), ds[0].Summary} {
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%q does not say %q", msg, w)
					}
				}
				if strings.Contains(msg, passphrase) || strings.Contains(msg, "wrong passphrase") {
					t.Errorf("%q shows the passphrase", msg)
				}
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	srv := storetest.StartSFTP(t)
	file := filepath.Join(srv.Dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(base(srv), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		error bool
		want  string // "" for no diagnostic
	}{
		{"ok", nil, false, ""},
		{"path missing", map[string]cty.Value{"path": cty.StringVal(srv.Dir + "/later")}, false, "does not exist yet; the first upload creates it"},
		{"path is a file", map[string]cty.Value{"path": cty.StringVal(file)}, true, file + " is not a directory"},
		{"server down", map[string]cty.Value{"port": cty.NumberIntVal(1)}, true, "connect to 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newPlugin(t).Preflight(context.Background(), stageConfig(t, srv, tt.attrs))
			if tt.want == "" {
				if len(ds) > 0 {
					t.Errorf("diagnostics: %+v", ds)
				}
				return
			}
			if len(ds) != 1 || ds[0].Error != tt.error || !strings.Contains(ds[0].Summary, tt.want) {
				t.Errorf("diagnostics: %+v\nwant one (error: %v) saying %q", ds, tt.error, tt.want)
			}
		})
	}
	if _, err := os.Stat(srv.Dir + "/later"); !os.IsNotExist(err) {
		t.Errorf("Preflight created the path: %v", err)
	}
}

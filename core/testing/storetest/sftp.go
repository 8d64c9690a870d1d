package storetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Debian's OpenSSH server (packages openssh-server and openssh-sftp-server).
const (
	sshdPath       = "/usr/sbin/sshd"
	sftpServerPath = "/usr/lib/openssh/sftp-server"
)

// SFTP is a running OpenSSH server that serves SFTP to one user who logs in
// with a key.
type SFTP struct {
	Host string // 127.0.0.1
	Port int
	User string
	// KeyFile is the user's private key (ed25519, no passphrase).
	KeyFile string
	// KnownHosts holds the server's host key, as ssh-keyscan would write it.
	KnownHosts string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// Dir is an empty directory the user may write to: the store's base.
	Dir string

	mu             sync.Mutex
	authorizedKeys string
	opsLog         string
}

// Addr is host:port.
func (s *SFTP) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Stage is the body of a pipeline's `stage "store" "sftp"` block that
// copies sets to dir on this server.
func (s *SFTP) Stage(dir string) string {
	return fmt.Sprintf(`host        = %q
    port        = %d
    user        = %q
    key_file    = %q
    known_hosts = %q
    path        = %q`, s.Host, s.Port, s.User, s.KeyFile, s.KnownHosts, dir)
}

// StartSFTP runs a private sshd on 127.0.0.1 with a fresh host key, a fresh
// client key and its own configuration: public keys only, no PAM, the
// internal SFTP server.
func StartSFTP(t testing.TB) *SFTP { t.Helper(); return startSFTP(t, nil) }

// StartSFTPDenying is StartSFTP with an SFTP server that refuses the named
// requests (sftp-server -P, e.g. "remove", "rmdir"): an account without
// the right to delete.
func StartSFTPDenying(t testing.TB, requests ...string) *SFTP {
	t.Helper()
	return startSFTP(t, requests)
}

func startSFTP(t testing.TB, deny []string) *SFTP {
	t.Helper()
	for _, p := range []string{sshdPath, sftpServerPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("storetest: %s is missing: install Debian's openssh-server (bash scripts/stack.sh deps, or apt-get install openssh-server)", p)
		}
	}
	// sshd refuses to start without its privilege separation directory,
	// which only the package's service unit creates.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("storetest: create /run/sshd for sshd: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	base := t.TempDir()
	s := &SFTP{
		Host:           "127.0.0.1",
		User:           u.Username,
		KeyFile:        filepath.Join(base, "id_ed25519"),
		KnownHosts:     filepath.Join(base, "known_hosts"),
		Dir:            filepath.Join(base, "data"),
		authorizedKeys: filepath.Join(base, "authorized_keys"),
		opsLog:         filepath.Join(base, "sftp-server.log"),
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	hostKeyFile := filepath.Join(base, "ssh_host_ed25519_key")
	hostPub, err := NewKey(hostKeyFile, "")
	if err != nil {
		t.Fatalf("storetest: host key: %v", err)
	}
	s.HostKey = hostPub
	clientPub, err := NewKey(s.KeyFile, "")
	if err != nil {
		t.Fatalf("storetest: client key: %v", err)
	}
	s.Authorize(t, clientPub)

	srv := start(t, "sshd", base, "Address already in use", func(port int) *exec.Cmd {
		config := filepath.Join(base, fmt.Sprintf("sshd_config-%d", port))
		if err := os.WriteFile(config, []byte(sshdConfig(port, hostKeyFile, s.authorizedKeys, s.User, s.opsLog, deny)), 0o600); err != nil {
			t.Fatalf("storetest: %v", err)
		}
		// -D: stay in the foreground, our child; -e: log to stderr.
		return exec.Command(sshdPath, "-D", "-e", "-f", config)
	})
	s.Port = srv.port
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey)
	if err := os.WriteFile(s.KnownHosts, []byte(line+"\n"), 0o600); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return s
}

// sshdConfig serves SFTP with OpenSSH's sftp-server rather than
// internal-sftp: the same server, but its log of every operation can go to a
// file (sshd runs the subsystem through the user's shell).
func sshdConfig(port int, hostKey, authorizedKeys, user, opsLog string, deny []string) string {
	server := sftpServerPath + " -e -l INFO"
	if len(deny) > 0 {
		server += " -P " + strings.Join(deny, ",")
	}
	return fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile none
AuthorizedKeysFile %s
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
UsePAM no
StrictModes no
UseDNS no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel VERBOSE
MaxStartups 64
# bash sources ~/.bashrc for commands run by sshd unless it is nested:
# a SHLVL of 1 keeps a slow bashrc out of every session start.
SetEnv SHLVL=1
Subsystem sftp %s 2>>%s
`, port, hostKey, authorizedKeys, user, server, opsLog)
}

// Operations returns what the SFTP server logged of the clients' requests so
// far, one line each, oldest first, with the server's own wording, e.g.
// `remove name "/tmp/.../manifest.json"` or `rename old "a" new "b"`.
func (s *SFTP) Operations(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(s.opsLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("storetest: %v", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// Authorize lets one more public key log in as User.
func (s *SFTP) Authorize(t testing.TB, key ssh.PublicKey) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.authorizedKeys, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(key)); err != nil {
		t.Fatalf("storetest: %v", err)
	}
}

// NewKey writes a fresh ed25519 private key to path, encrypted with
// passphrase when it is not empty, and returns its public key.
func NewKey(path, passphrase string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

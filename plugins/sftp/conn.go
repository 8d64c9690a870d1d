package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const (
	// handshakeTimeout bounds the SSH handshake and login, for a server
	// that accepts connections and then says nothing.
	handshakeTimeout = time.Minute
	// cancelGrace is how long a cancelled call may go on using the
	// connection to clean up (remove its temporary file) before the
	// connection is closed under it.
	cancelGrace = 5 * time.Second
)

// conn is one logged-in SFTP session.
type conn struct {
	s    settings
	ssh  *ssh.Client
	sftp *sftp.Client
	base string // absolute remote directory of the sets
	once sync.Once
	stop func() bool
	home *plugin     // where Close leaves it for the next call; nil: Close ends it
	dead atomic.Bool // the SSH connection has ended
	// idleSince is when Close left it for the next call (plugin.keep).
	idleSince time.Time
}

// hostKeyError is a refused host key; errors.As finds it for diagnostics.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// keyError is a private key that cannot be used.
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// dial connects, checks the host key against known_hosts, logs in with the
// key and starts SFTP. When ctx ends, the connection is closed after
// cancelGrace at the latest (see watch).
func dial(ctx context.Context, s settings) (*conn, error) {
	signer, err := loadKey(s.KeyFile, s.KeyPassphrase)
	if err != nil {
		return nil, &keyError{err}
	}
	known, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		return nil, &hostKeyError{fmt.Sprintf("known_hosts: %v", err)}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.addr())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.addr(), err)
	}
	var refused error
	cfg := &ssh.ClientConfig{
		User: s.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			refused = explainHostKey(known(host, remote, key), host, key, s.KnownHosts)
			return refused
		},
		HostKeyAlgorithms: knownAlgorithms(known, s.addr(), nc.RemoteAddr()),
	}
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	unwatch := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, s.addr(), cfg)
	if !unwatch() {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		if refused != nil {
			return nil, refused
		}
		return nil, fmt.Errorf("log in to %s as %s with key_file %s: %w", s.addr(), s.User, s.KeyFile, err)
	}
	_ = nc.SetDeadline(time.Time{})
	c := &conn{s: s, ssh: ssh.NewClient(sc, chans, reqs)}
	// Writes go out many at a time; an upload goes to a temporary name,
	// so the holes a failure may leave are never seen.
	c.sftp, err = sftp.NewClient(c.ssh, sftp.UseConcurrentWrites(true))
	if err != nil {
		c.ssh.Close()
		return nil, fmt.Errorf("start SFTP on %s: %w", s.addr(), err)
	}
	go func() {
		c.ssh.Wait()
		c.dead.Store(true)
	}()
	c.watch(ctx)
	c.base = s.Path
	if !path.IsAbs(c.base) {
		wd, err := c.sftp.Getwd()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("find the login directory on %s: %w", s.addr(), err)
		}
		c.base = path.Join(wd, c.base)
	}
	return c, nil
}

func (c *conn) close() {
	c.once.Do(func() {
		c.sftp.Close()
		c.ssh.Close()
	})
}

// watch closes the connection cancelGrace after ctx ends, for the call
// that has it: a cancelled call stops even where the server does not
// answer.
func (c *conn) watch(ctx context.Context) {
	c.stop = context.AfterFunc(ctx, func() { time.AfterFunc(cancelGrace, c.close) })
}

// Close ends a call's use of the connection. One still up, whose call was
// not cancelled, waits for the next call (plugin.open); any other ends.
func (c *conn) Close() {
	if c.stop() && c.home != nil && !c.dead.Load() && c.home.keep(c) {
		return
	}
	c.close()
}

// loadKey reads a private key, decrypting it with passphrase when it is
// encrypted.
func loadKey(file, passphrase string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == "" {
			return nil, fmt.Errorf("key_file %s is encrypted: set key_passphrase", file)
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(b, []byte(passphrase))
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("key_passphrase does not decrypt key_file %s", file)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("key_file %s: %w", file, err)
	}
	return signer, nil
}

// explainHostKey turns the knownhosts verdict into words that name the host,
// the key it offered and the file, so that an administrator can check the
// fingerprint. Nothing is ever trusted on first use.
func explainHostKey(err error, host string, key ssh.PublicKey, file string) error {
	if err == nil {
		return nil
	}
	offered := fmt.Sprintf("%s key %s", key.Type(), ssh.FingerprintSHA256(key))
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return &hostKeyError{fmt.Sprintf("host %s is not in known_hosts file %s; it offered the %s. "+
			"Check that fingerprint with the server's administrator, then add the key to the file (ssh-keyscan prints it)", host, file, offered)}
	case errors.As(err, &ke):
		var want string
		for i, k := range ke.Want {
			if i > 0 {
				want += ", "
			}
			want += fmt.Sprintf("%s %s (line %d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Line)
		}
		return &hostKeyError{fmt.Sprintf("host key of %s does not match known_hosts file %s: it offered the %s, the file expects %s. "+
			"Either the server was reinstalled or someone is intercepting the connection: refusing to connect", host, file, offered, want)}
	case errors.As(err, &re):
		return &hostKeyError{fmt.Sprintf("host %s offered the %s, which %s revokes (line %d)", host, offered, re.Revoked.Filename, re.Revoked.Line)}
	}
	return &hostKeyError{fmt.Sprintf("check the host key of %s against %s: %v", host, file, err)}
}

// knownAlgorithms lists the host key algorithms known_hosts holds for the
// server, so that the server is asked for a key that can be checked rather
// than its favourite one. Nil (the defaults) when the host is unknown: the
// check then fails with the offered key's fingerprint.
func knownAlgorithms(known ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	// A key no host has makes the callback list the keys it knows.
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(known(knownhosts.Normalize(addr), remote, probe), &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	return algos
}

// Command mbk-plugin-sftp is the store plugin that copies committed sets to
// an SFTP server, logging in with a key and checking the server's host key
// against a known_hosts file: nothing is trusted on first use.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

const (
	version     = "0.1.0"
	defaultPort = 22
)

func main() {
	sdk.Main("sftp", func(log hclog.Logger) sdk.Plugin { return &plugin{log: log} })
}

type plugin struct {
	log hclog.Logger

	mu   sync.Mutex
	idle map[settings][]*conn // connections waiting for the next call
}

const (
	// maxIdle is how many connections to one server wait for reuse: the
	// core moves 4 blobs at a time.
	maxIdle = 8
	// idleFor is how long one waits at most. A connection that a NAT or
	// firewall dropped without a word would hang the call that took it;
	// within a run's store stage, calls follow each other by far less.
	idleFor = 20 * time.Second
)

var (
	_ sdk.Plugin      = (*plugin)(nil)
	_ sdk.Storer      = (*plugin)(nil)
	_ sdk.FileDeleter = (*plugin)(nil)
	_ sdk.Validator   = (*plugin)(nil)
	_ sdk.Preflighter = (*plugin)(nil)
)

func (p *plugin) Describe() sdk.Info {
	return sdk.Info{
		Name:        "sftp",
		Version:     version,
		Kinds:       []string{sdk.KindStore},
		Description: "Copies backup sets to an SFTP server, checking its host key.",
	}
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "host", Type: sdk.String, Required: true,
		Description: "SFTP server name or address."},
	{Name: "port", Type: sdk.Int, Default: cty.NumberIntVal(defaultPort),
		Description: "SSH port."},
	{Name: "user", Type: sdk.String, Required: true,
		Description: "Account to log in as."},
	{Name: "key_file", Type: sdk.String, Required: true,
		Description: "Private key (OpenSSH or PEM) to log in with."},
	{Name: "key_passphrase", Type: sdk.String, Sensitive: true,
		Description: "Passphrase of key_file, when it is encrypted."},
	{Name: "known_hosts", Type: sdk.String, Required: true,
		Description: "known_hosts file holding the server's host key; an unknown or changed key is refused."},
	{Name: "path", Type: sdk.String,
		Description: "Remote directory of the sets, created when missing; relative to the login directory unless absolute."},
}}

func (p *plugin) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindStore {
		return sdk.Schema{}, fmt.Errorf("the sftp plugin serves only the %s kind, not %q", sdk.KindStore, kind)
	}
	return schema, nil
}

func (p *plugin) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	_, d := load(cfg)
	return d
}

// Preflight logs in and looks at the remote directory. It writes nothing.
func (p *plugin) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	s, d := load(cfg)
	if d.HasErrors() {
		return d
	}
	c, err := dial(ctx, s)
	if err != nil {
		var hk *hostKeyError
		var ke *keyError
		switch {
		case errors.As(err, &hk):
			return append(d, sdk.Errorf("known_hosts", "%v", err))
		case errors.As(err, &ke):
			return append(d, sdk.Errorf("key_file", "%v", err))
		}
		return append(d, sdk.Errorf("", "%v", err))
	}
	defer c.Close()
	fi, err := c.sftp.Stat(c.base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d = append(d, sdk.Diagnostic{Attribute: "path", Summary: fmt.Sprintf("%s does not exist yet; the first upload creates it", c.s.url(c.base))})
	case err != nil:
		d = append(d, sdk.Errorf("path", "%s: %v", c.s.url(c.base), err))
	case !fi.IsDir():
		d = append(d, sdk.Errorf("path", "%s is not a directory", c.s.url(c.base)))
	}
	return d
}

// open loads a config for a store call and connects; the settings'
// diagnostics are the error.
func (p *plugin) open(ctx context.Context, cfg sdk.Config) (*conn, error) {
	s, d := load(cfg)
	for _, x := range d {
		if x.Error {
			return nil, fmt.Errorf("sftp settings: %s", x.Summary)
		}
	}
	if c := p.take(s); c != nil {
		c.watch(ctx)
		return c, nil
	}
	c, err := dial(ctx, s)
	if err != nil {
		return nil, err
	}
	c.home = p
	return c, nil
}

// take is a connection an earlier call left, still up, or nil. A pool's
// blobs are thousands of calls: each opened a connection of its own (an
// SSH handshake and login, tens of milliseconds to a remote server).
func (p *plugin) take(s settings) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := p.idle[s]; len(l) > 0; l = p.idle[s] {
		c := l[len(l)-1]
		p.idle[s] = l[:len(l)-1]
		if !c.dead.Load() && time.Since(c.idleSince) < idleFor {
			return c
		}
		c.close()
	}
	return nil
}

// keep leaves c for the next call, unless enough wait already.
func (p *plugin) keep(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle[c.s]) >= maxIdle {
		return false
	}
	if p.idle == nil {
		p.idle = map[settings][]*conn{}
	}
	c.idleSince = time.Now()
	p.idle[c.s] = append(p.idle[c.s], c)
	return true
}

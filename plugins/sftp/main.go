// Command mbk-plugin-sftp is the store plugin that copies committed sets to
// an SFTP server, logging in with a key and checking the server's host key
// against a known_hosts file: nothing is trusted on first use.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

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
}

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
	return dial(ctx, s)
}

// Command mbk-plugin-smtp is the notify plugin that mails a run's report
// through an SMTP server: implicit TLS, required STARTTLS or (on a trusted
// relay) plain text, with AUTH PLAIN, LOGIN or XOAUTH2.
package main

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

const version = "0.1.0"

func main() {
	sdk.Main("smtp", func(log hclog.Logger) sdk.Plugin { return &plugin{log: log} })
}

type plugin struct {
	log hclog.Logger
}

var (
	_ sdk.Plugin      = (*plugin)(nil)
	_ sdk.Notifier    = (*plugin)(nil)
	_ sdk.Validator   = (*plugin)(nil)
	_ sdk.Preflighter = (*plugin)(nil)
)

func (p *plugin) Describe() sdk.Info {
	return sdk.Info{
		Name:        "smtp",
		Version:     version,
		Kinds:       []string{sdk.KindNotify},
		Description: "Mails the run report (text and HTML) through an SMTP server.",
	}
}

// schema is the notify stage's settings. The core itself handles `on` and
// `timeout`, which every notify stage has, so they are not declared here.
var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "host", Type: sdk.String, Required: true,
		Description: "SMTP server name or address."},
	{Name: "port", Type: sdk.Int,
		Description: "SMTP server port; default 465 for tls = \"implicit\", 587 for \"starttls\", 25 for \"none\"."},
	{Name: "tls", Type: sdk.String, Default: cty.StringVal(tlsStartTLS),
		Description: "\"implicit\" (TLS from the first byte), \"starttls\" (required, never opportunistic) or \"none\"."},
	{Name: "ca_file", Type: sdk.String,
		Description: "PEM file of extra CAs to trust, for a server with a private CA. Verification is always on."},
	{Name: "insecure_skip_verify", Type: sdk.Bool, Default: cty.False,
		Description: "Do not verify the server's certificate. Anyone on the path can then read the password and the report."},
	{Name: "auth", Type: sdk.String,
		Description: "\"plain\", \"login\", \"xoauth2\" or \"none\"; default \"plain\" when username is set, else \"none\"."},
	{Name: "username", Type: sdk.String,
		Description: "Login name for AUTH."},
	{Name: "password", Type: sdk.String, Sensitive: true,
		Description: "Password for AUTH PLAIN and LOGIN."},
	{Name: "oauth2_token", Type: sdk.String, Sensitive: true,
		Description: "OAuth 2 access token for AUTH XOAUTH2 (Office 365, Gmail)."},
	{Name: "from", Type: sdk.String, Required: true,
		Description: "Sender, optionally with a display name: \"Moodle Backups <backups@example.com>\"."},
	{Name: "to", Type: sdk.List(sdk.String), Required: true,
		Description: "Recipients (at least one)."},
	{Name: "cc", Type: sdk.List(sdk.String),
		Description: "Copy recipients."},
	{Name: "bcc", Type: sdk.List(sdk.String),
		Description: "Blind copy recipients: in the envelope, not in the headers."},
	{Name: "subject", Type: sdk.String, Default: cty.StringVal(defaultSubject),
		Description: "Go text/template over the report (.Pipeline, .Host, .Set, .Status, ...) plus .Event and .Outcome (OK, FAILED, WARNING, TEST; in the pipeline's language: OK, FALLIDO, ADVERTENCIA, PRUEBA)."},
}}

func (p *plugin) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindNotify {
		return sdk.Schema{}, fmt.Errorf("the smtp plugin serves only the %s kind, not %q", sdk.KindNotify, kind)
	}
	return schema, nil
}

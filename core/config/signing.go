package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Signing is a pipeline's `signing {}` block: the minisign key pair that
// signs each set's manifest.json and SHA256SUMS as it is committed, and
// against whose public key verify, restore and drill check them.
type Signing struct {
	// PrivateKey is the private key file on the backup host; it is read
	// only by a run, so a machine that restores needs only Public.
	PrivateKey string
	// Passphrase decrypts a private key made with one (a secret).
	Passphrase string
	Public     minisign.PublicKey
	DeclRange  hcl.Range
}

type signingBlock struct {
	PrivateKey    string `hcl:"private_key,optional"`
	Passphrase    string `hcl:"passphrase,optional"`
	PublicKey     string `hcl:"public_key,optional"`
	PublicKeyFile string `hcl:"public_key_file,optional"`
}

// decodeSigning reads `signing { private_key, passphrase, public_key |
// public_key_file }`. The public key is read here, the private key only
// when a run signs.
func decodeSigning(blk *hclsyntax.Block, ctx *hcl.EvalContext, dir string) (*Signing, hcl.Diagnostics) {
	if len(blk.Labels) != 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unexpected label",
			Detail: "The signing block takes no label.", Subject: blk.LabelRanges[0].Ptr()}}
	}
	var b signingBlock
	diags := gohcl.DecodeBody(blk.Body, ctx, &b)
	if diags.HasErrors() {
		return nil, diags
	}
	s := &Signing{Passphrase: b.Passphrase, DeclRange: blk.DefRange()}
	at := func(name string) *hcl.Range {
		if a, ok := blk.Body.Attributes[name]; ok {
			return a.Expr.Range().Ptr()
		}
		return s.DeclRange.Ptr()
	}
	bad := func(name, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: at(name)})
	}
	if b.PrivateKey != "" {
		s.PrivateKey = b.PrivateKey
		if !filepath.IsAbs(s.PrivateKey) {
			s.PrivateKey = filepath.Join(dir, s.PrivateKey)
		}
	}
	text, from := b.PublicKey, "public_key"
	switch {
	case b.PublicKey != "" && b.PublicKeyFile != "":
		bad("public_key_file", "Conflicting settings", "Give the public key inline (public_key) or in a file (public_key_file), not both.")
		return s, diags
	case b.PublicKeyFile != "":
		p := b.PublicKeyFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			bad("public_key_file", "Cannot read public_key_file", err.Error())
			return s, diags
		}
		text, from = string(raw), "public_key_file"
	case b.PublicKey == "":
		bad("", "Missing public key", "The signing block needs public_key (the RW... line `mbk key generate` prints) or public_key_file: verify, restore and drill check each set against it.")
		return s, diags
	}
	if err := s.Public.UnmarshalText([]byte(strings.TrimSpace(text))); err != nil {
		bad(from, "Invalid public key", fmt.Sprintf("%s is not a minisign public key: %v.", from, err))
	}
	return s, diags
}

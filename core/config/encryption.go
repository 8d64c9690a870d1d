package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

type encryptionBlock struct {
	Recipients     []string `hcl:"recipients,optional"`
	RecipientsFile string   `hcl:"recipients_file,optional"`
}

// decodeEncryption reads `encryption { recipients = [...], recipients_file }`:
// age public keys. Only public keys live in the pipeline: the identity (the
// private key) is needed to restore, never to back up.
func decodeEncryption(blk *hclsyntax.Block, ctx *hcl.EvalContext, dir string) ([]age.Recipient, hcl.Diagnostics) {
	var e encryptionBlock
	diags := gohcl.DecodeBody(blk.Body, ctx, &e)
	if diags.HasErrors() {
		return nil, diags
	}
	var out []age.Recipient
	for i, r := range e.Recipients {
		rec, err := age.ParseX25519Recipient(strings.TrimSpace(r))
		if err != nil {
			subject := blk.DefRange()
			if a, ok := blk.Body.Attributes["recipients"]; ok {
				subject = a.Expr.Range()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid age recipient",
				Detail: fmt.Sprintf("recipients[%d] is not an age public key (age1...): %v", i, err), Subject: &subject})
			continue
		}
		out = append(out, rec)
	}
	if e.RecipientsFile != "" {
		p := e.RecipientsFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		subject := blk.Body.Attributes["recipients_file"].Expr.Range()
		f, err := os.Open(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read recipients_file", Detail: err.Error(), Subject: &subject})
		} else {
			recs, err := age.ParseRecipients(f)
			f.Close()
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid recipients_file", Detail: fmt.Sprintf("%s: %v", p, err), Subject: &subject})
			}
			out = append(out, recs...)
		}
	}
	if len(out) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No recipient",
			Detail: "The encryption block needs recipients (age public keys) or a recipients_file.", Subject: blk.DefRange().Ptr()})
	}
	return out, diags
}

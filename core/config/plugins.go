package config

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var pluginBlockSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "sha256", Required: true}}}

// decodePluginPins reads the file's `plugin "NAME" { sha256 = "<hex>" }`
// blocks: the binary mbk-plugin-NAME must have that sha256 to run, and with
// a pin a binary may replace the built-in plugin of its name.
func decodePluginPins(blocks hcl.Blocks, ctx *hcl.EvalContext) (map[string][]byte, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	pins := map[string][]byte{}
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		if name == "" || strings.ContainsAny(name, "/\\ \t") || !hclsyntax.ValidIdentifier(strings.ReplaceAll(name, "-", "_")) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid plugin name",
				Detail: fmt.Sprintf("%q cannot name a plugin: it is the NAME of a binary mbk-plugin-NAME, as a stage's second label gives it.", name), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		if prev, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate plugin block",
				Detail: fmt.Sprintf("Plugin %q is already pinned at %s.", name, prev), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		seen[name] = b.DefRange
		content, d := b.Body.Content(pluginBlockSchema)
		diags = append(diags, d...)
		a, ok := content.Attributes["sha256"]
		if !ok {
			continue
		}
		var sum string
		if d := decodeString(a, ctx, &sum); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		digest, err := hex.DecodeString(strings.TrimSpace(sum))
		if err != nil || len(digest) != 32 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid sha256",
				Detail:  fmt.Sprintf("sha256 is the 64 hexadecimal digits sha256sum prints for the binary mbk-plugin-%s, not %q.", name, sum),
				Subject: a.Expr.Range().Ptr()})
			continue
		}
		pins[name] = digest
	}
	return pins, diags
}

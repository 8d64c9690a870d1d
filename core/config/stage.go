package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/stream"
)

// coreAttrs are the stage attributes the core understands itself, per kind;
// everything else in a stage body belongs to the plugin's schema.
func coreAttrs(kind string) map[string]*hcldec.AttrSpec {
	attrs := map[string]*hcldec.AttrSpec{
		"name":    {Name: "name", Type: cty.String},
		"timeout": {Name: "timeout", Type: cty.String},
	}
	switch kind {
	case spec.KindDump, spec.KindArchive:
		attrs["compression"] = &hcldec.AttrSpec{Name: "compression", Type: cty.String}
		attrs["compression_level"] = &hcldec.AttrSpec{Name: "compression_level", Type: cty.Number}
		// The size alarms judge what the stage made, whatever made it.
		attrs["min_size"] = &hcldec.AttrSpec{Name: "min_size", Type: cty.DynamicPseudoType}
		attrs["max_shrink"] = &hcldec.AttrSpec{Name: "max_shrink", Type: cty.String}
	case spec.KindNotify:
		attrs["on"] = &hcldec.AttrSpec{Name: "on", Type: cty.List(cty.String)}
	case spec.KindStore:
		attrs["delete"] = &hcldec.AttrSpec{Name: "delete", Type: cty.Bool}
	}
	return attrs
}

// Settings is a stage bound to its plugin's schema: the core's own settings
// and the plugin's, decoded once. The stage itself stays as loaded.
type Settings struct {
	Timeout     time.Duration // 0: bounded by the pipeline's timeout only
	Compression string        // dump and archive
	// CompressionLevel is 0 for the compressor's default level.
	CompressionLevel int
	// Delete (store; default true) lets retention delete sets in the
	// store. With delete = false mbk only uploads there, and retention
	// says what it would delete: the credentials on the server need no
	// right to delete, and another host (mbk prune --store) or the
	// store's own lifecycle rules expire old sets.
	Delete bool
	// MinSize (dump and archive) is the smallest raw size (before
	// compression) an artifact may have without an alarm; 0 for none.
	MinSize int64
	// MaxShrink (dump and archive) is the largest drop, as a fraction, from
	// the previous complete set's same artifact (its raw size, its table or
	// file count) that raises no alarm.
	MaxShrink float64
	On        []string  // notify
	Config    cty.Value // the plugin's attributes only
	// Secrets are the values of the sensitive attributes.
	Secrets []string
}

// loader is the loader that read the stage's file, if known.
func (s *Stage) loader() *Loader {
	if s.pipeline == nil || s.pipeline.File == nil {
		return nil
	}
	return s.pipeline.File.loader
}

// Decode decodes the stage body against the plugin's schema plus the core's
// own attributes, reporting every problem with its source range.
func (s *Stage) Decode(schema spec.Schema) (Settings, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var out Settings
	hspec := hcldec.ObjectSpec{}
	core := coreAttrs(s.Kind)
	for name, a := range core {
		hspec[name] = a
	}
	for _, a := range schema.Attributes {
		if _, clash := core[a.Name]; clash {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin schema clashes with mbk",
				Detail:  fmt.Sprintf("Plugin %q declares %q, which mbk itself handles in %s stages; the plugin must rename it.", s.Plugin, a.Name, s.Kind),
				Subject: s.DeclRange.Ptr()})
			continue
		}
		if a.Type.Block() {
			nested := hcldec.ObjectSpec{}
			for name, ty := range a.Type.Cty().AttributeTypes() {
				nested[name] = &hcldec.AttrSpec{Name: name, Type: ty}
			}
			hspec[a.Name] = &hcldec.BlockSpec{TypeName: a.Name, Nested: nested, Required: a.Required}
			continue
		}
		hspec[a.Name] = &hcldec.AttrSpec{Name: a.Name, Type: a.Type.Cty(), Required: a.Required}
	}
	if diags.HasErrors() {
		return out, diags
	}
	// On errors hcldec still decodes what it can (unknown where a value is
	// wrong): keep checking the rest, so every mistake is reported at once.
	val, d := hcldec.Decode(s.Body, hspec, s.pipeline.ctx)
	diags = append(diags, d...)

	out.Compression = stream.DefaultCompression
	out.Delete = true
	out.MaxShrink = DefaultMaxShrink
	out.On = spec.DefaultEvents()
	if len(schema.Events) > 0 {
		out.On = append([]string(nil), schema.Events...)
	}
	for name := range core {
		v := val.GetAttr(name)
		if v.IsNull() || !v.IsWhollyKnown() {
			continue
		}
		a := s.Body.Attributes[name]
		switch name {
		case "timeout":
			t, err := time.ParseDuration(v.AsString())
			if err != nil || t <= 0 {
				diags = append(diags, attrError(a, fmt.Sprintf("timeout %q is not a positive duration such as \"30m\".", v.AsString())))
			}
			out.Timeout = t
		case "compression":
			c := v.AsString()
			if _, ok := stream.Lookup(c); !ok {
				names := stream.Names()
				diags = append(diags, attrError(a, fmt.Sprintf("compression %q is not one of %s.", c, strings.Join(names, ", "))+suggest(c, names)))
			}
			out.Compression = c
		case "compression_level":
			lvl, msg := compressionLevel(v, val.GetAttr("compression"))
			if msg != "" {
				diags = append(diags, attrError(a, msg))
				continue
			}
			out.CompressionLevel = lvl
		case "delete":
			out.Delete = v.True()
		case "min_size":
			n, msg := byteSize(v)
			if msg != "" {
				diags = append(diags, attrError(a, msg))
			}
			out.MinSize = n
		case "max_shrink":
			f, msg := percentage(v.AsString())
			if msg != "" {
				diags = append(diags, attrError(a, msg))
			}
			out.MaxShrink = f
		case "on":
			out.On = nil
			for _, e := range v.AsValueSlice() {
				if e.IsNull() || !slices.Contains(spec.Events(), e.AsString()) {
					diags = append(diags, attrError(a, fmt.Sprintf("on takes events among %q.", spec.Events())))
					continue
				}
				out.On = append(out.On, e.AsString())
			}
		}
	}

	plugin := map[string]cty.Value{}
	for _, a := range schema.Attributes {
		v := val.GetAttr(a.Name)
		plugin[a.Name] = v
		if err := a.Type.Check(v); err != nil {
			d := attrError(s.Body.Attributes[a.Name], fmt.Sprintf("%s is a %s: %v.", a.Name, a.Type, err))
			for _, b := range s.Body.Blocks {
				if b.Type == a.Name {
					d.Subject = b.DefRange().Ptr()
				}
			}
			diags = append(diags, d)
		}
		if a.Sensitive {
			s.loader().maskAttribute(s.Body.Attributes[a.Name])
		}
		if a.Sensitive && !v.IsNull() && v.IsKnown() && v.Type() == cty.String && v.AsString() != "" {
			out.Secrets = append(out.Secrets, v.AsString())
		}
	}
	s.loader().addSecrets(out.Secrets...)
	out.Config = cty.ObjectVal(plugin)
	if len(plugin) == 0 {
		out.Config = cty.EmptyObjectVal
	}
	return out, diags
}

// DefaultMaxShrink raises an alarm for an artifact less than half the size
// of the same artifact in the previous complete set.
const DefaultMaxShrink = 0.5

// byteSize reads min_size: a whole number of bytes, or a string with a
// unit ("200MiB", "1.5 GB"). msg says what is wrong, "" when nothing is.
func byteSize(v cty.Value) (int64, string) {
	const want = "min_size is a size such as \"50MiB\" or \"2 GB\", or a whole number of bytes"
	switch v.Type() {
	case cty.Number:
		var n int64
		if err := gocty.FromCtyValue(v, &n); err != nil || n < 0 {
			return 0, want + "."
		}
		return n, ""
	case cty.String:
		n, err := humanize.ParseBytes(v.AsString())
		if err != nil || n > math.MaxInt64 {
			return 0, fmt.Sprintf("%s, not %q.", want, v.AsString())
		}
		return int64(n), ""
	}
	return 0, fmt.Sprintf("%s, not a %s.", want, v.Type().FriendlyName())
}

// percentage reads max_shrink, "50%", as a fraction.
func percentage(s string) (float64, string) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || f <= 0 || f > 100 {
		return 0, fmt.Sprintf("max_shrink is a percentage above 0 and up to 100, such as \"50%%\" (the largest drop from the previous set that raises no alarm; \"100%%\" raises none), not %q.", s)
	}
	return f / 100, ""
}

// compressionLevel checks a stage's compression_level against the codec its
// compression attribute names (or the default), whichever of the two is
// decoded first, so that what validate accepts is what the stream writer
// takes. msg is the problem, "" when there is none. A level is not checked
// against a compression that is itself wrong: that is reported there.
func compressionLevel(level, compression cty.Value) (lvl int, msg string) {
	name := stream.DefaultCompression
	if !compression.IsNull() {
		name = ""
		if compression.IsWhollyKnown() && compression.Type() == cty.String {
			name = compression.AsString()
		}
	}
	c, known := stream.Lookup(name)
	if known && !c.TakesLevel() {
		return 0, stream.CheckLevel(name, 0).Error() + "."
	}
	if err := gocty.FromCtyValue(level, &lvl); err != nil {
		if known {
			return 0, fmt.Sprintf("compression_level is a whole number: %s takes %s.", name, c.Levels())
		}
		return 0, "compression_level is a whole number."
	}
	if known {
		if err := stream.CheckLevel(name, lvl); err != nil {
			return 0, err.Error() + "."
		}
	}
	return lvl, ""
}

// PluginDiagnostics turns a plugin's verdict on this stage into HCL
// diagnostics that point at the attribute at fault.
func (s *Stage) PluginDiagnostics(ds spec.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		sev := hcl.DiagWarning
		if d.Error {
			sev = hcl.DiagError
		}
		subject := s.DeclRange
		if a, ok := s.Body.Attributes[d.Attribute]; ok {
			subject = a.Expr.Range()
			if d.Error {
				// A refused setting may hold a secret the plugin does not
				// repeat (extra_args = ["-pSECRET"]): its line is quoted
				// masked.
				s.loader().maskAttribute(a)
			}
		}
		for _, b := range s.Body.Blocks {
			if d.Attribute != "" && b.Type == d.Attribute {
				subject = b.DefRange()
			}
		}
		summary := d.Summary
		if d.Attribute != "" {
			summary = fmt.Sprintf("%s: %s", d.Attribute, d.Summary)
		}
		out = append(out, &hcl.Diagnostic{Severity: sev, Summary: fmt.Sprintf("%s %s", s.ID(), summary), Detail: d.Detail, Subject: &subject})
	}
	return out
}

// Diagnose wraps a runtime error about a stage as a diagnostic pointing at it.
func (s *Stage) Diagnose(summary string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf("%s: %s", s.ID(), err), Subject: s.DeclRange.Ptr()}
}

package config

import (
	"fmt"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}},
}

// variables evaluates `variable` blocks. A value comes from --var, then
// MBK_VAR_<name>, then the default. Values given as text (--var, the
// environment) are parsed as HCL when the type is not string, so
// --var retention_days=14 and --var 'to=["a@x"]' both work.
func (l *Loader) variables(blocks hcl.Blocks, funcs map[string]function.Function) (map[string]cty.Value, []string, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vals := map[string]cty.Value{}
	var secrets []string
	declared := map[string]bool{}
	defaultsCtx := &hcl.EvalContext{Functions: funcs}
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid variable name",
				Detail: fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes.", name), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		if declared[name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate variable",
				Detail: fmt.Sprintf("Variable %q is declared twice.", name), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		declared[name] = true
		content, d := b.Body.Content(variableSchema)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		ty := cty.DynamicPseudoType
		if a, ok := content.Attributes["type"]; ok {
			t, d := typeexpr.TypeConstraint(a.Expr)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			ty = t
		}
		sensitive := false
		if a, ok := content.Attributes["sensitive"]; ok {
			v, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			if !d.HasErrors() && v.Type() == cty.Bool && v.True() {
				sensitive = true
			}
		}

		var val cty.Value
		var subject *hcl.Range = b.DefRange.Ptr()
		text, fromText := l.Vars[name]
		source := fmt.Sprintf("--var %s", name)
		if !fromText {
			text, fromText = os.LookupEnv("MBK_VAR_" + name)
			source = "MBK_VAR_" + name
		}
		switch {
		case fromText:
			v, err := parseVarText(text, ty)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
					Detail: fmt.Sprintf("%s: %s", source, err), Subject: subject})
				continue
			}
			val = v
		case content.Attributes["default"] != nil:
			a := content.Attributes["default"]
			v, d := a.Expr.Value(defaultsCtx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			val = v
			subject = a.Expr.Range().Ptr()
		default:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Variable has no value",
				Detail: fmt.Sprintf("Variable %q has no default: set it with --var %s=VALUE or the environment variable MBK_VAR_%s.", name, name, name), Subject: subject})
			continue
		}
		cv, err := convert.Convert(val, ty)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail: fmt.Sprintf("Variable %q must be %s: %s.", name, typeexpr.TypeString(ty), err), Subject: subject})
			continue
		}
		vals[name] = cv
		if sensitive && cv.Type() == cty.String && !cv.IsNull() && cv.AsString() != "" {
			secrets = append(secrets, cv.AsString())
		}
	}
	for name := range l.Vars {
		if !declared[name] {
			// An error, not a warning: a mistyped --var would otherwise
			// be ignored and the run go ahead with the default.
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable",
				Detail: fmt.Sprintf("--var %s names no variable declared in this file.", name)})
		}
	}
	return vals, secrets, diags
}

func parseVarText(text string, ty cty.Type) (cty.Value, error) {
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(text), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(text), "<value>", hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("cannot parse %q: %s", text, diags[0].Summary)
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("cannot evaluate %q: %s", text, diags[0].Summary)
	}
	return v, nil
}

// evalLocals evaluates locals in dependency order, so one local may use
// another wherever it is written.
func evalLocals(blocks hcl.Blocks, ctx *hcl.EvalContext) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	pending := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range attrs {
			if _, dup := pending[name]; dup {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate local",
					Detail: fmt.Sprintf("local.%s is defined twice.", name), Subject: a.NameRange.Ptr()})
				continue
			}
			pending[name] = a
		}
	}
	done := map[string]cty.Value{}
	for len(pending) > 0 {
		progressed := false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					continue
				}
				if step, ok := tr[1].(hcl.TraverseAttr); ok {
					if _, isPending := pending[step.Name]; isPending && step.Name != name {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			c := ctx.NewChild()
			c.Variables = map[string]cty.Value{"local": cty.ObjectVal(done)}
			v, d := a.Expr.Value(c)
			diags = append(diags, d...)
			if !d.HasErrors() {
				done[name] = v
			}
			delete(pending, name)
			progressed = true
		}
		if !progressed {
			for _, name := range names {
				a := pending[name]
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Circular locals",
					Detail: fmt.Sprintf("local.%s depends on itself through other locals.", name), Subject: a.Expr.Range().Ptr()})
			}
			break
		}
	}
	return done, diags
}

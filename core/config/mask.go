package config

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// A diagnostic quotes the source lines it points at, and HCL adds the
// values of the variables its expression reads. Neither may show a secret:
// the loader remembers which source bytes hold secret values and which
// values are secret, and WriteDiagnostics masks both.
//
// Secret source is the literal part of the value of: a stage attribute its
// plugin's schema calls Sensitive (known once the stage is decoded); an
// attribute a plugin refused (it may hold a secret the plugin will not
// repeat, as `extra_args = ["-pSECRET"]`); a sensitive variable's default;
// and, until a schema says otherwise or when there is none (a plugin that
// cannot start, a file that does not parse), any attribute whose name says
// it holds a secret (sensitiveName).

// sensitiveWords are the parts of an attribute's name that say it holds a
// secret: password, secret_key, key_passphrase, oauth2_token, identity...
var sensitiveWords = []string{"password", "passwd", "secret", "passphrase", "token", "identity", "credential", "private"}

// sensitiveName reports whether an attribute called name likely holds a
// secret, for the attributes no schema describes.
func sensitiveName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return n == "key" || strings.HasSuffix(n, "_key") || strings.HasSuffix(n, "_pwd") || n == "pwd"
}

// span is a byte range of a source file, [start, end).
type span struct{ start, end int }

// maskExpr hides the literal values in expr wherever a diagnostic quotes
// its lines, except the names env() reads (they are no secret, and they
// say which variable to set).
func (l *Loader) maskExpr(expr hcl.Expression) {
	e, ok := expr.(hclsyntax.Expression)
	if l == nil || !ok {
		return
	}
	var skip []hcl.Range
	var spans []span
	hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		switch n := n.(type) {
		case *hclsyntax.FunctionCallExpr:
			if n.Name == "env" && len(n.Args) > 0 {
				skip = append(skip, n.Args[0].Range())
			}
		case *hclsyntax.LiteralValueExpr:
			r := n.SrcRange
			for _, s := range skip {
				if s.Filename == r.Filename && s.Start.Byte <= r.Start.Byte && r.End.Byte <= s.End.Byte {
					return nil
				}
			}
			spans = append(spans, span{r.Start.Byte, r.End.Byte})
		}
		return nil
	})
	if len(spans) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.masks == nil {
		l.masks = map[string][]span{}
	}
	name := e.Range().Filename
	l.masks[name] = append(l.masks[name], spans...)
}

// maskAttribute hides an attribute's literal values (maskExpr).
func (l *Loader) maskAttribute(a *hclsyntax.Attribute) {
	if a != nil {
		l.maskExpr(a.Expr)
	}
}

// addSecrets records values no diagnostic may print.
func (l *Loader) addSecrets(secrets ...string) {
	if l != nil {
		l.redactor.Add(secrets...)
	}
}

// maskByName hides, in a parsed file, the values of the attributes whose
// names say they hold a secret, and the defaults of sensitive variables.
func (l *Loader) maskByName(body *hclsyntax.Body) {
	for name, a := range body.Attributes {
		if sensitiveName(name) {
			l.maskAttribute(a)
		}
	}
	for _, b := range body.Blocks {
		if b.Type == "variable" && len(b.Labels) == 1 {
			if sensitiveName(b.Labels[0]) || literalTrue(b.Body.Attributes["sensitive"]) {
				l.maskAttribute(b.Body.Attributes["default"])
				l.mu.Lock()
				l.sensitiveVars[b.Labels[0]] = true
				l.mu.Unlock()
			}
		}
		l.maskByName(b.Body)
	}
}

// literalTrue reports whether an attribute is the literal true.
func literalTrue(a *hclsyntax.Attribute) bool {
	if a == nil {
		return false
	}
	v, diags := a.Expr.Value(nil)
	return !diags.HasErrors() && v.Type() == cty.Bool && v.True()
}

// assignment finds `name = value` on a line, for a file that does not parse.
var assignment = regexp.MustCompile(`(?m)^[ \t]*"?([A-Za-z0-9_-]+)"?[ \t]*=[ \t]*(.*)$`)

// maskLines hides the values of sensitive-looking assignments line by line:
// a file that does not parse has no syntax tree to say where values end.
func (l *Loader) maskLines(filename string, src []byte) {
	var spans []span
	for _, m := range assignment.FindAllSubmatchIndex(src, -1) {
		if sensitiveName(string(src[m[2]:m[3]])) {
			spans = append(spans, span{m[4], m[5]})
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.masks == nil {
		l.masks = map[string][]span{}
	}
	l.masks[filename] = append(l.masks[filename], spans...)
}

// WriteDiagnostics prints diags as HCL does (file, line, column, the source
// lines quoted and the values the expression read), with every secret the
// loader knows of masked: secret source bytes become '*' (one per byte, so
// that columns still point right), a variable's value is left out when it
// holds a secret, and known secret values are masked wherever they appear.
func (l *Loader) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, width uint, color bool) error {
	l.mu.Lock()
	files := map[string]*hcl.File{}
	for name, f := range l.parser.Files() {
		masks := l.masks[name]
		if len(masks) == 0 || f == nil {
			files[name] = f
			continue
		}
		b := bytes.Clone(f.Bytes)
		for _, m := range masks {
			for i := m.start; i < m.end && i < len(b); i++ {
				if b[i] != '\n' && b[i] != '\r' {
					b[i] = '*'
				}
			}
		}
		c := *f
		c.Bytes = b
		files[name] = &c
	}
	l.mu.Unlock()
	out := make(hcl.Diagnostics, 0, len(diags))
	seen := map[string]bool{}
	for _, d := range diags {
		// Each pipeline of a file reports what is wrong with the file
		// itself (its env_file): once is enough.
		key := fmt.Sprint(d.Severity, d.Summary, d.Detail, d.Subject)
		if seen[key] {
			continue
		}
		seen[key] = true
		c := *d
		c.Summary, c.Detail = l.redactor.String(c.Summary), l.redactor.String(c.Detail)
		if c.Expression != nil && c.EvalContext != nil && l.revealsSecret(c.Expression, c.EvalContext) {
			c.Expression, c.EvalContext = nil, nil
		}
		out = append(out, &c)
	}
	var buf bytes.Buffer
	if err := hcl.NewDiagnosticTextWriter(&buf, files, width, color).WriteDiagnostics(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, l.redactor.String(buf.String()))
	return err
}

// revealsSecret reports whether HCL would print a secret among the values
// expr reads in ctx: a sensitive variable, or a value holding a known
// secret.
func (l *Loader) revealsSecret(expr hcl.Expression, ctx *hcl.EvalContext) bool {
	for _, tr := range expr.Variables() {
		if tr.RootName() == "var" && len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				l.mu.Lock()
				sensitive := l.sensitiveVars[a.Name]
				l.mu.Unlock()
				if sensitive {
					return true
				}
			}
		}
		v, diags := tr.TraverseAbs(ctx)
		if diags.HasErrors() || !v.IsWhollyKnown() {
			continue
		}
		if s := v.GoString(); l.redactor.String(s) != s {
			return true
		}
	}
	return false
}

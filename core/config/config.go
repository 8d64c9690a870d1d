// Package config reads pipeline files: mbk's own HCL grammar, evaluated in
// phases (env_file, variables, locals, pipelines), with each stage body left
// undecoded until its plugin's schema is known.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/joho/godotenv"
	"github.com/robfig/cron/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/redact"
)

// File is one parsed pipeline file.
type File struct {
	Path      string
	EnvFile   string
	PluginDir string
	// Pins are the sha256 digests the file's plugin "NAME" {} blocks pin
	// plugin binaries to.
	Pins      map[string][]byte
	Pipelines []*Pipeline
	secrets   []string
	loader    *Loader
	// env is the env_file read, if any (CheckEnvFile).
	env *envFile
}

// Pipeline is one `pipeline "name" {}` block.
type Pipeline struct {
	Name      string
	File      *File
	DeclRange hcl.Range
	Root      string
	RootRange hcl.Range // the root attribute's
	Schedule  string
	Cron      cron.Schedule // nil without schedule
	Timezone  string
	Location  *time.Location
	Timeout   time.Duration
	// Parallel runs the dump stages and the archive stages side by side
	// (default true): the database dump is bound by the server's one
	// thread, which leaves a core for the files.
	Parallel bool
	// SafetyCopyDays is how long retention keeps the safety copy a
	// restore takes of the site before overwriting it.
	SafetyCopyDays int
	// Language is what the pipeline's messages for people (its e-mails)
	// are written in: "en" (the default) or "es". Cron and the daemon run
	// without a locale, so the pipeline says it.
	Language string
	Stages   []*Stage
	// Maintenance, when set, puts Moodle in maintenance mode while the
	// database and files are copied.
	Maintenance *Maintenance
	// Recipients, when set, encrypt every artifact (age).
	Recipients []age.Recipient
	// Drill, when set, schedules `mbk drill` and says how it drills.
	Drill *Drill
	// Verify, when set, schedules `mbk verify --scheduled`: the store's
	// missing sets copied, then a rotating part of it read back.
	Verify *Verify
	// Signing, when set, signs every set and makes verify, restore and
	// drill refuse a set its public key does not verify.
	Signing *Signing
	// MaxAge is how old the newest complete set may be before `mbk
	// status` says CRITICAL; 0 for the default (AgeLimit).
	MaxAge time.Duration
	// MetricsFile, when set, is the node_exporter textfile every run of
	// the pipeline rewrites (atomically).
	MetricsFile string
	// CatchUp has `mbk daemon` run a schedule it missed while the
	// machine was off (or the daemon stopped) once at start.
	CatchUp bool
	ctx     *hcl.EvalContext
}

// DefaultTimeout bounds a run whose pipeline sets no timeout: a backup must
// never hang forever and hold the lock.
const DefaultTimeout = 6 * time.Hour

// Stage is one `stage "kind" "plugin" ["name"] {}` block.
type Stage struct {
	Kind      string
	Plugin    string
	Name      string // the third label, the name attribute, or the plugin name
	DeclRange hcl.Range
	Body      *hclsyntax.Body
	pipeline  *Pipeline
}

// ID names a stage in messages: `dump "mysql"` or `dump "mysql" "moodle"`.
func (s *Stage) ID() string {
	if s.Name != s.Plugin {
		return fmt.Sprintf("%s %q %q", s.Kind, s.Plugin, s.Name)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Plugin)
}

// Secrets returns the sensitive values the file itself holds: sensitive
// variables and what env_file set. The sensitive settings of stages are
// known once each is decoded against its plugin's schema (Settings.Secrets).
func (p *Pipeline) Secrets() []string {
	out := append([]string(nil), p.File.secrets...)
	if p.Signing != nil && p.Signing.Passphrase != "" {
		out = append(out, p.Signing.Passphrase)
	}
	return out
}

// Stages of one kind, in file order.
func (p *Pipeline) StagesOf(kind string) []*Stage {
	var out []*Stage
	for _, s := range p.Stages {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// Loader parses pipeline files and keeps their sources for diagnostics,
// with what in them is secret (mask.go).
type Loader struct {
	parser *hclparse.Parser
	// Vars are --var name=value settings; they win over MBK_VAR_name.
	Vars map[string]string

	mu sync.Mutex
	// masks are the source bytes no quoted line may show, by file name.
	masks map[string][]span
	// sensitiveVars are the variables whose values no diagnostic shows.
	sensitiveVars map[string]bool
	// redactor masks the secret values known so far.
	redactor *redact.Redactor
}

// NewLoader makes a loader.
func NewLoader(vars map[string]string) *Loader {
	return &Loader{parser: hclparse.NewParser(), Vars: vars, sensitiveVars: map[string]bool{}, redactor: &redact.Redactor{}}
}

// Expand turns files and directories into the list of pipeline files: a
// directory contributes its *.hcl files, sorted.
func Expand(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.hcl"))
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no *.hcl pipeline files in this directory", p)
		}
		sort.Strings(matches)
		out = append(out, matches...)
	}
	return out, nil
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "env_file"}, {Name: "plugin_dir"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "plugin", LabelNames: []string{"name"}},
		{Type: "pipeline", LabelNames: []string{"name"}},
	},
}

// Load parses and evaluates one file. Stage bodies stay undecoded: call
// Stage.Decode with the plugin's schema.
// maxSyntaxErrors is how many of a file's syntax errors are reported. A
// damaged or binary file makes one per stray byte, each shown with its
// line: a 7 KB file of them printed 45,000 lines and took seconds.
const maxSyntaxErrors = 10

// capSyntaxErrors keeps the first maxSyntaxErrors diagnostics and says how
// many more there were.
func capSyntaxErrors(diags hcl.Diagnostics) hcl.Diagnostics {
	if len(diags) <= maxSyntaxErrors {
		return diags
	}
	more := len(diags) - maxSyntaxErrors
	out := append(diags[:maxSyntaxErrors:maxSyntaxErrors], &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too many syntax errors",
		Detail: fmt.Sprintf("%d more are not shown: fix the ones above first (a file with this many may be damaged, or not a pipeline file at all).", more)})
	return out
}

func (l *Loader) Load(path string) (*File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read pipeline file", Detail: err.Error()}}
	}
	f, diags := l.parser.ParseHCL(src, path)
	if diags.HasErrors() {
		l.maskLines(path, src)
		return nil, capSyntaxErrors(diags)
	}
	if body, ok := f.Body.(*hclsyntax.Body); ok {
		l.maskByName(body)
	}
	// Content returns what it recognised even when it reports unknown
	// items: keep going, so every mistake in the file is reported at once.
	content, d := f.Body.Content(fileSchema)
	diags = append(diags, d...)
	file := &File{Path: path, loader: l}
	dir := filepath.Dir(path)

	// Phase 1: env_file and plugin_dir, literal strings (env() may not read
	// a file that is not loaded yet).
	literal := &hcl.EvalContext{}
	env := envLookup{}
	if a, ok := content.Attributes["env_file"]; ok {
		diags = append(diags, decodeString(a, literal, &file.EnvFile)...)
		if file.EnvFile != "" {
			p := file.EnvFile
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			vals, err := godotenv.Read(p)
			switch {
			case errors.Is(err, os.ErrNotExist):
				// Not fatal by itself: every env() it should have answered
				// fails next, naming the variable that is missing.
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "env_file not found",
					Detail: fmt.Sprintf("%s does not exist; env() reads the process environment only.", p), Subject: a.Expr.Range().Ptr()})
			case err != nil:
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read env_file", Detail: err.Error(), Subject: a.Expr.Range().Ptr()})
			default:
				file.env = newEnvFile(p, a.Expr.Range(), vals)
			}
			env.file, env.record = vals, file.env
		}
	}
	if a, ok := content.Attributes["plugin_dir"]; ok {
		diags = append(diags, decodeString(a, literal, &file.PluginDir)...)
		if file.PluginDir != "" && !filepath.IsAbs(file.PluginDir) {
			file.PluginDir = filepath.Join(dir, file.PluginDir)
		}
	}
	funcs := functions(env)

	// Phase 2: variables.
	vars, secrets, d := l.variables(content.Blocks.OfType("variable"), funcs)
	diags = append(diags, d...)
	file.secrets = secrets
	l.addSecrets(secrets...)

	// Phase 3: locals.
	ctx := &hcl.EvalContext{Functions: funcs, Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}}
	locals, d := evalLocals(content.Blocks.OfType("locals"), ctx)
	diags = append(diags, d...)
	ctx.Variables["local"] = cty.ObjectVal(locals)

	pins, d := decodePluginPins(content.Blocks.OfType("plugin"), ctx)
	diags = append(diags, d...)
	file.Pins = pins

	// Phase 4: pipelines.
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks.OfType("pipeline") {
		name := b.Labels[0]
		if name == "" || !hclsyntax.ValidIdentifier(strings.ReplaceAll(name, "-", "_")) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid pipeline name",
				Detail: fmt.Sprintf("%q cannot name a pipeline: use letters, digits, underscores and dashes, starting with a letter (it is typed in --pipeline and in restore's confirmation).", name), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		if prev, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate pipeline",
				Detail: fmt.Sprintf("A pipeline named %q is already defined at %s.", name, prev), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		seen[name] = b.DefRange
		p, d := decodePipeline(b, ctx, file)
		diags = append(diags, d...)
		if p != nil {
			file.Pipelines = append(file.Pipelines, p)
		}
	}
	if len(content.Blocks.OfType("pipeline")) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No pipeline",
			Detail: `The file defines no pipeline "NAME" {} block.`, Subject: f.Body.MissingItemRange().Ptr()})
	}
	return file, diags
}

func decodeString(a *hcl.Attribute, ctx *hcl.EvalContext, into *string) hcl.Diagnostics {
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	if v.IsNull() || !v.Type().Equals(cty.String) {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Expected a string",
			Detail: fmt.Sprintf("%q must be a string.", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	*into = v.AsString()
	return nil
}

// Pipeline finds a pipeline by name; "" means the only one in the file.
func (f *File) Pipeline(name string) (*Pipeline, error) {
	if name == "" {
		if len(f.Pipelines) == 1 {
			return f.Pipelines[0], nil
		}
		var names []string
		for _, p := range f.Pipelines {
			names = append(names, p.Name)
		}
		return nil, fmt.Errorf("%s defines %d pipelines (%s): choose one with --pipeline", f.Path, len(f.Pipelines), strings.Join(names, ", "))
	}
	for _, p := range f.Pipelines {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%s defines no pipeline %q", f.Path, name)
}

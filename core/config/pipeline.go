package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/robfig/cron/v3"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/mbk-backup/mbk/core/i18n"
)

// CronParser is the schedule syntax: five fields or a descriptor (@daily).
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var pipelineAttrs = []string{"root", "schedule", "timezone", "timeout", "parallel", "safety_copy_days", "max_age", "metrics_file", "catch_up", "language"}

// singleBlocks are the blocks a pipeline holds at most one of.
var singleBlocks = []string{"maintenance", "encryption", "drill", "verify", "signing"}

// DefaultSafetyCopyDays is how long retention keeps a restore's safety copy.
const DefaultSafetyCopyDays = 7

func decodePipeline(b *hcl.Block, ctx *hcl.EvalContext, file *File) (*Pipeline, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	body, ok := b.Body.(*hclsyntax.Body)
	if !ok {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsupported syntax",
			Detail: "Pipelines are written in HCL native syntax (.hcl), not JSON.", Subject: b.DefRange.Ptr()}}
	}
	p := &Pipeline{Name: b.Labels[0], File: file, DeclRange: b.DefRange, Timezone: "Local", Timeout: DefaultTimeout, Parallel: true, SafetyCopyDays: DefaultSafetyCopyDays, Language: "en", ctx: ctx}

	for name, a := range body.Attributes {
		if !slices.Contains(pipelineAttrs, name) {
			diags = append(diags, unsupported("argument", name, pipelineAttrs, a.NameRange))
			continue
		}
		v, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if name == "safety_copy_days" {
			var n int
			if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number || gocty.FromCtyValue(v, &n) != nil || n < 1 {
				diags = append(diags, attrError(a, "safety_copy_days is a whole number of days, 1 or more: how long retention keeps the copy of the site a restore takes first."))
				continue
			}
			p.SafetyCopyDays = n
			continue
		}
		if name == "parallel" || name == "catch_up" {
			if v.IsNull() || !v.IsKnown() || v.Type() != cty.Bool {
				diags = append(diags, attrError(a, fmt.Sprintf("%s must be true or false, not %s.", name, v.Type().FriendlyName())))
				continue
			}
			if name == "parallel" {
				p.Parallel = v.True()
			} else {
				p.CatchUp = v.True()
			}
			continue
		}
		s, err := asString(v)
		if err != nil {
			diags = append(diags, attrError(a, fmt.Sprintf("%q must be a string: %s.", name, err)))
			continue
		}
		switch name {
		case "root":
			p.Root, p.RootRange = s, a.SrcRange
		case "schedule":
			p.Schedule = s
		case "timezone":
			p.Timezone = s
		case "language":
			if !slices.Contains(i18n.Codes, s) {
				diags = append(diags, attrError(a, fmt.Sprintf("language %q is not one mbk speaks: use \"en\" (English) or \"es\" (Spanish), the language of the e-mails people get.", s)))
				continue
			}
			p.Language = s
		case "timeout":
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				diags = append(diags, attrError(a, fmt.Sprintf("timeout %q is not a positive duration such as \"90m\" or \"2h\".", s)))
				continue
			}
			p.Timeout = d
		case "max_age":
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				diags = append(diags, attrError(a, fmt.Sprintf("max_age %q is not a positive duration such as \"26h\": how old the newest set may be before mbk status says CRITICAL.", s)))
				continue
			}
			p.MaxAge = d
		case "metrics_file":
			if !strings.HasSuffix(s, ".prom") {
				diags = append(diags, attrError(a, fmt.Sprintf("metrics_file %q must end in .prom: node_exporter's textfile collector reads only those.", s)))
				continue
			}
			if !filepath.IsAbs(s) {
				s = filepath.Join(filepath.Dir(file.Path), s)
			}
			p.MetricsFile = s
		}
	}
	if p.Root == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
			Detail: fmt.Sprintf("Pipeline %q needs root: the directory its backup sets go to.", p.Name), Subject: b.DefRange.Ptr()})
	}
	loc, err := loadLocation(p.Timezone)
	if err != nil {
		diags = append(diags, attrError(body.Attributes["timezone"], fmt.Sprintf("Unknown timezone %q: use an IANA name such as \"Europe/Madrid\", \"UTC\" or \"Local\".", p.Timezone)))
	}
	p.Location = loc
	if p.Schedule != "" {
		sched, err := ParseSchedule(p.Schedule)
		if err != nil {
			diags = append(diags, attrError(body.Attributes["schedule"], fmt.Sprintf("schedule %q is not a cron expression: %s. Use five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\", or @daily.", p.Schedule, err)))
		} else {
			p.Cron = sched
		}
	}
	if a, ok := body.Attributes["catch_up"]; ok && p.CatchUp && p.Schedule == "" {
		diags = append(diags, attrError(a, "catch_up runs a missed schedule once at start: the pipeline has no schedule to miss."))
	}

	seen := map[string]hcl.Range{}
	once := map[string]bool{}
	for _, blk := range body.Blocks {
		if slices.Contains(singleBlocks, blk.Type) {
			if once[blk.Type] {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate " + blk.Type + " block",
					Detail: "A pipeline has at most one " + blk.Type + " block.", Subject: blk.DefRange().Ptr()})
				continue
			}
			once[blk.Type] = true
			var d hcl.Diagnostics
			switch blk.Type {
			case "maintenance":
				p.Maintenance, d = decodeMaintenance(blk, ctx)
			case "encryption":
				p.Recipients, d = decodeEncryption(blk, ctx, filepath.Dir(file.Path))
			case "drill":
				p.Drill, d = decodeDrill(blk, ctx, filepath.Dir(file.Path))
			case "verify":
				p.Verify, d = decodeVerify(blk, ctx)
			case "signing":
				p.Signing, d = decodeSigning(blk, ctx, filepath.Dir(file.Path))
			}
			diags = append(diags, d...)
			continue
		}
		if blk.Type != "stage" {
			diags = append(diags, unsupported("block type", blk.Type, append([]string{"stage"}, singleBlocks...), blk.TypeRange))
			continue
		}
		s, d := newStage(blk, p)
		diags = append(diags, d...)
		if s == nil {
			continue
		}
		key := s.Kind + "/" + s.Name
		if prev, dup := seen[key]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate stage",
				Detail:  fmt.Sprintf("Another %s stage named %q is defined at %s. Give each a name: a third label (stage %q %q \"other\") or a name attribute.", s.Kind, s.Name, prev, s.Kind, s.Plugin),
				Subject: blk.DefRange().Ptr()})
			continue
		}
		seen[key] = blk.DefRange()
		p.Stages = append(p.Stages, s)
	}
	// Run order is by kind, whatever the order in the file.
	slices.SortStableFunc(p.Stages, func(a, b *Stage) int { return kindIndex(a.Kind) - kindIndex(b.Kind) })
	diags = append(diags, checkDrillFrom(p)...)
	diags = append(diags, checkVerifyStore(p)...)
	return p, diags
}

// ParseSchedule parses a cron expression without letting robfig/cron panic
// (it does on "TZ=Zone" with no fields). A TZ= prefix is refused: the
// pipeline's timezone attribute is the one place a timezone is set.
func ParseSchedule(s string) (sched cron.Schedule, err error) {
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, errors.New("a TZ= prefix is not allowed; set the pipeline's timezone attribute")
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return CronParser.Parse(s)
}

func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return time.Local, nil
	}
	return time.LoadLocation(name)
}

// Run order: the copy (dump, archive, checksum), commit, then retain, store
// (off-site copies) and notify.
var stageKinds = []string{"dump", "archive", "checksum", "retain", "store", "notify"}

func kindIndex(k string) int { return slices.Index(stageKinds, k) }

func newStage(blk *hclsyntax.Block, p *Pipeline) (*Stage, hcl.Diagnostics) {
	if len(blk.Labels) < 2 || len(blk.Labels) > 3 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Wrong stage labels",
			Detail: `A stage has two or three labels: stage "KIND" "PLUGIN" ["NAME"], e.g. stage "dump" "mysql".`, Subject: blk.DefRange().Ptr()}}
	}
	s := &Stage{Kind: blk.Labels[0], Plugin: blk.Labels[1], Name: blk.Labels[1], DeclRange: blk.DefRange(), Body: blk.Body, pipeline: p}
	if kindIndex(s.Kind) < 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown stage kind",
			Detail:  fmt.Sprintf("%q is not a stage kind; the kinds are %s.", s.Kind, strings.Join(stageKinds, ", ")) + suggest(s.Kind, stageKinds),
			Subject: blk.LabelRanges[0].Ptr()}}
	}
	if s.Plugin == "" {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Empty plugin name",
			Detail:  fmt.Sprintf(`The second label names the plugin that serves the stage, e.g. stage %q "mysql".`, s.Kind),
			Subject: blk.LabelRanges[1].Ptr()}}
	}
	var diags hcl.Diagnostics
	label := ""
	if len(blk.Labels) == 3 {
		label = blk.Labels[2]
		if label == "" {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Empty stage name",
				Detail:  fmt.Sprintf(`The third label names the stage in logs and reports; leave it out to use the plugin's name (%q).`, s.Plugin),
				Subject: blk.LabelRanges[2].Ptr()}}
		}
		s.Name = label
	}
	if a, ok := blk.Body.Attributes["name"]; ok {
		v, d := a.Expr.Value(p.ctx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			n, err := asString(v)
			switch {
			case err != nil || n == "":
				diags = append(diags, attrError(a, "name must be a non-empty string."))
			case label != "" && label != n:
				diags = append(diags, attrError(a, fmt.Sprintf("The stage is labelled %q and named %q: keep one.", label, n)))
			default:
				s.Name = n
			}
		}
	}
	return s, diags
}

func asString(v cty.Value) (string, error) {
	if v.IsNull() {
		return "", fmt.Errorf("it is null")
	}
	if !v.IsKnown() {
		return "", fmt.Errorf("it is unknown")
	}
	if v.Type() != cty.String {
		return "", fmt.Errorf("it is a %s", v.Type().FriendlyName())
	}
	return v.AsString(), nil
}

func attrError(a *hclsyntax.Attribute, detail string) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value", Detail: detail}
	if a != nil {
		d.Subject = a.Expr.Range().Ptr()
		d.Summary = fmt.Sprintf("Invalid value for %q", a.Name)
	}
	return d
}

func unsupported(what, name string, valid []string, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported " + what,
		Detail: fmt.Sprintf("An %s named %q is not expected here.", what, name) + suggest(name, valid), Subject: rng.Ptr()}
}

// suggest offers the closest valid name, for typos.
func suggest(got string, valid []string) string {
	best, bestDist := "", 3
	for _, v := range valid {
		if d := levenshtein.Distance(got, v, nil); d < bestDist {
			best, bestDist = v, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

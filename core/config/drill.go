package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/robfig/cron/v3"
)

// Drill is a pipeline's `drill {}` block: when `mbk daemon` and `mbk cron
// install` run `mbk drill`, on which set, from where, and how much of the
// file content it re-reads.
type Drill struct {
	Schedule string `hcl:"schedule,optional"`
	// Set picks the set: "newest" (default), "oldest" or "random", among
	// the complete backups (never a restore's safety copy).
	Set string `hcl:"set,optional"`
	// From is "local" (default) or a store stage's name: a drill from the
	// store proves the off-site copy.
	From string `hcl:"from,optional"`
	// Sample is the percentage of content-addressed files re-hashed per
	// drill (default 1: a rotation reads them all in 100 drills);
	// SampleMin the fewest read (default 100).
	Sample    *float64 `hcl:"sample,optional"`
	SampleMin *int     `hcl:"sample_min,optional"`
	// Identity is an age identity file, for a pipeline that encrypts.
	Identity string `hcl:"identity,optional"`
	Timeout  string `hcl:"timeout,optional"`

	Cron           cron.Schedule
	TimeoutSeconds time.Duration
	DeclRange      hcl.Range
}

// Drill defaults.
const (
	DefaultDrillSample    = 1.0
	DefaultDrillSampleMin = 100
	DefaultDrillTimeout   = 6 * time.Hour
)

// DrillSets are the values of a drill block's set.
var DrillSets = []string{"newest", "oldest", "random"}

// SamplePercent is the sample setting, or its default.
func (d *Drill) SamplePercent() float64 {
	if d == nil || d.Sample == nil {
		return DefaultDrillSample
	}
	return *d.Sample
}

// SampleFloor is the sample_min setting, or its default.
func (d *Drill) SampleFloor() int {
	if d == nil || d.SampleMin == nil {
		return DefaultDrillSampleMin
	}
	return *d.SampleMin
}

func decodeDrill(blk *hclsyntax.Block, ctx *hcl.EvalContext, dir string) (*Drill, hcl.Diagnostics) {
	d := &Drill{DeclRange: blk.DefRange(), Set: "newest", From: "local", TimeoutSeconds: DefaultDrillTimeout}
	if len(blk.Labels) != 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unexpected label",
			Detail: "The drill block takes no label.", Subject: blk.LabelRanges[0].Ptr()}}
	}
	diags := gohcl.DecodeBody(blk.Body, ctx, d)
	if diags.HasErrors() {
		return nil, diags
	}
	at := func(name string) *hcl.Range {
		if a, ok := blk.Body.Attributes[name]; ok {
			return a.Expr.Range().Ptr()
		}
		return d.DeclRange.Ptr()
	}
	bad := func(name, msg string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid drill setting", Detail: msg, Subject: at(name)})
	}
	if d.Set == "" {
		d.Set = "newest"
	}
	if !slices.Contains(DrillSets, d.Set) {
		bad("set", fmt.Sprintf("set is one of %s, not %q.", strings.Join(DrillSets, ", "), d.Set))
	}
	if d.From == "" {
		d.From = "local"
	}
	if d.Schedule != "" {
		s, err := ParseSchedule(d.Schedule)
		if err != nil {
			bad("schedule", fmt.Sprintf("schedule %q is not a cron expression: %s. Use five fields, e.g. \"0 5 * * 0\" (Sundays at 05:00), or @weekly.", d.Schedule, err))
		}
		d.Cron = s
	}
	if d.Sample != nil && (*d.Sample < 0 || *d.Sample > 100) {
		bad("sample", fmt.Sprintf("sample is a percentage from 0 to 100 of the files re-read, not %v.", *d.Sample))
	}
	if d.SampleMin != nil && *d.SampleMin < 0 {
		bad("sample_min", "sample_min is 0 or more.")
	}
	if d.Identity != "" && !filepath.IsAbs(d.Identity) {
		d.Identity = filepath.Join(dir, d.Identity)
	}
	if d.Timeout != "" {
		t, err := time.ParseDuration(d.Timeout)
		if err != nil || t <= 0 {
			bad("timeout", fmt.Sprintf("timeout %q is not a positive duration such as \"90m\" or \"2h\".", d.Timeout))
		}
		d.TimeoutSeconds = t
	}
	return d, diags
}

// checkDrillFrom says when from names no store stage of the pipeline.
func checkDrillFrom(p *Pipeline) hcl.Diagnostics {
	d := p.Drill
	if d == nil || d.From == "local" {
		return nil
	}
	var stores []string
	for _, s := range p.Stages {
		if s.Kind == "store" {
			if s.Name == d.From {
				return nil
			}
			stores = append(stores, s.Name)
		}
	}
	msg := fmt.Sprintf("from is \"local\" or the name of one of the pipeline's store stages; %q is none", d.From)
	if len(stores) > 0 {
		msg += fmt.Sprintf(" (they are %s)", strings.Join(stores, ", "))
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid drill setting", Detail: msg + ".", Subject: d.DeclRange.Ptr()}}
}

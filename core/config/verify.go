package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/robfig/cron/v3"
)

// Verify is a pipeline's `verify {}` block: when `mbk daemon` and `mbk cron
// install` run `mbk verify FILE --scheduled`, which copies to the store the
// sets it lacks, then re-reads a rotating part of it.
type Verify struct {
	Schedule string `hcl:"schedule"`
	// Store names a store stage; it may be left out when there is one.
	Store string `hcl:"store,optional"`
	// ReadSubset is "n/t": n t-ths of the stored sets are downloaded and
	// re-hashed per run, a different part each run.
	ReadSubset string `hcl:"read_subset,optional"`

	Cron      cron.Schedule
	Subset    Subset
	DeclRange hcl.Range
}

// Subset is n parts of t: what one verify reads of a store.
type Subset struct{ N, T int }

// String is the n/t form.
func (s Subset) String() string { return fmt.Sprintf("%d/%d", s.N, s.T) }

// ParseSubset reads "n/t", 1 <= n <= t.
func ParseSubset(s string) (Subset, error) {
	n, t, ok := strings.Cut(strings.TrimSpace(s), "/")
	var out Subset
	var err1, err2 error
	out.N, err1 = strconv.Atoi(n)
	out.T, err2 = strconv.Atoi(t)
	if !ok || err1 != nil || err2 != nil || out.N < 1 || out.N > out.T {
		return Subset{}, fmt.Errorf("%q is not n/t with 1 <= n <= t, such as 1/7 (a seventh of the store per run, all of it every 7 runs)", s)
	}
	return out, nil
}

func decodeVerify(blk *hclsyntax.Block, ctx *hcl.EvalContext) (*Verify, hcl.Diagnostics) {
	v := &Verify{DeclRange: blk.DefRange(), ReadSubset: "1/1"}
	if len(blk.Labels) != 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unexpected label",
			Detail: "The verify block takes no label.", Subject: blk.LabelRanges[0].Ptr()}}
	}
	diags := gohcl.DecodeBody(blk.Body, ctx, v)
	if diags.HasErrors() {
		return nil, diags
	}
	bad := func(name, msg string) {
		subject := v.DeclRange.Ptr()
		if a, ok := blk.Body.Attributes[name]; ok {
			subject = a.Expr.Range().Ptr()
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid verify setting", Detail: msg, Subject: subject})
	}
	s, err := ParseSchedule(v.Schedule)
	if err != nil {
		bad("schedule", fmt.Sprintf("schedule %q is not a cron expression: %s. Use five fields, e.g. \"30 4 * * *\" (every day at 04:30), or @daily.", v.Schedule, err))
	}
	v.Cron = s
	if v.Subset, err = ParseSubset(v.ReadSubset); err != nil {
		bad("read_subset", "read_subset "+err.Error()+".")
	}
	return v, diags
}

// checkVerifyStore names the store a verify block reads: its store
// setting, or the pipeline's only store stage.
func checkVerifyStore(p *Pipeline) hcl.Diagnostics {
	v := p.Verify
	if v == nil {
		return nil
	}
	var stores []string
	for _, s := range p.StagesOf("store") {
		if s.Name == v.Store {
			return nil
		}
		stores = append(stores, s.Name)
	}
	var msg string
	switch {
	case v.Store == "" && len(stores) == 1:
		v.Store = stores[0]
		return nil
	case len(stores) == 0:
		msg = "the verify block reads a store stage's copies, and the pipeline has none"
	case v.Store == "":
		msg = fmt.Sprintf("the pipeline has several store stages (%s): say which one with store", strings.Join(stores, ", "))
	default:
		msg = fmt.Sprintf("store is the name of one of the pipeline's store stages (%s), not %q", strings.Join(stores, ", "), v.Store)
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid verify setting", Detail: msg + ".", Subject: v.DeclRange.Ptr()}}
}

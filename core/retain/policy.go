// Package retain decides which backup sets to keep. It only decides; the
// engine deletes, and checks the verdict again before it does.
//
// Guarantees: only complete sets are counted; the newest complete set and the
// set just made are always kept; ages are measured from the newest complete
// set, not from the clock, so a long outage (or a clock that jumps) never
// expires every set at once.
package retain

import (
	"fmt"
	"sort"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Policy is the built-in retention policy's settings. Zero disables a rule.
type Policy struct {
	KeepDays    int `cty:"keep_days"`
	KeepLast    int `cty:"keep_last"`
	KeepDaily   int `cty:"keep_daily"`
	KeepWeekly  int `cty:"keep_weekly"`
	KeepMonthly int `cty:"keep_monthly"`
}

// Empty reports whether no rule is set.
func (p Policy) Empty() bool {
	return p.KeepDays == 0 && p.KeepLast == 0 && p.KeepDaily == 0 && p.KeepWeekly == 0 && p.KeepMonthly == 0
}

// Decide returns one decision per set, in the order given.
func Decide(p Policy, in sdk.RetainInput) []sdk.Decision {
	loc := in.Location
	if loc == nil {
		loc = time.UTC
	}
	reasons := map[string][]string{}
	keep := func(name, why string) { reasons[name] = append(reasons[name], why) }

	var complete []sdk.SetInfo
	for _, s := range in.Sets {
		if s.Complete {
			complete = append(complete, s)
		}
	}
	// Newest first.
	sort.SliceStable(complete, func(i, j int) bool { return complete[i].Time.After(complete[j].Time) })

	if len(complete) > 0 {
		keep(complete[0].Name, "newest complete set")
	}
	if in.Current != "" {
		keep(in.Current, "made by this run")
	}
	if p.Empty() {
		for _, s := range complete {
			keep(s.Name, "no retention rule is set")
		}
	}
	for i, s := range complete {
		if i < p.KeepLast {
			keep(s.Name, fmt.Sprintf("keep_last %d: #%d newest", p.KeepLast, i+1))
		}
	}
	if p.KeepDays > 0 && len(complete) > 0 {
		anchor := complete[0].Time
		limit := anchor.Add(-time.Duration(p.KeepDays) * 24 * time.Hour)
		for _, s := range complete {
			if !s.Time.Before(limit) {
				keep(s.Name, fmt.Sprintf("keep_days %d: within %d days of the newest set (%s)", p.KeepDays, p.KeepDays, complete[0].Name))
			}
		}
	}
	periods := []struct {
		rule string
		n    int
		key  func(time.Time) string
	}{
		{"keep_daily", p.KeepDaily, func(t time.Time) string { return t.In(loc).Format("2006-01-02") }},
		{"keep_weekly", p.KeepWeekly, func(t time.Time) string {
			y, w := t.In(loc).ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
		{"keep_monthly", p.KeepMonthly, func(t time.Time) string { return t.In(loc).Format("2006-01") }},
	}
	for _, per := range periods {
		if per.n == 0 {
			continue
		}
		seen := map[string]bool{}
		for _, s := range complete {
			k := per.key(s.Time)
			if seen[k] || len(seen) >= per.n {
				continue
			}
			seen[k] = true
			keep(s.Name, fmt.Sprintf("%s %d: newest of %s", per.rule, per.n, k))
		}
	}

	out := make([]sdk.Decision, 0, len(in.Sets))
	for _, s := range in.Sets {
		switch {
		case !s.Complete:
			out = append(out, sdk.Decision{Set: s.Name, Keep: true, Reasons: []string{"incomplete: never counted, never deleted by retention"}})
		case len(reasons[s.Name]) > 0:
			out = append(out, sdk.Decision{Set: s.Name, Keep: true, Reasons: reasons[s.Name]})
		default:
			out = append(out, sdk.Decision{Set: s.Name, Keep: false, Reasons: []string{"no rule keeps it: " + p.String()}})
		}
	}
	return out
}

func (p Policy) String() string {
	return fmt.Sprintf("keep_days=%d keep_last=%d keep_daily=%d keep_weekly=%d keep_monthly=%d",
		p.KeepDays, p.KeepLast, p.KeepDaily, p.KeepWeekly, p.KeepMonthly)
}

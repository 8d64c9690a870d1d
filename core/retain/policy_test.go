package retain_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/retain"
	"github.com/mbk-backup/mbk/core/sdk"
)

const layout = "2006-01-02_15-04-05"

// set makes a complete set at t, named as repo names sets.
func set(t time.Time) sdk.SetInfo {
	return sdk.SetInfo{Name: t.UTC().Format(layout), Time: t, Complete: true}
}

// daily returns complete sets at noon UTC on n consecutive days ending on last.
func daily(last time.Time, n int) []sdk.SetInfo {
	var out []sdk.SetInfo
	for i := n - 1; i >= 0; i-- {
		out = append(out, set(last.AddDate(0, 0, -i)))
	}
	return out
}

// kept returns the names of kept sets, checking that every decision has
// reasons and that decisions come in input order.
func kept(t *testing.T, in sdk.RetainInput, ds []sdk.Decision) []string {
	t.Helper()
	if len(ds) != len(in.Sets) {
		t.Fatalf("%d decisions for %d sets", len(ds), len(in.Sets))
	}
	var out []string
	for i, d := range ds {
		if d.Set != in.Sets[i].Name {
			t.Errorf("decision %d is about %q, want %q (input order)", i, d.Set, in.Sets[i].Name)
		}
		if len(d.Reasons) == 0 || slices.Contains(d.Reasons, "") {
			t.Errorf("decision on %s has no reason: %q", d.Set, d.Reasons)
		}
		if d.Keep {
			out = append(out, d.Set)
		}
	}
	return out
}

func names(ss ...sdk.SetInfo) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func TestDecide(t *testing.T) {
	// Three years ago: ages are measured from the newest set, not the clock.
	old := time.Date(2021, 6, 15, 12, 0, 0, 0, time.UTC)
	ten := daily(old, 10) // old-9d .. old

	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	// 2024-01-10 22:30 UTC is 23:30 on the 10th in Madrid; 23:30 UTC is
	// 00:30 on the 11th there. Same day in UTC, different days in Madrid.
	d9 := set(time.Date(2024, 1, 9, 12, 0, 0, 0, time.UTC))
	late := set(time.Date(2024, 1, 10, 22, 30, 0, 0, time.UTC))
	later := set(time.Date(2024, 1, 10, 23, 30, 0, 0, time.UTC))
	// Sunday 2024-01-14 23:30 UTC is Monday 00:30 (ISO week 3) in Madrid.
	sun1 := set(time.Date(2024, 1, 14, 12, 0, 0, 0, time.UTC))
	sun2 := set(time.Date(2024, 1, 14, 23, 30, 0, 0, time.UTC))
	wk1 := set(time.Date(2024, 1, 3, 12, 0, 0, 0, time.UTC))
	// 2024-01-31 23:30 UTC is 1 February in Madrid.
	jan1 := set(time.Date(2024, 1, 31, 12, 0, 0, 0, time.UTC))
	jan2 := set(time.Date(2024, 1, 31, 23, 30, 0, 0, time.UTC))
	dec := set(time.Date(2023, 12, 20, 12, 0, 0, 0, time.UTC))

	incomplete := func(s sdk.SetInfo) sdk.SetInfo { s.Complete = false; return s }

	tests := []struct {
		name   string
		policy retain.Policy
		in     sdk.RetainInput
		want   []sdk.SetInfo
	}{
		{"empty policy keeps all", retain.Policy{}, sdk.RetainInput{Sets: ten}, ten},
		{"keep_last", retain.Policy{KeepLast: 3}, sdk.RetainInput{Sets: ten}, ten[7:]},
		{"keep_last above count", retain.Policy{KeepLast: 30}, sdk.RetainInput{Sets: ten}, ten},
		{"keep_days from the newest set, 3 years old", retain.Policy{KeepDays: 3},
			sdk.RetainInput{Sets: ten, Location: time.UTC}, ten[6:]}, // newest-3d inclusive
		{"keep_days anchored on the newest complete set", retain.Policy{KeepDays: 1},
			sdk.RetainInput{Sets: append(slices.Clone(ten), incomplete(set(old.AddDate(3, 0, 0))))},
			append(slices.Clone(ten[8:]), incomplete(set(old.AddDate(3, 0, 0))))},
		{"keep_daily in UTC", retain.Policy{KeepDaily: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{d9, late, later}, Location: time.UTC}, []sdk.SetInfo{d9, later}},
		{"keep_daily in Madrid", retain.Policy{KeepDaily: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{d9, late, later}, Location: madrid}, []sdk.SetInfo{late, later}},
		{"keep_weekly in UTC", retain.Policy{KeepWeekly: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{wk1, sun1, sun2}, Location: time.UTC}, []sdk.SetInfo{wk1, sun2}},
		{"keep_weekly in Madrid", retain.Policy{KeepWeekly: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{wk1, sun1, sun2}, Location: madrid}, []sdk.SetInfo{sun1, sun2}},
		{"keep_monthly in UTC", retain.Policy{KeepMonthly: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{dec, jan1, jan2}, Location: time.UTC}, []sdk.SetInfo{dec, jan2}},
		{"keep_monthly in Madrid", retain.Policy{KeepMonthly: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{dec, jan1, jan2}, Location: madrid}, []sdk.SetInfo{jan1, jan2}},
		{"nil location is UTC", retain.Policy{KeepDaily: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{d9, late, later}}, []sdk.SetInfo{d9, later}},
		{"incomplete sets neither counted nor deleted", retain.Policy{KeepLast: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{ten[0], incomplete(ten[1]), ten[2], incomplete(ten[3]), ten[4], incomplete(ten[5])}},
			[]sdk.SetInfo{incomplete(ten[1]), ten[2], incomplete(ten[3]), ten[4], incomplete(ten[5])}},
		{"current set always kept", retain.Policy{KeepLast: 1},
			sdk.RetainInput{Sets: ten, Current: ten[2].Name}, []sdk.SetInfo{ten[2], ten[9]}},
		{"newest always kept", retain.Policy{KeepMonthly: 1, KeepDays: 0},
			sdk.RetainInput{Sets: []sdk.SetInfo{jan1, dec}}, []sdk.SetInfo{jan1}},
		{"rules add up", retain.Policy{KeepLast: 1, KeepMonthly: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{dec, jan1, sun1, wk1}}, []sdk.SetInfo{dec, jan1}},
		{"unsorted input", retain.Policy{KeepLast: 2},
			sdk.RetainInput{Sets: []sdk.SetInfo{ten[9], ten[0], ten[5], ten[8]}}, []sdk.SetInfo{ten[9], ten[8]}},
		{"no sets", retain.Policy{KeepLast: 2}, sdk.RetainInput{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := retain.Decide(tt.policy, tt.in)
			got := kept(t, tt.in, ds)
			want := names(tt.want...)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("kept %q\nwant %q", got, want)
			}
		})
	}
}

func TestDecideReasons(t *testing.T) {
	sets := daily(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), 4)
	sets = append(sets, sdk.SetInfo{Name: "2024-03-02_00-00-00", Time: sets[3].Time.Add(12 * time.Hour)})
	in := sdk.RetainInput{Sets: sets, Current: sets[3].Name, Location: time.UTC}
	ds := retain.Decide(retain.Policy{KeepLast: 2}, in)
	byName := map[string]sdk.Decision{}
	for _, d := range ds {
		byName[d.Set] = d
	}
	newest := byName[sets[3].Name]
	for _, want := range []string{"newest complete set", "made by this run", "keep_last 2: #1 newest"} {
		if !slices.Contains(newest.Reasons, want) {
			t.Errorf("newest set's reasons %q lack %q", newest.Reasons, want)
		}
	}
	if r := byName[sets[2].Name].Reasons; !slices.Equal(r, []string{"keep_last 2: #2 newest"}) {
		t.Errorf("second newest: %q", r)
	}
	if d := byName[sets[0].Name]; d.Keep || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "no rule keeps it: keep_days=0 keep_last=2") {
		t.Errorf("oldest: %+v", d)
	}
	if d := byName["2024-03-02_00-00-00"]; !d.Keep || !strings.Contains(d.Reasons[0], "incomplete") {
		t.Errorf("incomplete: %+v", d)
	}
	ds = retain.Decide(retain.Policy{KeepDays: 2, KeepDaily: 1}, in)
	for _, d := range ds {
		if d.Set == sets[2].Name && !slices.Contains(d.Reasons, fmt.Sprintf("keep_days 2: within 2 days of the newest set (%s)", sets[3].Name)) {
			t.Errorf("keep_days reason missing: %q", d.Reasons)
		}
		if d.Set == sets[3].Name && !slices.Contains(d.Reasons, "keep_daily 1: newest of 2024-03-01") {
			t.Errorf("keep_daily reason missing: %q", d.Reasons)
		}
	}
}

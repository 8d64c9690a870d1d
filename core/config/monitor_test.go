package config_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/spec"
)

// The size alarms' settings are the core's in dump and archive stages.
func TestSizeAlarmSettings(t *testing.T) {
	tests := []struct {
		body      string
		minSize   int64
		maxShrink float64
	}{
		{``, 0, 0.5},
		{`min_size = "50MiB"`, 50 << 20, 0.5},
		{`min_size = "2 GB"`, 2e9, 0.5},
		{`min_size = 1024`, 1024, 0.5},
		{`max_shrink = "20%"`, 0, 0.2},
		{`max_shrink = "100%"`, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			_, s, _ := stageOf(t, "", "  stage \"archive\" \"volume\" {\n    "+tt.body+"\n  }", "archive")
			set, diags := s.Decode(spec.Schema{})
			if diags.HasErrors() {
				t.Fatal(diagText(diags))
			}
			if set.MinSize != tt.minSize || set.MaxShrink != tt.maxShrink {
				t.Errorf("min_size %d max_shrink %v, want %d %v", set.MinSize, set.MaxShrink, tt.minSize, tt.maxShrink)
			}
		})
	}
}

func TestSizeAlarmSettingErrors(t *testing.T) {
	tests := []struct {
		name, kind, body, marker string
		frags                    []string
	}{
		{"min_size without a unit we know", "dump", `min_size = "50 parsecs"`, "min_size", []string{`min_size is a size such as "50MiB"`, `not "50 parsecs"`}},
		{"min_size negative", "dump", `min_size = -1`, "min_size", []string{"min_size is a size"}},
		{"min_size a list", "dump", `min_size = [1]`, "min_size", []string{"not a tuple"}},
		{"max_shrink without %", "archive", `max_shrink = "50"`, "max_shrink", []string{`max_shrink is a percentage above 0 and up to 100`, `not "50"`}},
		{"max_shrink above 100", "archive", `max_shrink = "150%"`, "max_shrink", []string{"max_shrink is a percentage"}},
		{"max_shrink zero", "archive", `max_shrink = "0%"`, "max_shrink", []string{"max_shrink is a percentage"}},
		{"not in a notify stage", "notify", `min_size = "1MiB"`, "min_size", []string{"Unsupported argument", `"min_size"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s, src := stageOf(t, "", "  stage \""+tt.kind+"\" \"p\" {\n    "+tt.body+"\n  }", tt.kind)
			_, diags := s.Decode(spec.Schema{})
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, tt.marker), tt.frags...)
		})
	}
}

// A plugin's schema may name the events its stages hear without `on`; `on`
// still wins.
func TestNotifyEventsFromTheSchema(t *testing.T) {
	pinger := spec.Schema{Events: []string{spec.EventStart, spec.EventSuccess, spec.EventFailure}}
	for _, tt := range []struct {
		body   string
		schema spec.Schema
		want   []string
	}{
		{``, spec.Schema{}, []string{"success", "failure", "warning", "drill"}},
		{``, pinger, []string{"start", "success", "failure"}},
		{`on = ["failure"]`, pinger, []string{"failure"}},
		{`on = ["start", "success"]`, spec.Schema{}, []string{"start", "success"}},
	} {
		_, s, _ := stageOf(t, "", "  stage \"notify\" \"ping\" {\n    "+tt.body+"\n  }", "notify")
		set, diags := s.Decode(tt.schema)
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		if !slices.Equal(set.On, tt.want) {
			t.Errorf("%q with schema events %q: on %q, want %q", tt.body, tt.schema.Events, set.On, tt.want)
		}
	}
	if err := (spec.Schema{Events: []string{"sucess"}}).Check(); err == nil {
		t.Error("a schema naming an unknown event passes Check")
	}
}

func TestMonitoringPipelineAttributes(t *testing.T) {
	dir := t.TempDir()
	f, diags := loadPath(t, writeFile(t, dir, "p.hcl", `pipeline "p" {
  root         = "/b"
  schedule     = "0 3 * * *"
  max_age      = "30h"
  metrics_file = "metrics/mbk_p.prom"
  catch_up     = true
}
`), nil)
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	p := f.Pipelines[0]
	if p.MaxAge != 30*time.Hour || p.MetricsFile != filepath.Join(dir, "metrics/mbk_p.prom") || !p.CatchUp {
		t.Errorf("max_age %v metrics_file %q catch_up %v", p.MaxAge, p.MetricsFile, p.CatchUp)
	}

	for _, tt := range []struct{ name, body, marker, frag string }{
		{"max_age not a duration", `max_age = "a day"`, "max_age", `max_age "a day" is not a positive duration`},
		{"metrics_file not .prom", `metrics_file = "/var/lib/node_exporter/mbk.txt"`, "metrics_file", "must end in .prom"},
		{"catch_up not a bool", `catch_up = "yes"`, "catch_up", "catch_up must be true or false"},
		{"catch_up with no schedule", `catch_up = true`, "catch_up", "the pipeline has no schedule to miss"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := "pipeline \"p\" {\n  root = \"/b\"\n  " + tt.body + "\n}\n"
			_, diags := load(t, src, nil)
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, tt.marker), tt.frag)
		})
	}
}

// The age limit: max_age, else twice the schedule's longest gap, else 26 h.
func TestAgeLimit(t *testing.T) {
	// A Wednesday noon, so that the weekday schedule's weekend lies ahead.
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		attrs string
		want  time.Duration
	}{
		{``, config.DefaultMaxAge},
		{`max_age = "3h"`, 3 * time.Hour},
		{`schedule = "0 3 * * *"`, 48 * time.Hour},
		{`schedule = "0 */6 * * *"`, 12 * time.Hour},
		{`schedule = "0 3 * * 1-5"`, 2 * 72 * time.Hour}, // Friday to Monday
		{`schedule = "0 3 * * 0"`, 14 * 24 * time.Hour},
		{`schedule = "0 3 1 * *"`, 2 * 31 * 24 * time.Hour}, // January to February
		{`schedule = "0 3 * * *"
  max_age  = "30h"`, 30 * time.Hour},
	} {
		f := mustLoad(t, "pipeline \"p\" {\n  root = \"/b\"\n  timezone = \"UTC\"\n  "+tt.attrs+"\n}\n", nil)
		if got := f.Pipelines[0].AgeLimit(now); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.attrs, got, tt.want)
		}
	}
}

package health

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/spec"
)

func pipeline(t *testing.T) *config.Pipeline {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.hcl")
	src := "pipeline \"p\" {\n  root = \"/b\"\n  stage \"store\" \"s3\" {}\n  stage \"store\" \"sftp\" {}\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	f, diags := config.NewLoader(nil).Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Pipelines[0]
}

// TestEvaluate: each finding and the level it carries.
func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	p := pipeline(t)
	fresh := &repo.Set{Name: "2026-12-03_03-00-00", Manifest: &repo.Manifest{Finished: now.Add(-9 * time.Hour)}}
	copied := func(age time.Duration, ok bool) *repo.StoreCopies {
		return &repo.StoreCopies{Newest: "x", NewestAt: now.Add(-age), OK: ok, LastAttempt: now.Add(-time.Hour)}
	}
	bothStores := map[string]*repo.StoreCopies{"s3": copied(9*time.Hour, true), "sftp": copied(9*time.Hour, true)}
	tests := []struct {
		name  string
		state State
		want  Level
		text  []string
	}{
		{"all well", State{Newest: fresh, Kept: 3, Runs: &repo.Runs{Stores: bothStores}}, OK, nil},
		{"no set", State{Runs: &repo.Runs{}}, Critical, []string{"no complete backup set in /b"}},
		{"stale", State{Newest: &repo.Set{Name: "old", Time: now.Add(-30 * time.Hour)}, Runs: &repo.Runs{Stores: bothStores}}, Critical, []string{"the newest complete set, old, is 30h old (max_age 26h)"}},
		{"failed since", State{Newest: fresh, Runs: &repo.Runs{Stores: bothStores, FailedSinceSuccess: 2,
			Last: &repo.Run{Status: repo.RunFailure, Error: "disk on fire", Finished: now}}}, Warning, []string{"the last run failed", "disk on fire", "2 failed run(s)"}},
		{"alarm", State{Newest: fresh, Runs: &repo.Runs{Stores: bothStores,
			Last: &repo.Run{Status: repo.RunWarning, Set: fresh.Name, Alarms: []spec.Alarm{{Message: "moodle.sql.gz: 3 tables now, 400 tables in set y"}}}}}, Warning, []string{"suspiciously small: moodle.sql.gz: 3 tables now, 400 tables"}},
		{"a store behind", State{Newest: fresh, Runs: &repo.Runs{Stores: map[string]*repo.StoreCopies{
			"s3": copied(9*time.Hour, true), "sftp": {Newest: "z", NewestAt: now.Add(-50 * time.Hour), Error: "connection refused"}}}}, Warning,
			[]string{"store sftp: the newest copy, z, is 2d2h old (max_age 26h); the last copy failed: connection refused"}},
		{"a store never copied", State{Newest: fresh, Runs: &repo.Runs{Stores: map[string]*repo.StoreCopies{"s3": copied(time.Hour, true)}}}, Warning, []string{"store sftp: no copy recorded yet"}},
		{"a failed drill", State{Newest: fresh, Runs: &repo.Runs{Stores: bothStores},
			Drill: &spec.DrillReport{Set: "y", Checks: []spec.DrillCheck{{Stage: "archive", Check: spec.Check{Name: "references", Summary: "1 blob missing"}}}}}, Warning,
			[]string{"the last drill (set y", "archive references: 1 blob missing"}},
		{"an unfinished restore wins", State{Newest: fresh, Runs: &repo.Runs{Stores: bothStores, Last: &repo.Run{Status: repo.RunFailure}}, Restore: &repo.RestoreMarker{Set: "y"}}, Critical,
			[]string{"a restore of set y is unfinished"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.state.Pipeline = p
			r := Evaluate(&tt.state, now, 26*time.Hour)
			var all []string
			for _, f := range r.Findings {
				all = append(all, f.Text)
			}
			text := strings.Join(all, "\n")
			if r.Level != tt.want {
				t.Errorf("level %s, want %s:\n%s", r.Level, tt.want, text)
			}
			for _, w := range tt.text {
				if !strings.Contains(text, w) {
					t.Errorf("findings lack %q:\n%s", w, text)
				}
			}
			if tt.text == nil && len(all) != 0 {
				t.Errorf("findings when all is well:\n%s", text)
			}
		})
	}
}

func TestWorse(t *testing.T) {
	order := []Level{OK, Warning, Unknown, Critical}
	for i := 1; i < len(order); i++ {
		if !order[i].Worse(order[i-1]) || order[i-1].Worse(order[i]) {
			t.Errorf("%s should be worse than %s", order[i], order[i-1])
		}
	}
}

// TestSpan: durations for people, never a nanosecond tail.
func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Nanosecond:                       "1ns",
		102516972 * time.Nanosecond:           "103ms",
		12*time.Second + 400*time.Millisecond: "12s",
		45 * time.Minute:                      "45m0s",
		90 * time.Minute:                      "1h30m",
		26 * time.Hour:                        "26h",
		50 * time.Hour:                        "2d2h",
	} {
		if got := Span(d); got != want {
			t.Errorf("Span(%v) = %q, want %q", d, got, want)
		}
	}
}

package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/mbk-backup/mbk/core/config"
)

func TestPipelineAttributes(t *testing.T) {
	src := `
pipeline "nightly" {
  root     = "/srv/backups"
  schedule = "30 2 * * *"
  timezone = "Europe/Madrid"
  timeout  = "90m"
  parallel = false
  safety_copy_days = 14
  language = "es"
}
pipeline "defaults" {
  root = "/srv/other"
}
pipeline "descriptor" {
  root     = "/srv/d"
  schedule = "@daily"
  timezone = "UTC"
}
`
	f := mustLoad(t, src, nil)
	p, err := f.Pipeline("nightly")
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != "/srv/backups" || p.Schedule != "30 2 * * *" || p.Timezone != "Europe/Madrid" || p.Timeout != 90*time.Minute || p.Parallel {
		t.Errorf("nightly = root %q schedule %q tz %q timeout %v parallel %v", p.Root, p.Schedule, p.Timezone, p.Timeout, p.Parallel)
	}
	if p.Language != "es" {
		t.Errorf("nightly language = %q, want es", p.Language)
	}
	if d, _ := f.Pipeline("defaults"); d.Language != "en" {
		t.Errorf("defaults language = %q, want en", d.Language)
	}
	if p.SafetyCopyDays != 14 {
		t.Errorf("SafetyCopyDays = %d", p.SafetyCopyDays)
	}
	if p.Location == nil || p.Location.String() != "Europe/Madrid" {
		t.Errorf("Location = %v", p.Location)
	}
	if p.Cron == nil {
		t.Fatal("Cron is nil with a schedule")
	}
	from := time.Date(2024, 1, 1, 12, 0, 0, 0, p.Location)
	if next, want := p.Cron.Next(from), time.Date(2024, 1, 2, 2, 30, 0, 0, p.Location); !next.Equal(want) {
		t.Errorf("Cron.Next(%v) = %v, want %v", from, next, want)
	}
	if p.DeclRange.Start.Line != 2 {
		t.Errorf("DeclRange line = %d, want 2", p.DeclRange.Start.Line)
	}

	d, _ := f.Pipeline("defaults")
	if d.Timeout != config.DefaultTimeout || d.Cron != nil || d.Timezone != "Local" || d.Location != time.Local || !d.Parallel {
		t.Errorf("defaults: timeout %v cron %v tz %q loc %v parallel %v", d.Timeout, d.Cron, d.Timezone, d.Location, d.Parallel)
	}
	if d.SafetyCopyDays != 7 {
		t.Errorf("default SafetyCopyDays = %d, want 7", d.SafetyCopyDays)
	}
	if config.DefaultTimeout != 6*time.Hour {
		t.Errorf("DefaultTimeout = %v", config.DefaultTimeout)
	}
	if dp, _ := f.Pipeline("descriptor"); dp.Cron == nil || dp.Location != time.UTC && dp.Location.String() != "UTC" {
		t.Errorf("descriptor: cron %v loc %v", dp.Cron, dp.Location)
	}
}

func TestPipelineErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		marker string // the line the diagnostic must point at
		frags  []string
	}{
		{"root missing", `  schedule = "@daily"`, `pipeline "p"`, []string{"Missing required argument", "needs root"}},
		{"bad schedule", `  root = "/b"
  schedule = "0 3 * *"`, "schedule =", []string{`schedule "0 3 * *" is not a cron expression`, "five fields"}},
		{"schedule out of range", `  root = "/b"
  schedule = "61 3 * * *"`, "schedule =", []string{"is not a cron expression"}},
		// robfig/cron slices past "TZ=" up to the first space: without a
		// space it panics. The loader must answer with a diagnostic.
		{"schedule TZ= without fields", `  root = "/b"
  schedule = "TZ=Europe/Madrid"`, "schedule =", []string{"schedule"}},
		{"schedule CRON_TZ= without fields", `  root = "/b"
  schedule = "CRON_TZ=UTC"`, "schedule =", []string{"schedule"}},
		{"unknown timezone", `  root = "/b"
  timezone = "Mars/Olympus"`, "timezone =", []string{`Unknown timezone "Mars/Olympus"`, "IANA"}},
		{"bad timeout", `  root = "/b"
  timeout = "an hour"`, "timeout =", []string{`timeout "an hour" is not a positive duration`}},
		{"negative timeout", `  root = "/b"
  timeout = "-5m"`, "timeout =", []string{`timeout "-5m" is not a positive duration`}},
		{"timeout not a string", `  root = "/b"
  timeout = 90`, "timeout =", []string{`"timeout" must be a string`}},
		{"safety_copy_days zero", `  root = "/b"
  safety_copy_days = 0`, "safety_copy_days", []string{"safety_copy_days is a whole number of days, 1 or more"}},
		{"safety_copy_days a fraction", `  root = "/b"
  safety_copy_days = 1.5`, "safety_copy_days", []string{"safety_copy_days is a whole number of days"}},
		{"language not spoken", `  root = "/b"
  language = "fr"`, "language =", []string{`language "fr" is not one mbk speaks`, `"en"`, `"es"`}},
		{"language not a string", `  root = "/b"
  language = 1`, "language =", []string{`"language" must be a string`}},
		{"parallel not a bool", `  root = "/b"
  parallel = "yes"`, "parallel =", []string{"parallel must be true or false, not string"}},
		{"unknown attribute suggests", `  root = "/b"
  schedul = "@daily"`, "schedul =", []string{"Unsupported argument", `"schedul"`, `Did you mean "schedule"?`}},
		{"unknown attribute far from any", `  root = "/b"
  frobnicate = 1`, "frobnicate", []string{"Unsupported argument", `"frobnicate"`}},
		{"unknown block suggests", `  root = "/b"
  stages "dump" "mysql" {}`, "stages", []string{"Unsupported block type", `Did you mean "stage"?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "pipeline \"p\" {\n" + tt.body + "\n}\n"
			_, diags := load(t, src, nil)
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, tt.marker), tt.frags...)
		})
	}
}

func TestFileLevelErrors(t *testing.T) {
	t.Run("no pipeline", func(t *testing.T) {
		_, diags := load(t, "variable \"a\" {\n  default = 1\n}\n", nil)
		wantDiag(t, diags, hcl.DiagError, 0, "No pipeline")
	})
	t.Run("duplicate pipeline", func(t *testing.T) {
		src := "pipeline \"p\" {\n  root = \"/a\"\n}\npipeline \"p\" {\n  root = \"/b\"\n}\n"
		_, diags := load(t, src, nil)
		wantDiag(t, diags, hcl.DiagError, 4, "Duplicate pipeline", `"p"`)
	})
	t.Run("syntax error", func(t *testing.T) {
		_, diags := load(t, "pipeline \"p\" {\n  root = \n}\n", nil)
		if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
			t.Errorf("want a syntax error on line 2, got:\n%s", diagText(diags))
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, diags := config.NewLoader(nil).Load(t.TempDir() + "/nope.hcl")
		wantDiag(t, diags, hcl.DiagError, 0, "Cannot read pipeline file", "nope.hcl")
	})
}

func TestStageLabels(t *testing.T) {
	src := `pipeline "p" {
  root = "/b"
  stage "notify" "smtp" {
    to = "a@x"
  }
  stage "retain" "policy" {}
  stage "dump" "mysql" "moodle" {}
  stage "checksum" "sha256" {}
  stage "archive" "volume" {
    name = "moodledata"
  }
  stage "dump" "mysql" {
    name = "mysql"
  }
  stage "dump" "mysql" "other" {
    name = "other"
  }
}
`
	f := mustLoad(t, src, nil)
	p, _ := f.Pipeline("p")
	var got []string
	for _, s := range p.Stages {
		got = append(got, s.ID())
	}
	want := []string{
		`dump "mysql" "moodle"`, `dump "mysql"`, `dump "mysql" "other"`,
		`archive "volume" "moodledata"`, `checksum "sha256"`, `retain "policy"`, `notify "smtp"`,
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("stages in run order:\n got %q\nwant %q", got, want)
	}
	s := p.Stages[0]
	if s.Kind != "dump" || s.Plugin != "mysql" || s.Name != "moodle" || s.DeclRange.Start.Line != lineOf(t, src, `"moodle" {}`) {
		t.Errorf("first stage = %+v", s)
	}
	if n := len(p.StagesOf("dump")); n != 3 {
		t.Errorf("StagesOf(dump) = %d stages", n)
	}
}

func TestStageLabelErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		marker string
		frags  []string
	}{
		{"one label", `stage "dump" {}`, `stage "dump"`, []string{"Wrong stage labels", "two or three labels"}},
		{"four labels", `stage "dump" "mysql" "a" "b" {}`, `stage "dump"`, []string{"Wrong stage labels"}},
		{"unknown kind suggests", `stage "dumb" "mysql" {}`, `"dumb"`, []string{"Unknown stage kind", `"dumb"`, `Did you mean "dump"?`}},
		{"unknown kind suggests notify", `stage "notfy" "smtp" {}`, `"notfy"`, []string{`Did you mean "notify"?`}},
		{"unknown kind, nothing close", `stage "upload" "s3" {}`, `"upload"`, []string{"Unknown stage kind", "dump, archive, checksum, retain, store, notify"}},
		{"label and name conflict", `stage "dump" "mysql" "a" {
    name = "b"
  }`, `name = "b"`, []string{`labelled "a" and named "b"`}},
		{"empty name", `stage "dump" "mysql" {
    name = ""
  }`, `name = ""`, []string{"non-empty string"}},
		{"duplicate by plugin name", `stage "dump" "mysql" {}
  stage "dump" "mysql" {}`, "", []string{"Duplicate stage", `Another dump stage named "mysql"`}},
		{"duplicate by name attribute", `stage "dump" "mysql" "db" {}
  stage "dump" "pg" {
    name = "db"
  }`, `stage "dump" "pg"`, []string{"Duplicate stage", `named "db"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "pipeline \"p\" {\n  root = \"/b\"\n  " + tt.body + "\n}\n"
			_, diags := load(t, src, nil)
			line := 0
			if tt.marker != "" {
				line = lineOf(t, src, tt.marker)
			} else {
				line = 4 // the second of two one-line stages
			}
			wantDiag(t, diags, hcl.DiagError, line, tt.frags...)
		})
	}
}

// A file with many mistakes reports all of them in one run: a user fixing a
// config must not discover its errors one at a time.
func TestAllErrorsAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		markers []string // one error per marker, on that line
	}{
		{
			name: "inside pipelines",
			src: `variable "days" {
  type = number
}
pipeline "a" {
  schedule = "99 * * * *"
  timezone = "Nowhere/Land"
  timeout  = "soon"
  retries  = 3
  stage "dumb" "mysql" {}
  stage "dump" {}
}
pipeline "b" {
  root = "/b"
  stage "dump" "mysql" "x" {
    name = "y"
  }
}
`,
			markers: []string{`variable "days"`, `pipeline "a"`, "schedule =", "timezone =", "timeout  =", "retries", `"dumb"`, `stage "dump" {}`, `name = "y"`},
		},
		{
			// An unknown top-level attribute must not hide the pipelines'
			// own errors.
			name: "with a top-level typo",
			src: `plugin_dri = "plugins"
pipeline "a" {
  timezone = "Nowhere/Land"
}
`,
			markers: []string{"plugin_dri", `pipeline "a"`, "timezone ="},
		},
		{
			name: "with an unknown top-level block",
			src: `pipelines "x" {}
pipeline "a" {
  root     = "/a"
  schedule = "bad"
}
`,
			markers: []string{`pipelines "x"`, "schedule ="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := load(t, tt.src, nil)
			lines := map[int]bool{}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Subject != nil {
					lines[d.Subject.Start.Line] = true
				}
			}
			for _, m := range tt.markers {
				if l := lineOf(t, tt.src, m); !lines[l] {
					t.Errorf("no error on line %d (%s)", l, m)
				}
			}
			if t.Failed() {
				t.Logf("got:\n%s", diagText(diags))
			}
		})
	}
}

package config_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/stream"
)

// dbSchema is a hand-made plugin schema like a dump plugin's.
var dbSchema = spec.Schema{Attributes: []spec.Attribute{
	{Name: "container", Type: spec.String, Required: true},
	{Name: "port", Type: spec.Int},
	{Name: "password", Type: spec.String, Sensitive: true},
	{Name: "databases", Type: spec.List(spec.String)},
}}

// stageOf loads a one-pipeline file whose body is given and returns the
// stage of that kind.
func stageOf(t *testing.T, pre, body, kind string) (*config.Pipeline, *config.Stage, string) {
	t.Helper()
	src := pre + "pipeline \"p\" {\n  root = \"/b\"\n" + body + "\n}\n"
	f := mustLoad(t, src, nil)
	p, _ := f.Pipeline("p")
	ss := p.StagesOf(kind)
	if len(ss) == 0 {
		t.Fatalf("no %s stage", kind)
	}
	return p, ss[0], src
}

func TestStageDecode(t *testing.T) {
	t.Setenv("MBK_TEST_DB_PASSWORD", "env-secret-1")
	_, s, _ := stageOf(t, "", `  stage "dump" "mysql" {
    container   = "db"
    port        = 3306
    password    = env("MBK_TEST_DB_PASSWORD")
    databases   = ["moodle", "other"]
    compression = "zstd"
    timeout     = "45m"
  }`, "dump")
	set, diags := s.Decode(dbSchema)
	if diags.HasErrors() {
		t.Fatalf("Decode:\n%s", diagText(diags))
	}
	want := cty.ObjectVal(map[string]cty.Value{
		"container": cty.StringVal("db"),
		"port":      cty.NumberIntVal(3306),
		"password":  cty.StringVal("env-secret-1"),
		"databases": cty.ListVal([]cty.Value{cty.StringVal("moodle"), cty.StringVal("other")}),
	})
	if !set.Config.RawEquals(want) {
		t.Errorf("Config = %#v\nwant %#v (plugin attributes only)", set.Config, want)
	}
	if set.Compression != "zstd" || set.Timeout != 45*time.Minute {
		t.Errorf("compression %q timeout %v", set.Compression, set.Timeout)
	}
	if !slices.Equal(set.Secrets, []string{"env-secret-1"}) {
		t.Errorf("Secrets = %q", set.Secrets)
	}
}

func TestStageDecodeDefaults(t *testing.T) {
	t.Run("dump", func(t *testing.T) {
		_, s, _ := stageOf(t, "", "  stage \"dump\" \"mysql\" {\n    container = \"db\"\n  }", "dump")
		set, diags := s.Decode(dbSchema)
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		if set.Compression != "gzip" || set.Timeout != 0 || len(set.Secrets) != 0 {
			t.Errorf("compression %q timeout %v secrets %q", set.Compression, set.Timeout, set.Secrets)
		}
		if v := set.Config.GetAttr("port"); !v.IsNull() {
			t.Errorf("port left out = %#v, want null", v)
		}
	})
	t.Run("notify", func(t *testing.T) {
		_, s, _ := stageOf(t, "", "  stage \"notify\" \"smtp\" {}", "notify")
		set, diags := s.Decode(spec.Schema{})
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		if !slices.Equal(set.On, []string{"success", "failure", "warning", "drill"}) {
			t.Errorf("On = %q, want every event", set.On)
		}
		if !set.Config.RawEquals(cty.EmptyObjectVal) {
			t.Errorf("Config = %#v", set.Config)
		}
	})
	t.Run("notify on", func(t *testing.T) {
		_, s, _ := stageOf(t, "", "  stage \"notify\" \"smtp\" {\n    on = [\"failure\", \"warning\"]\n  }", "notify")
		set, diags := s.Decode(spec.Schema{})
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		if !slices.Equal(set.On, []string{"failure", "warning"}) {
			t.Errorf("On = %q", set.On)
		}
	})
	t.Run("archive compression none", func(t *testing.T) {
		_, s, _ := stageOf(t, "", "  stage \"archive\" \"volume\" {\n    compression = \"none\"\n  }", "archive")
		set, diags := s.Decode(spec.Schema{})
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		if set.Compression != "none" {
			t.Errorf("compression %q", set.Compression)
		}
	})
}

func TestStageDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		kind   string
		body   string // the stage block
		schema spec.Schema
		marker string
		frags  []string
	}{
		{"unknown attribute", "dump", `stage "dump" "mysql" {
    container = "db"
    passwrd   = "x"
  }`, dbSchema, "passwrd", []string{"Unsupported argument", `"passwrd"`, `Did you mean "password"?`}},
		{"wrong type", "dump", `stage "dump" "mysql" {
    container = "db"
    port      = "three thousand"
  }`, dbSchema, "port", []string{"Incorrect attribute value type", `"port"`, "a number is required"}},
		{"list expected", "dump", `stage "dump" "mysql" {
    container = "db"
    databases = "moodle"
  }`, dbSchema, "databases", []string{"list of string required"}},
		{"required missing", "dump", `stage "dump" "mysql" {
    port = 3306
  }`, dbSchema, `stage "dump"`, []string{"Missing required argument", `"container"`}},
		{"bad compression", "dump", `stage "dump" "mysql" {
    container   = "db"
    compression = "gzp"
  }`, dbSchema, "compression", []string{`compression "gzp" is not one of gzip, zstd, none`, `Did you mean "gzip"?`}},
		{"zstd level past its range", "dump", `stage "dump" "mysql" {
    container         = "db"
    compression       = "zstd"
    compression_level = 7
  }`, dbSchema, "compression_level", []string{`Invalid value for "compression_level"`, "zstd takes compression_level 1 (fastest) to 4 (smallest), not 7"}},
		{"level before compression", "dump", `stage "dump" "mysql" {
    container         = "db"
    compression_level = 5
    compression       = "zstd"
  }`, dbSchema, "compression_level", []string{"zstd takes compression_level 1 (fastest) to 4 (smallest), not 5"}},
		{"default gzip level past its range", "archive", `stage "archive" "volume" {
    compression_level = 10
  }`, spec.Schema{}, "compression_level", []string{"gzip takes compression_level 1 (fastest) to 9 (smallest), not 10"}},
		{"level 0", "archive", `stage "archive" "volume" {
    compression       = "gzip"
    compression_level = 0
  }`, spec.Schema{}, "compression_level", []string{"gzip takes compression_level 1 (fastest) to 9 (smallest), not 0"}},
		{"level not whole", "archive", `stage "archive" "volume" {
    compression       = "zstd"
    compression_level = 2.5
  }`, spec.Schema{}, "compression_level", []string{"compression_level is a whole number: zstd takes 1 (fastest) to 4 (smallest)"}},
		{"level with none", "archive", `stage "archive" "volume" {
    compression       = "none"
    compression_level = 1
  }`, spec.Schema{}, "compression_level", []string{`Invalid value for "compression_level"`, `compression "none" takes no compression_level: remove it, or compress with gzip or zstd`}},
		{"compression not for notify", "notify", `stage "notify" "smtp" {
    compression = "gzip"
  }`, spec.Schema{}, "compression", []string{"Unsupported argument", `"compression"`}},
		{"on not for dump", "dump", `stage "dump" "mysql" {
    container = "db"
    on        = ["success"]
  }`, dbSchema, "on ", []string{"Unsupported argument", `"on"`}},
		{"bad timeout", "dump", `stage "dump" "mysql" {
    container = "db"
    timeout   = "0s"
  }`, dbSchema, "timeout", []string{`timeout "0s" is not a positive duration`}},
		{"bad event", "notify", `stage "notify" "smtp" {
    on = ["success", "sucess"]
  }`, spec.Schema{}, "on =", []string{"on takes events among"}},
		{"schema clashes with core", "dump", `stage "dump" "mysql" {
    container = "db"
  }`, spec.Schema{Attributes: []spec.Attribute{{Name: "container", Type: spec.String}, {Name: "compression", Type: spec.String}}},
			`stage "dump"`, []string{"Plugin schema clashes with mbk", `"compression"`, `Plugin "mysql"`}},
		{"schema clashes with name", "retain", `stage "retain" "policy" {}`,
			spec.Schema{Attributes: []spec.Attribute{{Name: "name", Type: spec.String}}}, `stage "retain"`, []string{"Plugin schema clashes with mbk", `"name"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s, src := stageOf(t, "", "  "+tt.body, tt.kind)
			_, diags := s.Decode(tt.schema)
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, tt.marker), tt.frags...)
		})
	}
}

// TestStageCompressionLevels: the config accepts exactly the levels stream's
// table gives each codec, on whichever line compression comes, and keeps the
// level it accepted.
func TestStageCompressionLevels(t *testing.T) {
	for _, c := range stream.Codecs() {
		lo, hi := c.MinLevel-1, c.MaxLevel+1
		if !c.TakesLevel() {
			lo, hi = 0, 1
		}
		for l := lo; l <= hi; l++ {
			want := c.TakesLevel() && l >= c.MinLevel && l <= c.MaxLevel
			for _, body := range []string{
				fmt.Sprintf("compression = %q\n    compression_level = %d", c.Name, l),
				fmt.Sprintf("compression_level = %d\n    compression = %q", l, c.Name),
			} {
				_, s, _ := stageOf(t, "", "  stage \"archive\" \"volume\" {\n    "+body+"\n  }", "archive")
				set, diags := s.Decode(spec.Schema{})
				if diags.HasErrors() == want {
					t.Errorf("%s level %d: accepted = %v, want %v\n%s", c.Name, l, !diags.HasErrors(), want, diagText(diags))
				}
				if want && set.CompressionLevel != l {
					t.Errorf("%s level %d: CompressionLevel = %d", c.Name, l, set.CompressionLevel)
				}
			}
		}
	}
}

// A stage body with several mistakes reports every one of them.
func TestStageDecodeAllErrorsAtOnce(t *testing.T) {
	_, s, src := stageOf(t, "", `  stage "dump" "mysql" {
    container   = "db"
    passwrd     = "x"
    port        = "many"
    compression = "bzip2"
    timeout     = "forever"
  }`, "dump")
	_, diags := s.Decode(dbSchema)
	for _, m := range []string{"passwrd", "port", "compression", "timeout"} {
		found := false
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Start.Line == lineOf(t, src, m) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error on the %s line (%d)", m, lineOf(t, src, m))
		}
	}
	if t.Failed() {
		t.Logf("got:\n%s", diagText(diags))
	}
}

func TestSecretsCollected(t *testing.T) {
	schema := spec.Schema{Attributes: []spec.Attribute{
		{Name: "user", Type: spec.String},
		{Name: "password", Type: spec.String, Sensitive: true},
		{Name: "token", Type: spec.String, Sensitive: true},
	}}
	pre := "variable \"smtp_password\" {\n  sensitive = true\n  default = \"var-secret\"\n}\n"
	p, _, _ := stageOf(t, pre, `  stage "dump" "mysql" {
    user     = "moodle"
    password = "stage-secret"
  }
  stage "notify" "smtp" {
    password = var.smtp_password
    token    = ""
  }`, "dump")
	// The file holds the sensitive variable; decoding does not change the
	// loaded pipeline.
	if got := p.Secrets(); !slices.Equal(got, []string{"var-secret"}) {
		t.Errorf("Secrets() = %q", got)
	}
	var got []string
	for _, s := range p.Stages {
		set, d := s.Decode(schema)
		if d.HasErrors() {
			t.Fatal(diagText(d))
		}
		got = append(got, set.Secrets...)
	}
	slices.Sort(got)
	// The variable's value is a stage's secret too; the empty token is no
	// secret; the user name is not one.
	want := []string{"stage-secret", "var-secret"}
	if !slices.Equal(got, want) {
		t.Errorf("stage secrets = %q, want %q", got, want)
	}
	// Decoding again gives the same, and the pipeline still holds only its own.
	if set, _ := p.Stages[0].Decode(schema); !slices.Equal(set.Secrets, []string{"stage-secret"}) {
		t.Errorf("a second Decode gives %q", set.Secrets)
	}
	if got := p.Secrets(); !slices.Equal(got, []string{"var-secret"}) {
		t.Errorf("Secrets() after Decode = %q", got)
	}
}

func TestPluginDiagnostics(t *testing.T) {
	_, s, src := stageOf(t, "", `  stage "dump" "mysql" "moodle" {
    container = "db"
    port      = 70000
  }`, "dump")
	if _, d := s.Decode(dbSchema); d.HasErrors() {
		t.Fatal(diagText(d))
	}
	got := s.PluginDiagnostics(spec.Diagnostics{
		spec.Errorf("port", "must be below %d", 65536),
		{Error: false, Summary: "no database listed: every database is dumped", Detail: "more text"},
		{Error: true, Summary: "unknown databases", Attribute: "databases"}, // not written: the stage
	})
	if len(got) != 3 {
		t.Fatalf("got %d diagnostics", len(got))
	}
	checks := []struct {
		sev     hcl.DiagnosticSeverity
		line    int
		summary string
	}{
		{hcl.DiagError, lineOf(t, src, "port"), `dump "mysql" "moodle" port: must be below 65536`},
		{hcl.DiagWarning, lineOf(t, src, `stage "dump"`), `dump "mysql" "moodle" no database listed: every database is dumped`},
		{hcl.DiagError, lineOf(t, src, `stage "dump"`), `dump "mysql" "moodle" databases: unknown databases`},
	}
	for i, c := range checks {
		d := got[i]
		if d.Severity != c.sev || d.Summary != c.summary || d.Subject == nil || d.Subject.Start.Line != c.line {
			t.Errorf("diagnostic %d = %v %q line %v; want %v %q line %d", i, d.Severity, d.Summary, d.Subject, c.sev, c.summary, c.line)
		}
	}
	// The subject of an attribute's diagnostic is the value, not the name.
	if col := got[0].Subject.Start.Column; col != strings.Index(strings.Split(src, "\n")[lineOf(t, src, "port")-1], "70000")+1 {
		t.Errorf("port diagnostic starts at column %d", col)
	}
	if got[1].Detail != "more text" {
		t.Errorf("detail = %q", got[1].Detail)
	}
}

// An Int setting given a fraction is refused at the line that gives it,
// in a list too; a whole number written as 3.0 is a whole number.
func TestWholeNumbers(t *testing.T) {
	schema := spec.Schema{Attributes: []spec.Attribute{
		{Name: "port", Type: spec.Int},
		{Name: "ports", Type: spec.List(spec.Int)},
		{Name: "ratio", Type: spec.Number},
	}}
	_, s, src := stageOf(t, "", `  stage "dump" "mysql" {
    port  = 3306.5
    ports = [1, 2.25]
    ratio = 0.5
  }`, "dump")
	_, diags := s.Decode(schema)
	wantDiag(t, diags, hcl.DiagError, lineOf(t, src, "port  ="), "port is a whole number", "3306.5 is not a whole number")
	wantDiag(t, diags, hcl.DiagError, lineOf(t, src, "ports ="), "ports is a list of whole number", "2.25 is not a whole number")
	if len(diags) != 2 {
		t.Errorf("got %d diagnostics, want 2 (ratio is a number):\n%s", len(diags), diagText(diags))
	}
	_, s, _ = stageOf(t, "", `  stage "dump" "mysql" {
    port = 3.0
  }`, "dump")
	if set, diags := s.Decode(schema); diags.HasErrors() || set.Config.GetAttr("port").AsBigFloat().String() != "3" {
		t.Errorf("port = 3.0: %s", diagText(diags))
	}
}

// storeSchema has a setting written as a block, as the s3 plugin's
// object_lock is.
var storeSchema = spec.Schema{Attributes: []spec.Attribute{
	{Name: "bucket", Type: spec.String},
	{Name: "object_lock", Type: spec.Object(map[string]spec.Type{"mode": spec.String, "days": spec.Int})},
}}

// TestBlockSettings: an Object setting is written as a block of its name,
// each attribute optional; store stages take delete (default true).
func TestBlockSettings(t *testing.T) {
	t.Run("a block", func(t *testing.T) {
		_, s, _ := stageOf(t, "", "  stage \"store\" \"s3\" {\n    bucket = \"b\"\n    delete = false\n    object_lock {\n      mode = \"governance\"\n      days = 30\n    }\n  }", "store")
		set, diags := s.Decode(storeSchema)
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		want := cty.ObjectVal(map[string]cty.Value{"mode": cty.StringVal("governance"), "days": cty.NumberIntVal(30)})
		if got := set.Config.GetAttr("object_lock"); !got.RawEquals(want) || set.Delete {
			t.Fatalf("object_lock = %#v, delete %v", got, set.Delete)
		}
	})
	t.Run("left out", func(t *testing.T) {
		_, s, _ := stageOf(t, "", "  stage \"store\" \"s3\" {\n    bucket = \"b\"\n  }", "store")
		set, diags := s.Decode(storeSchema)
		if diags.HasErrors() {
			t.Fatal(diagText(diags))
		}
		if got := set.Config.GetAttr("object_lock"); !got.IsNull() || !set.Delete {
			t.Fatalf("object_lock = %#v, delete %v", got, set.Delete)
		}
	})
	for _, c := range []struct{ name, body, at, want string }{
		{"written as an attribute", "object_lock = { mode = \"governance\", days = 30 }", "object_lock =", "object_lock"},
		{"a fraction of a day", "object_lock {\n      mode = \"governance\"\n      days = 1.5\n    }", "object_lock {", "not a whole number"},
		{"an unknown attribute in it", "object_lock {\n      mode = \"governance\"\n      years = 1\n    }", "years", "years"},
		{"twice", "object_lock {\n      days = 1\n    }\n    object_lock { # again\n      days = 2\n    }", "# again", "Duplicate object_lock block"},
		{"delete not a bool", "delete = \"no\"", "delete", "bool"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, s, src := stageOf(t, "", "  stage \"store\" \"s3\" {\n    "+c.body+"\n  }", "store")
			_, diags := s.Decode(storeSchema)
			wantDiag(t, diags, hcl.DiagError, lineOf(t, src, c.at), c.want)
		})
	}
}

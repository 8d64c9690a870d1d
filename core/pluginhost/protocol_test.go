package pluginhost_test

import (
	"context"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

func TestDescribe(t *testing.T) {
	c := connect(t, &source{})
	info, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := sdk.Info{Name: "fake", Version: "1.2.3", Kinds: []string{"dump", "archive", "checksum", "notify"}, Description: "A fake plugin for protocol tests."}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("Describe = %+v, want %+v", info, want)
	}
}

func TestSchemaRoundTrip(t *testing.T) {
	c := connect(t, &source{})
	got, err := c.Schema(context.Background(), sdk.KindDump)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attributes) != len(fakeSchema.Attributes) {
		t.Fatalf("got %d attributes, want %d", len(got.Attributes), len(fakeSchema.Attributes))
	}
	if len(got.RestoreOptions) != len(fakeSchema.RestoreOptions) {
		t.Fatalf("got %d restore options, want %d", len(got.RestoreOptions), len(fakeSchema.RestoreOptions))
	}
	all := append(slices.Clone(fakeSchema.Attributes), fakeSchema.RestoreOptions...)
	for i, want := range all {
		a := append(slices.Clone(got.Attributes), got.RestoreOptions...)[i]
		if a.Name != want.Name || !a.Type.Cty().Equals(want.Type.Cty()) || a.Type.Whole() != want.Type.Whole() ||
			a.Required != want.Required || a.Sensitive != want.Sensitive || a.Description != want.Description || a.Flag != want.Flag {
			t.Errorf("attribute %d = %s %s req=%v sens=%v %q flag=%q; want %s %s req=%v sens=%v %q flag=%q", i,
				a.Name, a.Type, a.Required, a.Sensitive, a.Description, a.Flag,
				want.Name, want.Type, want.Required, want.Sensitive, want.Description, want.Flag)
		}
		// Defaults stay inside the plugin: the core decodes with nulls.
		if a.Default != cty.NilVal {
			t.Errorf("attribute %s carries a default to the host: %#v", a.Name, a.Default)
		}
	}
	if !got.ImpliedType().Equals(fakeSchema.ImpliedType()) {
		t.Errorf("implied type %#v", got.ImpliedType())
	}

	if s, err := c.Schema(context.Background(), sdk.KindChecksum); err != nil || len(s.Attributes) != 0 || len(s.Events) != 0 {
		t.Errorf("empty schema = %+v, %v", s, err)
	}
	// A notifier's default events cross too.
	if s, err := c.Schema(context.Background(), sdk.KindNotify); err != nil || !slices.Equal(s.Events, []string{"start", "failure"}) {
		t.Errorf("notify schema = %+v, %v; want the events start and failure", s, err)
	}
	if _, err := c.Schema(context.Background(), "upload"); err == nil || err.Error() != `fake serves no "upload" stage` {
		t.Errorf("Schema(upload) error = %v; want the plugin's own words", err)
	}
}

func TestValidateConfig(t *testing.T) {
	want := sdk.Diagnostics{
		sdk.Errorf("port", "port %d is out of range", 70000),
		{Error: false, Summary: "verify is off", Detail: "the dump will not be test-restored", Attribute: "verify"},
		{Error: true, Summary: "stage-level problem"},
	}
	var seen fakeSettings
	p := &source{validate: func(cfg sdk.Config) sdk.Diagnostics {
		if err := cfg.Decode(&seen); err != nil {
			return sdk.Diagnostics{sdk.Errorf("", "decode: %v", err)}
		}
		return want
	}}
	c := connect(t, p)
	cfg := encode(t, sdk.KindDump, fakeSchema, map[string]cty.Value{
		"container": cty.StringVal("db"), "port": cty.NumberIntVal(70000), "verify": cty.False,
	})
	got, err := c.ValidateConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diagnostics = %+v\nwant %+v", got, want)
	}
	if !got.HasErrors() {
		t.Error("HasErrors = false")
	}
	if seen.Port != 70000 || seen.Verify || seen.Container != "db" {
		t.Errorf("the validator saw %+v", seen)
	}

	// A plugin that is not a Validator has nothing to say.
	r := connect(t, &retainer{})
	ds, err := r.ValidateConfig(context.Background(), encode(t, sdk.KindRetain, sdk.Schema{}, nil))
	if err != nil || len(ds) != 0 {
		t.Errorf("non-validator: %v, %v", ds, err)
	}
}

func TestConfigDefaultsAndDecode(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  fakeSettings
	}{
		{
			name:  "defaults fill what was left out",
			attrs: map[string]cty.Value{"container": cty.StringVal("db")},
			// password has no default: the preset value stays.
			want: fakeSettings{Container: "db", Port: 3306, Password: "preset", Databases: []string{"moodle"}, Verify: true, Untagged: "untouched"},
		},
		{
			name: "given values win",
			attrs: map[string]cty.Value{
				"container": cty.StringVal("db2"), "port": cty.NumberIntVal(3307), "password": cty.StringVal("pw"),
				"databases": cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
				"labels":    cty.MapVal(map[string]cty.Value{"env": cty.StringVal("prod")}),
				"verify":    cty.False,
			},
			want: fakeSettings{Container: "db2", Port: 3307, Password: "pw", Databases: []string{"a", "b"},
				Labels: map[string]string{"env": "prod"}, Verify: false, Untagged: "untouched"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &source{}
			c := connect(t, p)
			arts, err := c.Plan(context.Background(), encode(t, sdk.KindDump, fakeSchema, tt.attrs))
			if err != nil {
				t.Fatal(err)
			}
			p.mu.Lock()
			got := p.settings
			p.mu.Unlock()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plugin decoded %+v\nwant %+v", got, tt.want)
			}
			var ids []string
			for _, a := range arts {
				if a.Format != "sql" || a.ID != "db:"+a.Name {
					t.Errorf("artifact %+v", a)
				}
				ids = append(ids, a.Name)
			}
			if !slices.Equal(ids, tt.want.Databases) {
				t.Errorf("Plan artifacts %q, want %q", ids, tt.want.Databases)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	cfg, err := sdk.NewConfig(sdk.KindDump, fakeSchema, map[string]cty.Value{"container": cty.StringVal("db"), "port": cty.StringVal("3310")})
	if err != nil {
		t.Fatal(err)
	}
	var st fakeSettings
	if err := cfg.Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Port != 3310 || st.Databases[0] != "moodle" || !st.Verify {
		t.Errorf("decoded %+v", st)
	}
	for _, tt := range []struct {
		name  string
		attrs map[string]cty.Value
		want  string
	}{
		{"required missing", map[string]cty.Value{}, `setting "container" is required`},
		{"unknown", map[string]cty.Value{"container": cty.StringVal("db"), "portt": cty.NumberIntVal(1)}, `unknown setting "portt"`},
		{"wrong type", map[string]cty.Value{"container": cty.StringVal("db"), "port": cty.StringVal("x")}, `setting "port"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := sdk.NewConfig(sdk.KindDump, fakeSchema, tt.attrs); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if err := cfg.Decode(st); err == nil {
		t.Error("Decode into a non-pointer succeeded")
	}
	var wrong struct {
		Port string `cty:"databases"`
	}
	if err := cfg.Decode(&wrong); err == nil || !strings.Contains(err.Error(), `setting "databases"`) {
		t.Errorf("Decode into a mismatched field: %v", err)
	}
}

func TestKindsNotServed(t *testing.T) {
	c := connect(t, &source{kinds: []string{sdk.KindDump}})
	arch := encode(t, sdk.KindArchive, fakeSchema, map[string]cty.Value{"container": cty.StringVal("db")})
	if _, err := c.Plan(context.Background(), arch); err == nil || !strings.Contains(err.Error(), "the plugin does not implement this") {
		t.Errorf("Plan on an unserved kind: %v", err)
	}
	if _, err := c.Notify(context.Background(), encode(t, sdk.KindNotify, sdk.Schema{}, nil), "success", sdk.Report{}); err == nil || !strings.Contains(err.Error(), "does not implement") {
		t.Errorf("Notify on an unserved kind: %v", err)
	}
	if _, err := c.Plan(context.Background(), encode(t, sdk.KindNotify, sdk.Schema{}, nil)); err == nil || err.Error() != `kind "notify" does not produce artifacts` {
		t.Errorf("Plan on notify: %v", err)
	}
}

func TestChecksum(t *testing.T) {
	c := connect(t, &source{})
	got, err := c.Sum(context.Background(), encode(t, sdk.KindChecksum, sdk.Schema{}, nil), "/set", []string{"a.sql.gz", "b.tar.gz"})
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.FileSum{
		{File: "/set/a.sql.gz", Algorithm: "sha256", Hex: strings.Repeat("0", 64), Size: 0},
		{File: "/set/b.tar.gz", Algorithm: "sha256", Hex: strings.Repeat("0", 63) + "1", Size: 100},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sum = %+v", got)
	}
}

func TestRetain(t *testing.T) {
	p := &retainer{}
	c := connect(t, p)
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	in := sdk.RetainInput{
		Current:  "2024-03-02_03-00-00",
		Location: madrid,
		Sets: []sdk.SetInfo{
			{Name: "2024-03-01_03-00-00", Time: time.Date(2024, 3, 1, 3, 0, 0, 0, madrid), Complete: true},
			{Name: "2024-03-01_15-00-00", Time: time.Date(2024, 3, 1, 15, 0, 0, 0, madrid), Complete: false},
			{Name: "2024-03-02_03-00-00", Time: time.Date(2024, 3, 2, 3, 0, 0, 0, madrid), Complete: true},
		},
	}
	schema, _ := p.Schema(sdk.KindRetain)
	ds, err := c.Retain(context.Background(), encode(t, sdk.KindRetain, schema, nil), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		name := in.Sets[i].Name
		if d.Set != name || d.Keep != (i%2 == 0) || !slices.Equal(d.Reasons, []string{"reason " + name, "second"}) {
			t.Errorf("decision %d = %+v", i, d)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in.Current != in.Current || p.in.Location.String() != "Europe/Madrid" || len(p.in.Sets) != 3 {
		t.Errorf("plugin saw %+v", p.in)
	}
	for i, s := range p.in.Sets {
		if s.Name != in.Sets[i].Name || !s.Time.Equal(in.Sets[i].Time) || s.Complete != in.Sets[i].Complete {
			t.Errorf("set %d arrived as %+v, want %+v", i, s, in.Sets[i])
		}
	}
	if v := p.cfg.Value.GetAttr("keep_last"); !v.RawEquals(cty.NumberIntVal(1)) {
		t.Errorf("retain config default not applied: %#v", v)
	}
}

func TestNotify(t *testing.T) {
	p := &source{}
	c := connect(t, p)
	start := time.Date(2024, 3, 1, 2, 0, 0, 0, time.UTC)
	rep := sdk.Report{
		Pipeline: "nightly", File: "/etc/mbk/p.hcl", Host: "backup-1", Set: "2024-03-01_03-00-00", Dir: "/b/2024-03-01_03-00-00",
		Status: sdk.EventWarning, Committed: true, Started: start, Finished: start.Add(90 * time.Second), Error: "",
		Stages: []sdk.StageReport{
			{Kind: "dump", Plugin: "mysql", Name: "mysql", Status: "ok", Duration: 61 * time.Second},
			{Kind: "notify", Plugin: "smtp", Name: "smtp", Status: "failed", Duration: time.Second, Error: "dial tcp: refused"},
		},
		Artifacts: []sdk.ArtifactReport{{Stage: "dump", Plugin: "mysql", File: "moodle_x.sql.gz", Size: 10, Raw: 40, SHA256: "ab"}},
		Retention: []sdk.Decision{{Set: "old", Keep: false, Reasons: []string{"no rule keeps it"}}},
		Warnings:  []string{"moodle is not in maintenance mode"},
		LogTail:   []string{"line 1", "line 2 ñ 😀"},
	}
	summary, err := c.Notify(context.Background(), encode(t, sdk.KindNotify, sdk.Schema{}, nil), sdk.EventWarning, rep)
	if err != nil {
		t.Fatal(err)
	}
	if summary != "sent to ops@example.org" {
		t.Errorf("summary %q", summary)
	}
	p.mu.Lock()
	got, event := p.report, p.event
	p.mu.Unlock()
	if event != sdk.EventWarning {
		t.Errorf("event %q", event)
	}
	if !reflect.DeepEqual(got, rep) {
		t.Errorf("report arrived as\n%+v\nwant\n%+v", got, rep)
	}
	if got.Duration() != 90*time.Second {
		t.Errorf("Duration = %v", got.Duration())
	}

	_, err = c.Notify(context.Background(), encode(t, sdk.KindNotify, sdk.Schema{}, nil), "fail", rep)
	if err == nil || err.Error() != `send mail to "ops@example.org": 554 5.7.1 relay denied` {
		t.Errorf("Notify error = %v; want the plugin's own words", err)
	}
}

// A plugin process reads each kind's schema once, and decodes a stage's
// settings once however many calls carry them: Serve checks the schemas as
// it starts, and every later call (schema, validation, planning, backup,
// restore) is served from what it read.
func TestSchemaReadOnce(t *testing.T) {
	p := &source{backup: func(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
		_, err := io.WriteString(w, "-- dump")
		return sdk.BackupResult{}, err
	}, restore: func(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
		_, err := io.Copy(io.Discard, r)
		return sdk.RestoreResult{}, err
	}}
	c := connect(t, p)
	ctx := context.Background()
	cfg := dumpConfig(t)
	for range 3 {
		if _, err := c.Schema(ctx, sdk.KindDump); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ValidateConfig(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Plan(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Backup(ctx, cfg, "db:moodle", "2024-03-01_03-00-00", io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Restore(ctx, cfg, "db:moodle", nil, nil, strings.NewReader("-- dump")); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range []string{sdk.KindDump, sdk.KindArchive, sdk.KindChecksum, sdk.KindNotify} {
		if p.schemaCalls[k] != 1 {
			t.Errorf("Schema(%s) was called %d times, want once", k, p.schemaCalls[k])
		}
	}
}

// A built-in plugin is served inside the host's process over the protocol:
// found without a binary, reached like any other, stopped by Kill (its
// client then fails) and started again on the next Get.
func TestBuiltinInProcess(t *testing.T) {
	h := pluginhost.New(pluginhost.Options{Builtins: map[string]func(hclog.Logger) sdk.Plugin{
		"fake": func(hclog.Logger) sdk.Plugin { return &source{} },
	}, Logger: hclog.NewNullLogger()})
	defer h.Close()
	if f, err := h.Find("fake"); err != nil || !f.Builtin {
		t.Fatalf("Find: %+v, %v", f, err)
	}
	ctx := context.Background()
	c, info, err := h.Get(ctx, "fake")
	if err != nil || info.Name != "fake" || h.Path("fake") != "built-in" {
		t.Fatalf("Get: %+v, %v (path %q)", info, err, h.Path("fake"))
	}
	if _, err := c.Plan(ctx, dumpConfig(t)); err != nil {
		t.Fatalf("a call through the protocol: %v", err)
	}
	h.Kill("fake")
	if _, err := c.Describe(ctx); err == nil {
		t.Error("the stopped built-in still answers")
	}
	c2, _, err := h.Get(ctx, "fake")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Describe(ctx); err != nil {
		t.Errorf("started again: %v", err)
	}
	if h.Starts() != 2 {
		t.Errorf("Starts = %d, want 2", h.Starts())
	}
}

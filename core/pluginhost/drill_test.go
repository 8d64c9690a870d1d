package pluginhost_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

// drillSource is the fake source with the optional drill calls.
type drillSource struct {
	*source
	sandboxReq sdk.SandboxRequest
	checkReq   sdk.CheckRequest
	refsSeen   []sdk.Ref
	torn       []string
}

func (d *drillSource) Sandbox(_ context.Context, req sdk.SandboxRequest) (sdk.Sandbox, error) {
	d.sandboxReq = req
	return sdk.Sandbox{Options: map[string]string{"target_database": req.Label + "_db"}, Summary: "a database server in container " + req.Label}, nil
}

func (d *drillSource) Teardown(_ context.Context, _ sdk.Config, label string) (string, error) {
	d.torn = append(d.torn, label)
	return "removed container " + label, nil
}

func (d *drillSource) Check(_ context.Context, req sdk.CheckRequest) (sdk.CheckResult, error) {
	d.checkReq = req
	if err := sdk.ReadRefs(req.RefsIn, func(r sdk.Ref) error { d.refsSeen = append(d.refsSeen, r); return nil }); err != nil {
		return sdk.CheckResult{}, err
	}
	w, err := sdk.NewRefWriter(req.RefsOut)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	w.Add(sdk.Ref{Hash: "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", Label: "mod_resource/content/Plan\t2026.pdf"})
	if err := w.Close(); err != nil {
		return sdk.CheckResult{}, err
	}
	return sdk.CheckResult{Checks: []sdk.Check{
		{Name: "rows", OK: true, Summary: "412 tables as recorded"},
		{Name: "moodle-version", OK: false, Summary: "release differs", Problems: []string{"recorded 4.5.1, restored 4.4.0"}},
	}}, nil
}

// TestDrillCallsOverTheProtocol: Sandbox, Check and Teardown travel the real
// gRPC protocol with their options, details, reference files and sample; a
// plugin without them answers ErrUnsupported, which the core reports instead
// of failing.
func TestDrillCallsOverTheProtocol(t *testing.T) {
	d := &drillSource{source: &source{}}
	c := connect(t, d)
	ctx := context.Background()
	details := json.RawMessage(`{"database":"moodle","tables":412}`)

	box, err := c.Sandbox(ctx, dumpConfig(t), "db:moodle", "mbk-drill-x", details)
	if err != nil {
		t.Fatal(err)
	}
	if box.Options["target_database"] != "mbk-drill-x_db" || box.Summary != "a database server in container mbk-drill-x" {
		t.Fatalf("sandbox: %+v", box)
	}
	if d.sandboxReq.Label != "mbk-drill-x" || d.sandboxReq.Artifact != "db:moodle" || d.sandboxReq.Details["database"] != "moodle" {
		t.Fatalf("the plugin got %+v", d.sandboxReq)
	}

	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	w, err := sdk.NewRefWriter(in)
	if err != nil {
		t.Fatal(err)
	}
	w.Add(sdk.Ref{Hash: "sha1:0123456789abcdef0123456789abcdef01234567", Label: "user/draft/a.txt"})
	w.Close()
	opts, err := wire.EncodeValue(cty.ObjectVal(map[string]cty.Value{
		"target_database": cty.StringVal("mbk-drill-x_db"), "clean": cty.NullVal(cty.Bool), "jobs": cty.NullVal(cty.Number),
	}), fakeRestoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	checks, err := c.Check(ctx, dumpConfig(t), pluginhost.CheckArgs{ArtifactID: "db:moodle", Options: opts, Details: details,
		RefsIn: in, RefsOut: out, Sample: sdk.Sample{Part: 3, Of: 100, Min: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 2 || !checks[0].OK || checks[1].OK || !slices.Equal(checks[1].Problems, []string{"recorded 4.5.1, restored 4.4.0"}) {
		t.Fatalf("checks: %+v", checks)
	}
	var o struct {
		Target string `cty:"target_database"`
		Clean  bool   `cty:"clean"`
		Jobs   int    `cty:"jobs"`
	}
	if err := d.checkReq.Options.Decode(&o); err != nil || o.Target != "mbk-drill-x_db" || o.Jobs != 2 {
		t.Fatalf("the check's restore options (defaults filled in): %+v %v", o, err)
	}
	if d.checkReq.Sample != (sdk.Sample{Part: 3, Of: 100, Min: 100}) {
		t.Fatalf("sample: %+v", d.checkReq.Sample)
	}
	if len(d.refsSeen) != 1 || d.refsSeen[0].Hash != "sha1:0123456789abcdef0123456789abcdef01234567" || d.refsSeen[0].Label != "user/draft/a.txt" {
		t.Fatalf("refs in: %+v", d.refsSeen)
	}
	var outRefs []sdk.Ref
	if err := sdk.ReadRefs(out, func(r sdk.Ref) error { outRefs = append(outRefs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(outRefs) != 1 || outRefs[0].Label != "mod_resource/content/Plan 2026.pdf" {
		t.Fatalf("refs out (a tab in a label becomes a space): %+v", outRefs)
	}

	if sum, err := c.Teardown(ctx, dumpConfig(t), "mbk-drill-x"); err != nil || sum != "removed container mbk-drill-x" || !slices.Equal(d.torn, []string{"mbk-drill-x"}) {
		t.Fatalf("teardown: %q %v %v", sum, err, d.torn)
	}

	// The plain fake offers none of them.
	plain := connect(t, &source{})
	if _, err := plain.Sandbox(ctx, dumpConfig(t), "db:moodle", "l", nil); !errors.Is(err, pluginhost.ErrUnsupported) {
		t.Errorf("Sandbox of a plugin without it: %v", err)
	}
	if _, err := plain.Teardown(ctx, dumpConfig(t), "l"); !errors.Is(err, pluginhost.ErrUnsupported) {
		t.Errorf("Teardown of a plugin without it: %v", err)
	}
	if _, err := plain.Check(ctx, dumpConfig(t), pluginhost.CheckArgs{ArtifactID: "db:moodle", RefsOut: filepath.Join(dir, "x")}); !errors.Is(err, pluginhost.ErrUnsupported) {
		t.Errorf("Check of a plugin without it: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("a plugin without checks wrote references: %v", err)
	}
}

// TestSampleRotation: 1% in turn reads each item exactly once over 100
// drills, and Extra widens a part that would hold fewer than Min.
func TestSampleRotation(t *testing.T) {
	keys := make([]string, 5000)
	for i := range keys {
		keys[i] = sha1Hex(i)
	}
	seen := map[string]int{}
	for part := 1; part <= 100; part++ {
		s := sdk.Sample{Part: part, Of: 100}
		for _, k := range keys {
			if s.In(k, 0) {
				seen[k]++
			}
		}
	}
	for _, k := range keys {
		if seen[k] != 1 {
			t.Fatalf("key %s read %d times over a rotation", k, seen[k])
		}
	}
	s := sdk.Sample{Part: 7, Of: 100, Min: 100}
	counts := make([]int, s.Of)
	for _, k := range keys {
		counts[s.Group(k)]++
	}
	extra := s.Extra(counts) // about 50 a part: two or three parts reach 100
	n := 0
	for _, k := range keys {
		if s.In(k, extra) {
			n++
		}
	}
	if extra < 1 || n < 100 || n-counts[(s.Part-1+extra)%s.Of] >= 100 {
		t.Fatalf("Extra = %d reading %d keys: want the fewest parts that reach 100", extra, n)
	}
	s.Min = len(keys) + 1
	if got := s.Extra(counts); got != s.Of-1 {
		t.Fatalf("a minimum above the total: Extra = %d, want every part (%d)", got, s.Of-1)
	}
	if (sdk.Sample{}).In(keys[0], 0) || !(sdk.Sample{Part: 1, Of: 1}).In(keys[0], 0) {
		t.Fatal("Of 0 reads nothing; Of 1 reads all")
	}
}

func sha1Hex(i int) string {
	h := sha1.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	return hex.EncodeToString(h[:])
}

package retain_test

import (
	"context"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/retain"
	"github.com/mbk-backup/mbk/core/sdk"
)

func newConfig(t *testing.T, p *retain.Plugin, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	schema, err := p.Schema(sdk.KindRetain)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sdk.NewConfig(sdk.KindRetain, schema, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPluginDescribeAndSchema(t *testing.T) {
	p := &retain.Plugin{Version: "1.2.3"}
	info := p.Describe()
	if info.Name != "policy" || info.Version != "1.2.3" || !slices.Equal(info.Kinds, []string{sdk.KindRetain}) {
		t.Errorf("Describe = %+v", info)
	}
	schema, _ := p.Schema(sdk.KindRetain)
	for _, name := range []string{"keep_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly"} {
		a, ok := schema.Attribute(name)
		if !ok || a.Type != sdk.Int || a.Required || a.Sensitive || a.Description == "" {
			t.Errorf("attribute %s = %+v, %v", name, a, ok)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	huge, _ := new(big.Float).SetString("1e30")
	tests := []struct {
		name     string
		attrs    map[string]cty.Value
		errAttrs []string // attributes with an error diagnostic
		warning  bool     // the "every set is kept" warning
	}{
		{"valid", map[string]cty.Value{"keep_days": cty.NumberIntVal(14), "keep_last": cty.NumberIntVal(3)}, nil, false},
		{"zero is allowed", map[string]cty.Value{"keep_days": cty.NumberIntVal(0), "keep_monthly": cty.NumberIntVal(6)}, nil, false},
		{"negative", map[string]cty.Value{"keep_last": cty.NumberIntVal(-1)}, []string{"keep_last"}, false},
		// 1.5 never reaches the plugin: its schema says Int, and the core
		// refuses it with the file and line (core/config TestWholeNumbers).
		{"several at once", map[string]cty.Value{"keep_daily": cty.NumberIntVal(-5), "keep_weekly": cty.NumberIntVal(-2), "keep_last": cty.NumberIntVal(2)},
			[]string{"keep_daily", "keep_weekly"}, false},
		// Valid-looking but beyond int: it must fail at validate time, not
		// at retention time after a backup has been made.
		{"too large", map[string]cty.Value{"keep_last": cty.NumberVal(huge)}, []string{"keep_last"}, false},
		{"empty warns", nil, nil, true},
	}
	p := &retain.Plugin{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := p.ValidateConfig(context.Background(), newConfig(t, p, tt.attrs))
			var errAttrs []string
			warned := false
			for _, d := range ds {
				if d.Error {
					errAttrs = append(errAttrs, d.Attribute)
					if d.Summary != "must be a whole number, 0 or more" {
						t.Errorf("summary %q", d.Summary)
					}
				} else if d.Summary == "no retention rule is set: every set is kept" {
					warned = true
				}
			}
			slices.Sort(errAttrs)
			if !slices.Equal(errAttrs, tt.errAttrs) {
				t.Errorf("errors on %q, want %q (%+v)", errAttrs, tt.errAttrs, ds)
			}
			if warned != tt.warning {
				t.Errorf("warning = %v, want %v", warned, tt.warning)
			}
		})
	}
}

func TestPluginDecide(t *testing.T) {
	p := &retain.Plugin{}
	cfg := newConfig(t, p, map[string]cty.Value{"keep_last": cty.NumberIntVal(2)})
	base := time.Date(2024, 5, 1, 3, 0, 0, 0, time.UTC)
	in := sdk.RetainInput{Sets: daily(base, 4), Location: time.UTC}
	ds, err := p.Decide(context.Background(), cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	got := kept(t, in, ds)
	if want := names(in.Sets[2:]...); !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
}

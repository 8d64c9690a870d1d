package retain

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Plugin serves Policy as the built-in retain plugin "policy".
type Plugin struct {
	Version string
	Log     hclog.Logger
}

var (
	_ sdk.Retainer  = (*Plugin)(nil)
	_ sdk.Validator = (*Plugin)(nil)
)

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "keep_days", Type: sdk.Int, Description: "Keep every set made within this many days of the newest set (the seed's BACKUP_RETENTION_DAYS)."},
	{Name: "keep_last", Type: sdk.Int, Description: "Keep the newest N sets."},
	{Name: "keep_daily", Type: sdk.Int, Description: "Keep the newest set of each of the last N days that have one."},
	{Name: "keep_weekly", Type: sdk.Int, Description: "Keep the newest set of each of the last N ISO weeks that have one."},
	{Name: "keep_monthly", Type: sdk.Int, Description: "Keep the newest set of each of the last N months that have one."},
}}

// Describe implements sdk.Plugin.
func (p *Plugin) Describe() sdk.Info {
	return sdk.Info{Name: "policy", Version: p.Version, Kinds: []string{sdk.KindRetain},
		Description: "Keeps sets by age, count and calendar period; never the newest."}
}

// Schema implements sdk.Plugin.
func (p *Plugin) Schema(string) (sdk.Schema, error) { return schema, nil }

// ValidateConfig implements sdk.Validator.
func (p *Plugin) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	var ds sdk.Diagnostics
	for _, a := range schema.Attributes {
		v := cfg.Value.GetAttr(a.Name)
		if v.IsNull() {
			continue
		}
		var n int
		if err := gocty.FromCtyValue(v, &n); err != nil || n < 0 {
			ds = append(ds, sdk.Errorf(a.Name, "must be a whole number, 0 or more"))
		}
	}
	var pol Policy
	if err := cfg.Decode(&pol); err == nil && pol.Empty() {
		ds = append(ds, sdk.Diagnostic{Summary: "no retention rule is set: every set is kept", Error: false})
	}
	return ds
}

// Decide implements sdk.Retainer.
func (p *Plugin) Decide(_ context.Context, cfg sdk.Config, in sdk.RetainInput) ([]sdk.Decision, error) {
	var pol Policy
	if err := cfg.Decode(&pol); err != nil {
		return nil, err
	}
	return Decide(pol, in), nil
}

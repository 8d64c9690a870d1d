// Package engine runs one pipeline: it asks each stage's plugin for its
// schema, decodes the stage bodies, and runs the stages in order into a
// staging directory that becomes a set only when everything required worked.
package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
)

// Stage is a loaded stage bound to its plugin: its settings decoded once
// against the plugin's schema, and their wire form encoded once. The loaded
// config.Stage is shared, never changed.
type Stage struct {
	*config.Stage
	config.Settings
	Client *pluginhost.Client
	Info   sdk.Info
	Schema spec.Schema
	Wire   *pb.Config // the plugin's settings as they travel
}

// Prepare starts each stage's plugin, decodes every stage body against the
// plugin's schema and has the plugin validate it. It touches nothing outside:
// no container, database or mail server. All problems are reported at once.
// The plugins stay running for the run (Run stops each after its last
// stage) or until host.Close.
func Prepare(ctx context.Context, host *pluginhost.Host, p *config.Pipeline) ([]*Stage, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var out []*Stage
	for _, s := range p.Stages {
		st, d := prepareStage(ctx, host, s)
		diags = append(diags, d...)
		if st != nil {
			out = append(out, st)
		}
	}
	// Known only now: which of env_file's values reach sensitive settings.
	diags = append(diags, p.File.CheckEnvFile(Secrets(p, out))...)
	return out, diags
}

func prepareStage(ctx context.Context, host *pluginhost.Host, s *config.Stage) (*Stage, hcl.Diagnostics) {
	client, info, err := host.Get(ctx, s.Plugin)
	if err != nil {
		return nil, hcl.Diagnostics{s.Diagnose("Plugin not available", err)}
	}
	if !slices.Contains(info.Kinds, s.Kind) {
		return nil, hcl.Diagnostics{s.Diagnose("Plugin does not serve this kind",
			fmt.Errorf("plugin %q serves %v, not %q", s.Plugin, info.Kinds, s.Kind))}
	}
	schema, err := host.Schema(ctx, s.Plugin, s.Kind)
	if err == nil {
		err = schema.Check()
	}
	if err != nil {
		return nil, hcl.Diagnostics{s.Diagnose("Cannot read the plugin's schema", err)}
	}
	settings, diags := s.Decode(schema)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, err := wire.EncodeConfig(s.Kind, settings.Config, schema)
	if err != nil {
		return nil, append(diags, s.Diagnose("Cannot encode the stage's settings", err))
	}
	pd, err := client.ValidateConfig(ctx, cfg)
	if err != nil {
		return nil, append(diags, s.Diagnose("The plugin could not validate the stage", err))
	}
	diags = append(diags, s.PluginDiagnostics(pd)...)
	if diags.HasErrors() {
		return nil, diags
	}
	return &Stage{Stage: s, Settings: settings, Client: client, Info: info, Schema: schema, Wire: cfg}, diags
}

// Secrets lists every sensitive value of a prepared pipeline: the file's
// sensitive variables and the stages' sensitive settings.
func Secrets(p *config.Pipeline, stages []*Stage) []string {
	out := p.Secrets()
	for _, s := range stages {
		out = append(out, s.Secrets...)
	}
	return out
}

// Preflight asks every stage's plugin to check the live world.
func Preflight(ctx context.Context, stages []*Stage) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range stages {
		pd, err := s.Client.Preflight(ctx, s.Wire)
		if err != nil {
			diags = append(diags, s.Diagnose("Preflight failed", err))
			continue
		}
		diags = append(diags, s.PluginDiagnostics(pd)...)
	}
	return diags
}

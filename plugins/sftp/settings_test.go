package main

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

func TestValidateConfig(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		attr  string // the attribute at fault; "" for a valid config
		want  string
	}{
		{"ok", nil, "", ""},
		{"ipv6 host", map[string]cty.Value{"host": cty.StringVal("::1")}, "", ""},
		{"host with port", map[string]cty.Value{"host": cty.StringVal("backup.example.org:2222")}, "host", "set port instead"},
		{"empty host", map[string]cty.Value{"host": cty.StringVal(" ")}, "host", "must name"},
		{"port out of range", map[string]cty.Value{"port": cty.NumberIntVal(70000)}, "port", "1 to 65535"},
		{"empty user", map[string]cty.Value{"user": cty.StringVal("")}, "user", "must name"},
		{"empty key_file", map[string]cty.Value{"key_file": cty.StringVal("")}, "key_file", "must name"},
		{"empty known_hosts", map[string]cty.Value{"known_hosts": cty.StringVal("")}, "known_hosts", "always checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := map[string]cty.Value{
				"host": cty.StringVal("backup.example.org"), "user": cty.StringVal("moodle"),
				"key_file": cty.StringVal("/etc/mbk/id_ed25519"), "known_hosts": cty.StringVal("/etc/mbk/known_hosts"),
			}
			for k, v := range tt.attrs {
				attrs[k] = v
			}
			cfg, err := sdk.NewConfig(sdk.KindStore, schema, attrs)
			if err != nil {
				t.Fatal(err)
			}
			ds := (&plugin{}).ValidateConfig(context.Background(), cfg)
			if tt.attr == "" {
				if len(ds) > 0 {
					t.Errorf("diagnostics: %+v", ds)
				}
				return
			}
			if len(ds) != 1 || !ds[0].Error || ds[0].Attribute != tt.attr || !strings.Contains(ds[0].Summary, tt.want) {
				t.Errorf("diagnostics: %+v\nwant one error on %s saying %q", ds, tt.attr, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := sdk.NewConfig(sdk.KindStore, schema, map[string]cty.Value{
		"host": cty.StringVal("backup.example.org"), "user": cty.StringVal("moodle"),
		"key_file": cty.StringVal("k"), "known_hosts": cty.StringVal("h"), "path": cty.StringVal("/srv/backups/moodle/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, ds := load(cfg)
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	if s.addr() != "backup.example.org:22" || s.Path != "/srv/backups/moodle" {
		t.Errorf("addr %s path %s", s.addr(), s.Path)
	}
	if got := s.url("/srv/backups/moodle/s/f"); got != "sftp://moodle@backup.example.org:22/srv/backups/moodle/s/f" {
		t.Errorf("url %s", got)
	}
}

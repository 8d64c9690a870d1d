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
		{"aws", map[string]cty.Value{}, "", ""},
		{"minio over http", map[string]cty.Value{"endpoint": cty.StringVal("127.0.0.1:9000"), "insecure": cty.True}, "", ""},
		{"url endpoint", map[string]cty.Value{"endpoint": cty.StringVal("https://s3.eu-central-003.backblazeb2.com")}, "", ""},
		{"prefix with trailing slash", map[string]cty.Value{"prefix": cty.StringVal("moodle/prod/")}, "", ""},
		{"bucket with dots", map[string]cty.Value{"bucket": cty.StringVal("backups.example.org")}, "", ""},
		{"bucket too short", map[string]cty.Value{"bucket": cty.StringVal("ab")}, "bucket", "3 to 63 characters"},
		{"bucket upper case", map[string]cty.Value{"bucket": cty.StringVal("Backups")}, "bucket", "lowercase"},
		{"bucket underscore", map[string]cty.Value{"bucket": cty.StringVal("my_backups")}, "bucket", "lowercase"},
		{"bucket ends with hyphen", map[string]cty.Value{"bucket": cty.StringVal("backups-")}, "bucket", "begin and end"},
		{"bucket double dot", map[string]cty.Value{"bucket": cty.StringVal("a..b")}, "bucket", "two dots"},
		{"bucket like an IP", map[string]cty.Value{"bucket": cty.StringVal("192.168.5.4")}, "bucket", "IP address"},
		{"bucket reserved prefix", map[string]cty.Value{"bucket": cty.StringVal("xn--backups")}, "bucket", "reserved"},
		{"empty bucket", map[string]cty.Value{"bucket": cty.StringVal("")}, "bucket", "must name"},
		{"prefix leading slash", map[string]cty.Value{"prefix": cty.StringVal("/moodle")}, "prefix", "must not start with a slash"},
		{"prefix dot dot", map[string]cty.Value{"prefix": cty.StringVal("moodle/../x")}, "prefix", ".."},
		{"prefix double slash", map[string]cty.Value{"prefix": cty.StringVal("moodle//x")}, "prefix", "empty"},
		{"only the access key", map[string]cty.Value{"access_key": cty.StringVal("AK")}, "access_key", "go together"},
		{"http without insecure", map[string]cty.Value{"endpoint": cty.StringVal("http://127.0.0.1:9000")}, "endpoint", "set insecure = true"},
		{"https with insecure", map[string]cty.Value{"endpoint": cty.StringVal("https://minio:9000"), "insecure": cty.True}, "endpoint", "choose one"},
		{"insecure on AWS", map[string]cty.Value{"insecure": cty.True}, "insecure", "needs an endpoint"},
		{"endpoint with a path", map[string]cty.Value{"endpoint": cty.StringVal("https://minio:9000/bucket")}, "endpoint", "nothing more"},
		{"endpoint with a user", map[string]cty.Value{"endpoint": cty.StringVal("https://me:pw@minio:9000")}, "endpoint", "nothing more"},
		{"ftp endpoint", map[string]cty.Value{"endpoint": cty.StringVal("ftp://minio")}, "endpoint", "scheme"},
		{"object lock, governance", map[string]cty.Value{"object_lock": lock("governance", 30)}, "", ""},
		{"object lock, COMPLIANCE", map[string]cty.Value{"object_lock": lock("COMPLIANCE", 1)}, "", ""},
		{"object lock without mode", map[string]cty.Value{"object_lock": lockNull(cty.NullVal(cty.String), cty.NumberIntVal(7))}, "object_lock", "needs mode"},
		{"object lock without days", map[string]cty.Value{"object_lock": lockNull(cty.StringVal("governance"), cty.NullVal(cty.Number))}, "object_lock", "needs days"},
		{"object lock, unknown mode", map[string]cty.Value{"object_lock": lock("legal-hold", 7)}, "object_lock", "not \"legal-hold\""},
		{"object lock, zero days", map[string]cty.Value{"object_lock": lock("governance", 0)}, "object_lock", "1 to 36500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := map[string]cty.Value{"bucket": cty.StringVal("moodle-backups")}
			for k, v := range tt.attrs {
				attrs[k] = v
			}
			cfg, err := sdk.NewConfig(sdk.KindStore, schema, attrs)
			if err != nil {
				t.Fatal(err)
			}
			ds := (&plugin{}).ValidateConfig(context.Background(), cfg)
			if tt.attr == "" {
				if ds.HasErrors() {
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

func TestSettingsDefaults(t *testing.T) {
	tests := []struct {
		name      string
		attrs     map[string]cty.Value
		endpoint  string
		pathStyle bool
		key       string
	}{
		{"aws", nil, "", false, "s/f"},
		{"aws, path style asked", map[string]cty.Value{"path_style": cty.True}, "", true, "s/f"},
		{"endpoint", map[string]cty.Value{"endpoint": cty.StringVal("minio.lan:9000"), "prefix": cty.StringVal("a/b/")}, "https://minio.lan:9000", true, "a/b/s/f"},
		{"endpoint, virtual hosts", map[string]cty.Value{"endpoint": cty.StringVal("minio.lan"), "path_style": cty.False}, "https://minio.lan", false, "s/f"},
		{"insecure endpoint", map[string]cty.Value{"endpoint": cty.StringVal("127.0.0.1:9000"), "insecure": cty.True}, "http://127.0.0.1:9000", true, "s/f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := map[string]cty.Value{"bucket": cty.StringVal("moodle-backups")}
			for k, v := range tt.attrs {
				attrs[k] = v
			}
			cfg, err := sdk.NewConfig(sdk.KindStore, schema, attrs)
			if err != nil {
				t.Fatal(err)
			}
			s, ds := load(cfg)
			if ds.HasErrors() {
				t.Fatal(ds)
			}
			if s.endpoint != tt.endpoint || s.pathStyle != tt.pathStyle || s.Region != "us-east-1" || s.key("s", "f") != tt.key {
				t.Errorf("endpoint %q path style %v region %q key %q", s.endpoint, s.pathStyle, s.Region, s.key("s", "f"))
			}
			if want := "s3://moodle-backups/" + tt.key; s.location(s.key("s", "f")) != want {
				t.Errorf("location %q, want %q", s.location(s.key("s", "f")), want)
			}
		})
	}
}

func TestPartSize(t *testing.T) {
	for _, tt := range []struct{ size, want int64 }{
		{0, partSize}, {50 << 20, partSize}, {150 << 30, partSize}, {160 << 30, 17 << 20},
		{200 << 30, 21 << 20}, {5 << 40, 525 << 20},
	} {
		got := partSizeFor(tt.size)
		if got != tt.want || (tt.size+got-1)/got > maxParts {
			t.Errorf("partSizeFor(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

func lock(mode string, days int64) cty.Value {
	return lockNull(cty.StringVal(mode), cty.NumberIntVal(days))
}

func lockNull(mode, days cty.Value) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"mode": mode, "days": days})
}

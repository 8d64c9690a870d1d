package main

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// TestMain keeps the developer's own AWS settings out of the tests, and the
// SDK away from the instance metadata service: tests reach 127.0.0.1 only.
func TestMain(m *testing.M) {
	for _, e := range os.Environ() {
		if name, _, _ := strings.Cut(e, "="); strings.HasPrefix(name, "AWS_") {
			os.Unsetenv(name)
		}
	}
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Exit(m.Run())
}

func newPlugin(t *testing.T) *plugin {
	return &plugin{log: hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// stageConfig builds a stage body; attrs override the server's settings, and a
// null value removes one.
func stageConfig(t *testing.T, srv *storetest.S3, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	all := map[string]cty.Value{
		"endpoint":   cty.StringVal(srv.Host),
		"insecure":   cty.BoolVal(srv.CAFile == ""),
		"bucket":     cty.StringVal(srv.Bucket),
		"prefix":     cty.StringVal("backups/moodle"),
		"access_key": cty.StringVal(srv.AccessKey),
		"secret_key": cty.StringVal(srv.SecretKey),
	}
	if srv.CAFile != "" {
		all["ca_file"] = cty.StringVal(srv.CAFile)
	}
	for k, v := range attrs {
		if v.IsNull() {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	cfg, err := sdk.NewConfig(sdk.KindStore, schema, all)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

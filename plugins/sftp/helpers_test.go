package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

func newPlugin(t *testing.T) *plugin {
	return &plugin{log: hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// base is the remote directory the tests' sets go to.
func base(srv *storetest.SFTP) string { return filepath.Join(srv.Dir, "backups") }

// stageConfig builds a stage body for srv; attrs override its settings, and
// a null value removes one.
func stageConfig(t *testing.T, srv *storetest.SFTP, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	all := map[string]cty.Value{
		"host":        cty.StringVal(srv.Host),
		"port":        cty.NumberIntVal(int64(srv.Port)),
		"user":        cty.StringVal(srv.User),
		"key_file":    cty.StringVal(srv.KeyFile),
		"known_hosts": cty.StringVal(srv.KnownHosts),
		"path":        cty.StringVal(base(srv)),
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

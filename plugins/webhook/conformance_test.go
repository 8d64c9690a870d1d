package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/sdk/sdktest"
)

// tokenPath is the secret part of an incoming-webhook URL.
const tokenPath = "/hooks/T0KEN-7f3a9c1e-s3cret"

// TestConformance runs the SDK's notifier kit against a real HTTP server,
// which keeps the requests it gets.
func TestConformance(t *testing.T) {
	type request struct {
		method, path, contentType, auth string
		body                            map[string]any
	}
	var mu sync.Mutex
	var got []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), auth: r.Header.Get("Authorization")}
		if err := json.Unmarshal(b, &req.body); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	settings := func(base string) map[string]cty.Value {
		return map[string]cty.Value{
			"url":     cty.StringVal(base + tokenPath),
			"headers": cty.MapVal(map[string]cty.Value{"Authorization": cty.StringVal("Bearer not-a-secret")}),
		}
	}
	sdktest.Notifier(t, &webhook{log: hclog.NewNullLogger()}, sdktest.NotifierCase{
		Settings: settings(srv.URL),
		Check: func(t testing.TB, event string, rep sdk.Report) {
			mu.Lock()
			defer mu.Unlock()
			if len(got) == 0 {
				t.Fatalf("%s: no request arrived", event)
			}
			r := got[len(got)-1]
			if r.method != http.MethodPost || r.path != tokenPath || r.contentType != "application/json" || r.auth != "Bearer not-a-secret" {
				t.Errorf("%s: %s %s, Content-Type %q, Authorization %q", event, r.method, r.path, r.contentType, r.auth)
			}
			if r.body["event"] != event || r.body["pipeline"] != rep.Pipeline || r.body["status"] != rep.Status || r.body["set"] != rep.Set {
				t.Errorf("%s: body %v", event, r.body)
			}
		},
		Unresponsive: func(addr string) map[string]cty.Value { return settings("http://" + addr) },
	})
}

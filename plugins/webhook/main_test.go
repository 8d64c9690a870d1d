package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// request is what the test server received.
type request struct {
	method, path, contentType, body string
}

// sink is a real HTTP server on 127.0.0.1 that records each request and
// answers with status.
func sink(t *testing.T, status int) (*httptest.Server, func() []request) {
	t.Helper()
	var mu sync.Mutex
	var got []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), got...)
	}
}

func config(t *testing.T, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	cfg, err := sdk.NewConfig(sdk.KindNotify, schema, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newWebhook() (*webhook, *bytes.Buffer) {
	var log bytes.Buffer
	return &webhook{log: hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})}, &log
}

var report = sdk.Report{Pipeline: "moodle", Set: "2026-01-02_03-04-05", Status: sdk.EventSuccess}

func TestContentType(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  string
	}{
		{"the JSON report by default", nil, "application/json"},
		{"a template's body, JSON by default", map[string]cty.Value{
			"template": cty.StringVal(`{"text": {{json .Pipeline}}}`),
		}, "application/json"},
		{"set for a template that writes text", map[string]cty.Value{
			"template":     cty.StringVal(`{{.Pipeline}} {{.Status}}`),
			"content_type": cty.StringVal("text/plain; charset=utf-8"),
		}, "text/plain; charset=utf-8"},
		{"a header of that name wins", map[string]cty.Value{
			"content_type": cty.StringVal("text/plain"),
			"headers":      cty.MapVal(map[string]cty.Value{"Content-Type": cty.StringVal("application/x-custom")}),
		}, "application/x-custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := sink(t, http.StatusOK)
			attrs := map[string]cty.Value{"url": cty.StringVal(srv.URL + "/hooks/T0KEN")}
			for k, v := range tt.attrs {
				attrs[k] = v
			}
			w, _ := newWebhook()
			cfg := config(t, attrs)
			if ds := w.ValidateConfig(context.Background(), cfg); len(ds) != 0 {
				t.Fatalf("valid settings refused: %v", ds)
			}
			if _, err := w.Notify(context.Background(), cfg, sdk.EventSuccess, report); err != nil {
				t.Fatal(err)
			}
			reqs := got()
			if len(reqs) != 1 || reqs[0].contentType != tt.want {
				t.Fatalf("want one request with Content-Type %q, got %+v", tt.want, reqs)
			}
		})
	}
}

func TestContentTypeMustBeAMediaType(t *testing.T) {
	w, _ := newWebhook()
	for _, bad := range []string{"", "json", "text/plain; charset"} {
		cfg := config(t, map[string]cty.Value{"url": cty.StringVal("https://example.com/hook"), "content_type": cty.StringVal(bad)})
		ds := w.ValidateConfig(context.Background(), cfg)
		if len(ds) != 1 || ds[0].Attribute != "content_type" {
			t.Errorf("content_type %q: want one diagnostic on content_type, got %+v", bad, ds)
		}
	}
}

// Each send is logged with what answered, never with the URL: its path
// holds the token.
func TestEachSendIsLogged(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
		srv, _ := sink(t, status)
		w, log := newWebhook()
		cfg := config(t, map[string]cty.Value{"url": cty.StringVal(srv.URL + "/hooks/T0KEN")})
		_, err := w.Notify(context.Background(), cfg, sdk.EventSuccess, report)
		if (err != nil) != (status != http.StatusOK) {
			t.Fatalf("status %d: error %v", status, err)
		}
		line := log.String()
		host := strings.TrimPrefix(srv.URL, "http://")
		if !strings.Contains(line, "report sent") || !strings.Contains(line, "host="+host) || !strings.Contains(line, http.StatusText(status)) {
			t.Errorf("status %d: the send is not logged with its host and status:\n%s", status, line)
		}
		if strings.Contains(line, "T0KEN") {
			t.Errorf("the URL's token reached the log:\n%s", line)
		}
	}
}

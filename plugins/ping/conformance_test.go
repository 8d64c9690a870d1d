package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/sdk/sdktest"
)

// checkPath is the secret part of a healthchecks.io ping URL: the check's
// UUID.
const checkPath = "/ping/5e1f0c3a-7d2b-4b8e-9a61-s3cr3t0c4eck"

// hit is one request a check server received.
type hit struct {
	method, path, query, body string
}

// checkServer is a real HTTP server standing in for healthchecks.io: it
// records each request and answers with the status status returns (200
// when nil).
func checkServer(t testing.TB, status func(n int) int) (*httptest.Server, func() []hit) {
	t.Helper()
	var mu sync.Mutex
	var got []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, hit{r.Method, r.URL.Path, r.URL.RawQuery, string(b)})
		n := len(got)
		mu.Unlock()
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		w.WriteHeader(code)
		io.WriteString(w, "OK")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hit {
		mu.Lock()
		defer mu.Unlock()
		return append([]hit(nil), got...)
	}
}

// TestConformance runs the SDK's notifier kit against a real HTTP server:
// every event reaches the check at the path healthchecks.io gives it, and
// the URL, a secret, shows in no summary or error.
func TestConformance(t *testing.T) {
	srv, got := checkServer(t, nil)
	want := map[string]string{
		sdk.EventStart:   checkPath + "/start",
		sdk.EventSuccess: checkPath,
		sdk.EventFailure: checkPath + "/fail",
		sdk.EventWarning: checkPath + "/fail", // warning = "failure", the default
		sdk.EventDrill:   checkPath + "/fail", // the kit's drill failed
		sdk.EventTest:    checkPath + "/log",
	}
	sdktest.Notifier(t, &ping{log: hclog.NewNullLogger()}, sdktest.NotifierCase{
		Settings: map[string]cty.Value{"url": cty.StringVal(srv.URL + checkPath)},
		Check: func(t testing.TB, event string, rep sdk.Report) {
			hits := got()
			if len(hits) == 0 {
				t.Fatalf("%s: no ping arrived", event)
			}
			h := hits[len(hits)-1]
			if h.method != http.MethodPost || h.path != want[event] {
				t.Errorf("%s: %s %s, want POST %s", event, h.method, h.path, want[event])
			}
			if event == sdk.EventFailure {
				for _, l := range rep.LogTail {
					if !strings.Contains(h.body, l) {
						t.Errorf("the failure ping's body lacks the log line %q:\n%s", l, h.body)
					}
				}
			}
		},
		Unresponsive: func(addr string) map[string]cty.Value {
			return map[string]cty.Value{"url": cty.StringVal("http://" + addr + checkPath), "retries": cty.NumberIntVal(0)}
		},
	})
}

package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/sdk"
)

// TestNotifyTest sends a test event through real webhook plugins to a real
// HTTP server: one stage whose server accepts, one whose server refuses.
func TestNotifyTest(t *testing.T) {
	var mu sync.Mutex
	var events []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep struct{ Event, Pipeline string }
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &rep)
		mu.Lock()
		events = append(events, r.URL.Path+" "+rep.Event+" "+rep.Pipeline)
		mu.Unlock()
		if r.URL.Path == "/refuse" {
			http.Error(w, "no such hook", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	pl := prepare(t, newRoot(t), fmt.Sprintf(okDump+`
  stage "notify" "webhook" "accepts" {
    url = %q
    on  = ["failure"]
  }
  stage "notify" "webhook" "refuses" {
    url = %q
  }`, srv.URL+"/accept", srv.URL+"/refuse"))

	sent := engine.NotifyTest(context.Background(), pl.p, pl.stages)
	if len(sent) != 2 {
		t.Fatalf("want one outcome per notify stage, got %+v", sent)
	}
	if ok := sent[0]; ok.Stage != pl.stage(t, sdk.KindNotify, "accepts") || ok.Err != nil || !strings.Contains(ok.Summary, "accepted the report") {
		t.Errorf("the accepting stage: %+v", ok)
	}
	if bad := sent[1]; bad.Stage != pl.stage(t, sdk.KindNotify, "refuses") || bad.Err == nil || !strings.Contains(bad.Err.Error(), "404 Not Found: no such hook") {
		t.Errorf("the refusing stage: %+v", bad)
	}
	// A stage set to report failures only gets the test too: it is what
	// the administrator wants to see arrive.
	want := []string{"/accept test test", "/refuse test test"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("the server received:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
}

func TestNotifyTestWithoutANotifyStage(t *testing.T) {
	pl := prepare(t, newRoot(t), okDump)
	if sent := engine.NotifyTest(context.Background(), pl.p, pl.stages); len(sent) != 0 {
		t.Fatalf("sent %+v", sent)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// webhookSink is a local HTTP server that records what it receives.
type webhookSink struct {
	mu     sync.Mutex
	bodies []string
	status int
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	w.bodies = append(w.bodies, string(b))
	status := w.status
	w.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	rw.WriteHeader(status)
}

func (w *webhookSink) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bodies...)
}

func webhookPipeline(t *testing.T, mode, notify string) (file, root string) {
	dir := t.TempDir()
	root = filepath.Join(dir, "backups")
	file = writeFile(t, dir, "hook.hcl", fmt.Sprintf(`pipeline "hook" {
  root = %q

  stage "dump" "faulty" {
    mode = %q
  }
%s
}
`, root, mode, notify))
	return file, root
}

// TestDropInNotifier: the webhook example, dropped into a plugin directory,
// is validated through its own schema and receives the run report.
func TestDropInNotifier(t *testing.T) {
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	env := []string{"MBK_PLUGIN_DIR=" + filepath.Join(binDir, "extra")}

	t.Run("validate checks its settings", func(t *testing.T) {
		file, _ := webhookPipeline(t, "ok", fmt.Sprintf(`
  stage "notify" "webhook" {
    url    = %q
    metod  = "PUT"
  }`, srv.URL))
		r := mbk(t, runOpts{env: env}, "validate", file)
		if r.code != 1 || !strings.Contains(r.stderr, file+" line 10") || !strings.Contains(r.stderr, `"metod"`) {
			t.Fatalf("want the unknown attribute reported at line 10\n%s", r)
		}
	})

	t.Run("a run sends the report", func(t *testing.T) {
		file, _ := webhookPipeline(t, "ok", fmt.Sprintf(`
  stage "notify" "webhook" {
    url = %q
  }`, srv.URL+"/hooks/T0KEN"))
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		bodies := sink.got()
		if len(bodies) != 1 {
			t.Fatalf("want one report, got %d", len(bodies))
		}
		var rep struct {
			Event     string `json:"event"`
			Pipeline  string `json:"pipeline"`
			Set       string `json:"set"`
			Committed bool   `json:"committed"`
			Artifacts []struct {
				File   string `json:"file"`
				SHA256 string `json:"sha256"`
			} `json:"artifacts"`
		}
		if err := json.Unmarshal([]byte(bodies[0]), &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, bodies[0])
		}
		if rep.Event != "success" || rep.Pipeline != "hook" || !rep.Committed || len(rep.Artifacts) != 1 || len(rep.Artifacts[0].SHA256) != 64 {
			t.Fatalf("report: %+v", rep)
		}
	})

	t.Run("a failed run is reported through a template", func(t *testing.T) {
		file, _ := webhookPipeline(t, "error", fmt.Sprintf(`
  stage "notify" "webhook" {
    url      = %q
    template = "{\"text\": {{json (printf \"%%s %%s: %%s\" .Pipeline .Status .Error)}}}"
  }`, srv.URL))
		before := len(sink.got())
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		bodies := sink.got()[before:]
		if len(bodies) != 1 {
			t.Fatalf("want one message, got %d", len(bodies))
		}
		var msg struct{ Text string }
		if err := json.Unmarshal([]byte(bodies[0]), &msg); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, bodies[0])
		}
		if !strings.HasPrefix(msg.Text, "hook failure: ") || !strings.Contains(msg.Text, "disk on fire") {
			t.Fatalf("message: %q", msg.Text)
		}
	})

	t.Run("a failing notifier leaves the set committed, exit 3", func(t *testing.T) {
		sink.mu.Lock()
		sink.status = http.StatusInternalServerError
		sink.mu.Unlock()
		defer func() { sink.mu.Lock(); sink.status = 0; sink.mu.Unlock() }()
		file, root := webhookPipeline(t, "ok", fmt.Sprintf(`
  stage "notify" "webhook" {
    url = %q
  }`, srv.URL))
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 3 {
			t.Fatalf("want exit 3: %s", r)
		}
		got := sets(t, root)
		if len(got) != 1 {
			t.Fatalf("want the set kept, got %v", got)
		}
		log := readFile(t, filepath.Join(root, got[0], "backup.log"))
		if !strings.Contains(log, "500 Internal Server Error") {
			t.Fatalf("backup.log does not record the notify failure:\n%s", log)
		}
	})
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

// TestEnvFileModes: the webhook's URL (a sensitive setting: it holds the
// token) comes from env_file. Readable by its group, the run goes ahead and
// warns, with the chmod to run, in its log, backup.log and the report the
// webhook receives; `mbk validate` warns too. Readable by every user,
// `mbk validate` and `mbk run` refuse it and no set is made. No output
// shows the URL.
func TestEnvFileModes(t *testing.T) {
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	hook := srv.URL + "/hooks/Env-T0ken-4821"
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	envFile := writeFile(t, dir, "site.env", "HOOK_URL="+hook+"\n")
	file := writeFile(t, dir, "env.hcl", fmt.Sprintf(`plugin_dir = %q
env_file   = "site.env"

pipeline "env" {
  root = %q

  stage "dump" "faulty" {
    mode = "ok"
    size = 4096
  }
  stage "notify" "webhook" {
    url = env("HOOK_URL")
  }
}
`, filepath.Join(binDir, "extra"), root))
	chmod := func(t *testing.T, mode os.FileMode) {
		t.Helper()
		if err := os.Chmod(envFile, mode); err != nil {
			t.Fatal(err)
		}
	}
	noURL := func(t *testing.T, r result) {
		t.Helper()
		if strings.Contains(r.stdout+r.stderr, "Env-T0ken-4821") {
			t.Errorf("the URL is shown:\n%s", r)
		}
	}

	t.Run("readable by its group: a warning", func(t *testing.T) {
		chmod(t, 0o640)
		warning := "env_file is readable by its group: " + envFile + " can be read by group 0 (mode 0640) and holds HOOK_URL, which reaches sensitive settings: everyone in that group can read them. Run: chmod 600 " + envFile
		v := mbk(t, runOpts{}, "validate", file)
		noURL(t, v)
		if v.code != 0 || !strings.Contains(flat(v.stderr), "Warning: env_file is readable by its group") || !strings.Contains(flat(v.stderr), "Run: chmod 600 "+envFile) {
			t.Errorf("validate: want exit 0 and the warning\n%s", v)
		}
		r := mbk(t, runOpts{}, "run", file)
		noURL(t, r)
		if r.code != 0 || !strings.Contains(r.stderr, warning) {
			t.Fatalf("run: want exit 0 and the warning %q\n%s", warning, r)
		}
		set := sets(t, root)
		if len(set) != 1 {
			t.Fatalf("want one set, got %v", set)
		}
		if log := readFile(t, filepath.Join(root, set[0], repo.LogFile)); !strings.Contains(log, warning) || strings.Contains(log, "Env-T0ken-4821") {
			t.Errorf("backup.log should hold the warning, not the URL:\n%s", log)
		}
		bodies := sink.got()
		if len(bodies) != 1 {
			t.Fatalf("want one report, got %d", len(bodies))
		}
		var rep struct {
			Warnings []string `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(bodies[0]), &rep); err != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], warning) {
			t.Errorf("the report should carry the warning: %v\n%s", err, bodies[0])
		}
	})

	t.Run("readable by every user: refused", func(t *testing.T) {
		chmod(t, 0o644)
		before := sets(t, root)
		refusal := "env_file is open to every user"
		v := mbk(t, runOpts{}, "validate", file)
		noURL(t, v)
		if v.code != 1 || !strings.Contains(flat(v.stderr), refusal) || !strings.Contains(flat(v.stderr), "(mode 0644) and holds HOOK_URL") || !strings.Contains(flat(v.stderr), "Run: chmod 600 "+envFile) {
			t.Errorf("validate: want exit 1 and the refusal\n%s", v)
		}
		r := mbk(t, runOpts{}, "run", file)
		noURL(t, r)
		if r.code != 2 || !strings.Contains(flat(r.stderr), refusal) {
			t.Errorf("run: want exit 2 and the refusal\n%s", r)
		}
		if got := sets(t, root); len(got) != len(before) {
			t.Errorf("a refused run made a set: %v -> %v", before, got)
		}
	})

	t.Run("private again: no warning", func(t *testing.T) {
		chmod(t, 0o600)
		r := mbk(t, runOpts{}, "run", file)
		if r.code != 0 || strings.Contains(r.stderr, "env_file") {
			t.Errorf("run: want exit 0 and no word of env_file\n%s", r)
		}
	})
}

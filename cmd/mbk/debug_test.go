package main

import (
	"bufio"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPluginDebugMode: a plugin binary started with -debug serves in its own
// process (as under a debugger) and prints the MBK_REATTACH_PLUGINS setting;
// mbk given that setting uses the running plugin instead of looking for a
// binary, and the plugin stops cleanly on Ctrl-C.
func TestPluginDebugMode(t *testing.T) {
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	file := writeFile(t, dir, "debug.hcl", fmt.Sprintf(`pipeline "debug" {
  root = %q
  stage "notify" "webhook" {
    url = %q
  }
}
`, filepath.Join(dir, "backups"), srv.URL))

	// The webhook plugin is in binDir/extra, which is not on the search
	// path: only the reattach setting can make mbk reach it.
	if r := mbk(t, runOpts{}, "notify", "test", file); r.code == 0 || !strings.Contains(r.stderr, `plugin "webhook" not found`) {
		t.Fatalf("without the setting the plugin must not be found: %s", r)
	}

	cmd := exec.Command(filepath.Join(binDir, "extra", "mbk-plugin-webhook"), "-debug")
	cmd.Env = baseEnv(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	setting := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "MBK_REATTACH_PLUGINS='"); ok {
				setting <- strings.TrimSuffix(v, "'")
			}
		}
		exited <- cmd.Wait()
	}()
	var reattach string
	select {
	case reattach = <-setting:
	case <-time.After(30 * time.Second):
		t.Fatal("the plugin printed no MBK_REATTACH_PLUGINS setting")
	}
	if !strings.Contains(reattach, `"webhook"`) {
		t.Fatalf("setting %s does not name the plugin", reattach)
	}

	r := mbk(t, runOpts{env: []string{"MBK_REATTACH_PLUGINS=" + reattach}}, "notify", "test", file)
	if r.code != 0 {
		t.Fatalf("notify test through the reattached plugin: %s", r)
	}
	if got := sink.got(); len(got) != 1 || !strings.Contains(got[0], `"pipeline":"debug"`) {
		t.Fatalf("the webhook received %q", got)
	}
	// A second mbk reaches the same process: it keeps serving.
	if r := mbk(t, runOpts{env: []string{"MBK_REATTACH_PLUGINS=" + reattach}}, "notify", "test", file); r.code != 0 || len(sink.got()) != 2 {
		t.Fatalf("a second reattach: %s (webhook got %d)", r, len(sink.got()))
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the deferred wait
		if err != nil {
			t.Errorf("the plugin did not stop cleanly on Ctrl-C: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the plugin did not stop on Ctrl-C")
	}
}

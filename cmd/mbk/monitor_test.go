package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/spec"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

// The monitoring tests run the real binary on the faulty test plugin
// (Docker is not their point) unless a dump is: then a real MariaDB.

// monitorFile writes a pipeline around the faulty dump plugin: attrs go in
// the pipeline block, stages after the dump and checksum stages.
func monitorFile(t *testing.T, dir, attrs, dump, stages string) (file, root string) {
	t.Helper()
	root = filepath.Join(dir, "backups")
	file = writeFile(t, dir, "mon.hcl", fmt.Sprintf(`plugin_dir = %q

variable "size" {
  type    = number
  default = 262144
}

pipeline "mon" {
  root     = %q
  schedule = "0 3 * * *"
  %s

  stage "dump" "faulty" {
    size = var.size
    %s
  }
  stage "checksum" "sha256" {}
%s
}
`, filepath.Join(binDir, "extra"), root, attrs, dump, stages))
	return file, root
}

// parseMetrics reads the Prometheus text format with Prometheus' own parser.
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, text)
	}
	return mfs
}

// metric is the value of the series of name whose labels include want;
// ok is false when there is none.
func metric(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

func mustMetric(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := metric(mfs, name, labels)
	if !ok {
		t.Fatalf("no %s%v in the metrics", name, labels)
	}
	return v
}

var mon = map[string]string{"pipeline": "mon"}

// statusJSON is what `mbk status --json` prints, as much as the tests read.
type statusJSON struct {
	State     string `json:"state"`
	ExitCode  int    `json:"exit_code"`
	Pipelines []struct {
		Pipeline string `json:"pipeline"`
		State    string `json:"state"`
		Findings []struct {
			Level string `json:"level"`
			Text  string `json:"text"`
		} `json:"findings"`
		Newest *struct {
			Set string `json:"set"`
		} `json:"newest_set"`
		Kept    int `json:"sets_kept"`
		Failed  int `json:"failed_runs_since_success"`
		LastRun *struct {
			Status   string `json:"status"`
			ExitCode int    `json:"exit_code"`
		} `json:"last_run"`
		Drill *struct {
			OK bool `json:"ok"`
		} `json:"last_drill"`
	} `json:"pipelines"`
}

func status(t *testing.T, args ...string) (result, statusJSON) {
	t.Helper()
	r := mbk(t, runOpts{}, append([]string{"status"}, args...)...)
	var s statusJSON
	if slicesContain(args, "--json") {
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r)
		}
	}
	return r, s
}

func slicesContain(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestStatus: mbk status after real runs, with the monitoring-plugin exit
// codes.
func TestStatus(t *testing.T) {
	dir := t.TempDir()
	file, root := monitorFile(t, dir, "", `mode = "ok"`, "")

	t.Run("no set yet: CRITICAL", func(t *testing.T) {
		r, _ := status(t, file)
		if r.code != 2 || !strings.HasPrefix(r.stdout, "MBK CRITICAL - mon: no complete backup set in "+root) {
			t.Fatalf("want CRITICAL, exit 2\n%s", r)
		}
	})

	if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	set := sets(t, root)[0]

	t.Run("a fresh root: OK", func(t *testing.T) {
		r, s := status(t, file, "--json")
		p := s.Pipelines[0]
		if r.code != 0 || s.State != "OK" || p.Newest == nil || p.Newest.Set != set || p.Kept != 1 || p.LastRun.Status != "success" || len(p.Findings) != 0 {
			t.Fatalf("want OK\n%s", r)
		}
		r, _ = status(t, file)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "MBK OK - mon: newest set "+set) || !regexp.MustCompile(`\| 'mon_age'=\d+s;;172800;0 `).MatchString(r.stdout) {
			t.Fatalf("want the OK line with the age against the schedule's 2 days as perfdata\n%s", r)
		}
	})

	t.Run("a stale root: CRITICAL", func(t *testing.T) {
		// Any set is older than a nanosecond.
		r, _ := status(t, file, "--max-age", "1ns")
		if r.code != 2 || !strings.HasPrefix(r.stdout, "MBK CRITICAL - mon: the newest complete set, "+set+", is ") {
			t.Fatalf("want CRITICAL, exit 2\n%s", r)
		}
		stale := writeFile(t, dir, "stale.hcl", strings.Replace(readFile(t, file), `schedule = "0 3 * * *"`, `schedule = "0 3 * * *"
  max_age  = "1ns"`, 1))
		if r, _ := status(t, stale); r.code != 2 || !strings.Contains(r.stdout, "(max_age 1ns)") {
			t.Fatalf("the pipeline's max_age is not applied\n%s", r)
		}
	})

	t.Run("a failed run: WARNING, counted", func(t *testing.T) {
		failing := writeFile(t, dir, "fail.hcl", strings.Replace(readFile(t, file), `mode = "ok"`, `mode = "error"`, 1))
		for i := 0; i < 2; i++ {
			if r := mbk(t, runOpts{}, "run", failing); r.code != 1 {
				t.Fatalf("run: %s", r)
			}
		}
		r, s := status(t, file, "--json")
		p := s.Pipelines[0]
		if r.code != 1 || s.State != "WARNING" || p.Failed != 2 || p.LastRun.Status != "failure" || !strings.Contains(p.Findings[0].Text, "disk on fire") {
			t.Fatalf("want WARNING with 2 failed runs\n%s", r)
		}
		if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		if r, s := status(t, file, "--json"); r.code != 0 || s.Pipelines[0].Failed != 0 {
			t.Fatalf("a success does not reset the count\n%s", r)
		}
	})

	t.Run("a failed drill: WARNING", func(t *testing.T) {
		if err := repo.WriteDrillRecord(root, spec.DrillReport{Set: set, From: "local", OK: false, Started: time.Now().UTC(), Error: "the restore failed: no sandbox"}); err != nil {
			t.Fatal(err)
		}
		defer repo.DeleteDrillRecord(root, set)
		r, s := status(t, file, "--json")
		if r.code != 1 || s.Pipelines[0].Drill == nil || s.Pipelines[0].Drill.OK || !strings.Contains(r.stdout, "the last drill") {
			t.Fatalf("want WARNING for the failed drill\n%s", r)
		}
	})

	t.Run("an unfinished restore: CRITICAL", func(t *testing.T) {
		if err := repo.WriteRestoreMarker(root, repo.RestoreMarker{Pipeline: "mon", Set: set, Started: time.Now().UTC(), PID: 1}); err != nil {
			t.Fatal(err)
		}
		defer repo.ClearRestoreMarker(root)
		if r, _ := status(t, file); r.code != 2 || !strings.Contains(r.stdout, "a restore of set "+set+" is unfinished") {
			t.Fatalf("want CRITICAL\n%s", r)
		}
	})

	t.Run("unknown: bad usage or a file that does not load", func(t *testing.T) {
		bad := writeFile(t, dir, "bad.hcl", "pipeline \"x\" {\n  root = 42\n}\n")
		for _, args := range [][]string{{bad}, {file, "--max-age", "soon"}, {}, {filepath.Join(dir, "missing.hcl")}} {
			r, _ := status(t, args...)
			if r.code != 3 || !strings.HasPrefix(r.stdout, "MBK UNKNOWN - ") {
				t.Errorf("status %v: want UNKNOWN, exit 3\n%s", args, r)
			}
		}
	})
}

// pingSink is a local HTTP server standing in for healthchecks.io: it keeps
// each ping in order.
type pingSink struct {
	mu   sync.Mutex
	hits []pingHit
}

type pingHit struct{ path, body string }

func (s *pingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.hits = append(s.hits, pingHit{r.URL.Path, string(b)})
	s.mu.Unlock()
	io.WriteString(w, "OK")
}

func (s *pingSink) got() []pingHit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pingHit(nil), s.hits...)
}

// TestPingsInOrder: a real run pings start then success; a failed run
// start then fail, with the log tail as the body; the check's URL, a
// secret, shows nowhere.
func TestPingsInOrder(t *testing.T) {
	sink := &pingSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	const check = "/ping/0c1d2e3f-4a5b-s3cr3t-check"
	dir := t.TempDir()
	envFile := writeFile(t, dir, "ping.env", "PING_URL="+srv.URL+check+"\n")
	file, root := monitorFile(t, dir, fmt.Sprintf(`metrics_file = %q`, filepath.Join(dir, "mon.prom")), `mode = "ok"`, `
  stage "notify" "ping" {
    url = env("PING_URL")
  }`)
	content := fmt.Sprintf("env_file = %q\n", envFile) + readFile(t, file)
	file = writeFile(t, dir, "mon.hcl", content)
	failing := writeFile(t, dir, "fail.hcl", strings.Replace(content, `mode = "ok"`, `mode = "error"`, 1))

	ok := mbk(t, runOpts{}, "run", file)
	if ok.code != 0 {
		t.Fatalf("run: %s", ok)
	}
	bad := mbk(t, runOpts{}, "run", failing)
	if bad.code != 1 {
		t.Fatalf("failing run: %s", bad)
	}
	hits := sink.got()
	var paths []string
	for _, h := range hits {
		paths = append(paths, strings.TrimPrefix(h.path, check))
	}
	if strings.Join(paths, " ") != "/start  /start /fail" {
		t.Fatalf("pings %q, want start, success, start, fail", paths)
	}
	if !strings.Contains(hits[1].body, "set: "+sets(t, root)[0]) {
		t.Errorf("the success ping does not name the set:\n%s", hits[1].body)
	}
	if body := hits[3].body; !strings.Contains(body, "disk on fire") || !strings.Contains(body, "last lines of the log:") || !strings.Contains(body, "stage started") {
		t.Errorf("the failure ping's body lacks the error and the log tail:\n%s", body)
	}

	test := mbk(t, runOpts{}, "notify", "test", file)
	if got := sink.got(); test.code != 0 || len(got) != 5 || got[4].path != check+"/log" {
		t.Fatalf("notify test: want a /log ping\n%s", test)
	}

	// While a run waits at a gate, after its start ping, neither the
	// arguments nor the environment of mbk or any plugin hold the URL.
	gate := filepath.Join(dir, "gate")
	slow := writeFile(t, dir, "slow.hcl", strings.Replace(content, `mode = "ok"`, fmt.Sprintf("mode = \"slow\"\n    gate = %q", gate), 1))
	b := startMbk(t, nil, "run", slow)
	b.waitStderr("waiting at the gate")
	if got := sink.got(); len(got) != 6 || got[5].path != check+"/start" {
		t.Fatalf("the start ping was not sent before the dump stage: %v\n%s", got, b)
	}
	sawPing := false
	self, _ := readProc(b.cmd.Process.Pid)
	for _, p := range append([]proc{self}, descendants(b.cmd.Process.Pid)...) {
		sawPing = sawPing || strings.Contains(p.cmdline, "mbk-plugin-ping")
		for _, f := range []string{"cmdline", "environ"} {
			if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.pid, f)); err == nil && strings.Contains(string(data), "s3cr3t") {
				t.Errorf("the ping URL is in /proc/%d/%s (%s)", p.pid, f, p.cmdline)
			}
		}
	}
	if !sawPing {
		t.Errorf("no mbk-plugin-ping process under mbk while it ran")
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := b.wait(); r.code != 0 {
		t.Fatalf("slow run: %s", r)
	}
	if got := sink.got(); len(got) != 7 || got[6].path != check {
		t.Fatalf("no success ping after the slow run: %v", got)
	}

	// The URL is a secret: no output, log, record or metric shows it.
	texts := map[string]string{"run output": ok.stdout + ok.stderr, "failed run output": bad.stdout + bad.stderr, "notify test output": test.stdout + test.stderr,
		"backup.log": readFile(t, filepath.Join(root, sets(t, root)[0], repo.LogFile)), "run record": readFile(t, filepath.Join(root, repo.RunsFile)),
		"metrics": readFile(t, filepath.Join(dir, "mon.prom"))}
	logs, _ := filepath.Glob(filepath.Join(root, "*.failed.log"))
	for _, l := range logs {
		texts[l] = readFile(t, l)
	}
	for what, text := range texts {
		if strings.Contains(text, "s3cr3t") {
			t.Errorf("the ping URL shows in the %s", what)
		}
	}
}

// TestMetricsAfterRealRuns: the textfile a run writes, and the daemon's
// /metrics, parsed with Prometheus' parser, say what the runs did.
func TestMetricsAfterRealRuns(t *testing.T) {
	dir := t.TempDir()
	textDir := filepath.Join(dir, "textfile")
	if err := os.Mkdir(textDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file, root := monitorFile(t, dir, "", `mode = "ok"`, "")

	if r := mbk(t, runOpts{}, "run", file, "--metrics-textfile", textDir); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	set := sets(t, root)[0]
	m, err := repo.ReadManifest(filepath.Join(root, set))
	if err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(textDir, "mbk_mon.prom")
	st, err := os.Stat(prom)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("the textfile: %v %v", st, err)
	}
	mfs := parseMetrics(t, readFile(t, prom))
	art := map[string]string{"pipeline": "mon", "kind": "dump", "stage": "faulty", "artifact": "faulty"}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mbk_root_readable", mon, 1},
		{"mbk_sets_kept", mon, 1},
		{"mbk_backup_last_exit_code", mon, 0},
		{"mbk_backup_failed_runs_since_success", mon, 0},
		{"mbk_backup_last_alarms", mon, 0},
		{"mbk_artifact_raw_bytes", art, 262144},
		{"mbk_artifact_stored_bytes", art, float64(m.Artifacts[0].Size)},
		{"mbk_max_age_seconds", mon, 48 * 3600},
		{"mbk_newest_set_timestamp_seconds", mon, float64(m.Finished.UnixMilli()) / 1000},
		{"mbk_restore_unfinished", mon, 0},
	}
	for _, c := range checks {
		if got := mustMetric(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	runs, err := repo.ReadRuns(root)
	if err != nil || runs.Last == nil {
		t.Fatalf("run record: %+v %v", runs, err)
	}
	if got := mustMetric(t, mfs, "mbk_backup_last_success_timestamp_seconds", mon); got != float64(runs.LastSuccess.UnixMilli())/1000 {
		t.Errorf("last success %v, the record says %v", got, runs.LastSuccess)
	}
	if got := mustMetric(t, mfs, "mbk_stage_last_duration_seconds", map[string]string{"pipeline": "mon", "kind": "dump", "stage": "faulty"}); got <= 0 {
		t.Errorf("the dump stage took %v s", got)
	}

	// The daemon serves the same, read at each scrape, and its own.
	daemonDir := filepath.Join(dir, "daemon")
	if err := os.Mkdir(daemonDir, 0o700); err != nil {
		t.Fatal(err)
	}
	dfile := filepath.Join(daemonDir, "p.hcl")
	daemonFile(t, dfile, pipelineBlock("tick", filepath.Join(daemonDir, "backups"), "* * * * *", okDump))
	d := startDaemon(t, "--metrics-listen", "127.0.0.1:0", dfile, file)
	d.waitCount("serving metrics", 1)
	addr := regexp.MustCompile(`serving metrics: url=(http://\S+/metrics)`).FindStringSubmatch(d.stderr.String())
	if addr == nil {
		t.Fatalf("no metrics address in the log\n%s", d)
	}
	d.waitCount(finished("tick", 0), 2)
	resp, err := http.Get(addr[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mfs = parseMetrics(t, string(body))
	tick := map[string]string{"pipeline": "tick"}
	if got := mustMetric(t, mfs, "mbk_sets_kept", tick); got < 2 {
		t.Errorf("tick: %v sets kept", got)
	}
	if got := mustMetric(t, mfs, "mbk_artifact_raw_bytes", map[string]string{"pipeline": "tick", "artifact": "faulty"}); got != 65536 {
		t.Errorf("tick: raw bytes %v", got)
	}
	if got := mustMetric(t, mfs, "mbk_daemon_next_run_timestamp_seconds", map[string]string{"pipeline": "tick", "job": "backup"}); got <= 0 {
		t.Errorf("next run %v", got)
	}
	// mon has a schedule too (03:00): its root is read at the scrape.
	if got := mustMetric(t, mfs, "mbk_sets_kept", mon); got != 1 {
		t.Errorf("mon: %v sets kept", got)
	}
	if _, ok := metric(mfs, "mbk_build_info", nil); !ok {
		t.Error("no mbk_build_info")
	}
	d.signal(os.Interrupt)
	if code := d.exit(); code != 0 {
		t.Fatalf("daemon exit %d\n%s", code, d)
	}
}

// TestShrunkenDumpWarns: against a real MariaDB, a dump that lost most of
// its tables since the previous set is committed, but the run ends as a
// warning (exit 3): the e-mail puts the figures side by side, the metrics
// and mbk status report it, and the password shows nowhere.
func TestShrunkenDumpWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Docker")
	}
	s := newSite(t)
	const smtpPassword = "smtp-pa$$-mon-7c1e"
	mail := smtptest.Start(t, smtptest.Options{TLS: "implicit", Username: "backups@example.com", Password: smtpPassword, RequireAuth: true})
	host, port := mail.Addr()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	prom := filepath.Join(dir, "textfile", "mbk_e2e.prom")
	if err := os.MkdirAll(filepath.Dir(prom), 0o755); err != nil {
		t.Fatal(err)
	}
	env := s.env("SMTP_PASSWORD=" + smtpPassword)
	file := writeFile(t, dir, "site.hcl", fmt.Sprintf(`pipeline "e2e" {
  root         = %q
  timezone     = "UTC"
  metrics_file = %q

  stage "dump" "mysql" {
    container  = %q
    database   = "moodle"
    user       = "moodle"
    password   = env("MYSQL_PASSWORD")
    max_shrink = "50%%"
  }
  stage "checksum" "sha256" {}
  stage "notify" "smtp" {
    on       = ["warning"]
    host     = %q
    port     = %d
    tls      = "implicit"
    ca_file  = %q
    username = "backups@example.com"
    password = env("SMTP_PASSWORD")
    from     = "Moodle Backup System <backups@example.com>"
    to       = ["admin@example.com"]
  }
}
`, root, prom, s.db.Container, host, port, mail.CAFile()))

	first := mbk(t, runOpts{env: env}, "run", file)
	if first.code != 0 || len(mail.Messages()) != 0 {
		t.Fatalf("first run: want exit 0 and no warning e-mail\n%s", first)
	}
	// Two of the three tables gone, and most of the rows with them.
	s.db.SQL(t, "DROP TABLE moodle.mdl_logstore_standard_log; DROP TABLE moodle.mdl_course;")
	second := mbk(t, runOpts{env: env}, "run", file)
	if second.code != 3 || !strings.Contains(second.stdout, "with a WARNING") || !strings.Contains(second.stdout, "size alarm") {
		t.Fatalf("second run: want exit 3 with the alarm\n%s", second)
	}
	all := sets(t, root)
	if len(all) != 2 {
		t.Fatalf("want both sets committed, got %v", all)
	}
	if r := mbk(t, runOpts{env: env}, "verify", file, all[1]); r.code != 0 {
		t.Fatalf("the warned set does not verify: %s", r)
	}
	m, err := repo.ReadManifest(filepath.Join(root, all[1]))
	if err != nil {
		t.Fatal(err)
	}
	var tables *spec.Alarm
	for i, a := range m.Alarms {
		if a.Measure == "tables" {
			tables = &m.Alarms[i]
		}
	}
	if tables == nil || tables.Before != 3 || tables.Now != 1 || tables.Previous != all[0] {
		t.Fatalf("the manifest's alarms: %+v", m.Alarms)
	}

	msgs := mail.WaitMessages(t, 1, 30*time.Second)
	body := string(msgs[0].Data) + decodedText(t, msgs[0].Data)
	for _, want := range []string{"WARNING", "1 tables now, 3 tables in set " + all[0], "down 66%, more than max_shrink 50%"} {
		if !strings.Contains(body, want) {
			t.Errorf("the warning e-mail lacks %q:\n%s", want, body)
		}
	}

	mfs := parseMetrics(t, readFile(t, prom))
	e2e := map[string]string{"pipeline": "e2e"}
	if got := mustMetric(t, mfs, "mbk_backup_last_exit_code", e2e); got != 3 {
		t.Errorf("last exit code %v, want 3", got)
	}
	if got := mustMetric(t, mfs, "mbk_backup_last_alarms", e2e); got < 1 {
		t.Errorf("last alarms %v", got)
	}
	if got, want := mustMetric(t, mfs, "mbk_artifact_raw_bytes", map[string]string{"pipeline": "e2e", "stage": "mysql", "artifact": "moodle"}), float64(m.Artifacts[0].RawSize); got != want {
		t.Errorf("raw bytes %v, the manifest says %v", got, want)
	}

	st, js := status(t, file, "--json")
	if st.code != 1 || js.Pipelines[0].LastRun.ExitCode != 3 || !strings.Contains(st.stdout, "suspiciously small") {
		t.Fatalf("status: want WARNING for the shrunken set\n%s", st)
	}

	for what, text := range map[string]string{"output": first.stdout + first.stderr + second.stdout + second.stderr, "e-mail": body,
		"metrics": readFile(t, prom), "run record": readFile(t, filepath.Join(root, repo.RunsFile)), "status": st.stdout} {
		if strings.Contains(text, s.password) || strings.Contains(text, smtpPassword) {
			t.Errorf("a password shows in the %s", what)
		}
	}
}

// TestNotifyFailuresCounted: a ping stage whose check is unreachable fails
// at the start and at the end of each run; the run keeps its set and ends
// as a warning, and the metrics count every failed notification across
// runs.
func TestNotifyFailuresCounted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	gone := srv.URL
	srv.Close() // nothing listens there any more
	dir := t.TempDir()
	prom := filepath.Join(dir, "mon.prom")
	file, root := monitorFile(t, dir, fmt.Sprintf(`metrics_file = %q`, prom), `mode = "ok"`, fmt.Sprintf(`
  stage "notify" "ping" {
    url     = %q
    retries = 0
  }`, gone+"/ping/unreachable"))
	for run := 1; run <= 2; run++ {
		r := mbk(t, runOpts{}, "run", file)
		if r.code != 3 || !strings.Contains(r.stderr, "the start notification") {
			t.Fatalf("run %d: want exit 3 naming the failed start ping\n%s", run, r)
		}
		mfs := parseMetrics(t, readFile(t, prom))
		if got := mustMetric(t, mfs, "mbk_notify_failures_total", map[string]string{"pipeline": "mon", "stage": "ping"}); got != float64(2*run) {
			t.Errorf("run %d: %v notify failures, want %d", run, got, 2*run)
		}
		if mfs["mbk_notify_failures_total"].GetType() != dto.MetricType_COUNTER {
			t.Errorf("mbk_notify_failures_total is a %v", mfs["mbk_notify_failures_total"].GetType())
		}
	}
	if got := sets(t, root); len(got) != 2 {
		t.Fatalf("sets %v: a failed notification must not cost the set", got)
	}
	if r, _ := status(t, file); r.code != 1 || !strings.Contains(r.stdout, "ended with a warning") {
		t.Fatalf("status: want WARNING\n%s", r)
	}
}

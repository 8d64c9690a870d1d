package metrics

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// helperEnv makes the test binary a writer that stops midway: see
// TestTextfileSurvivesSIGKILL.
const helperEnv = "MBK_TEXTFILE_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		midway = func() {
			// Tell the test the temporary file is half written, and wait
			// there for the SIGKILL.
			os.WriteFile(path+".midway", nil, 0o600)
			select {}
		}
		if err := WriteTextfile(path, series(2)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const nSeries = 3000

// series is a registry of nSeries gauges, each of value v: a file of some
// 150 KB, so that half of it is something.
func series(v float64) *prometheus.Registry {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mbk_test_value", Help: "A value."}, []string{"n"})
	for i := range nSeries {
		g.WithLabelValues(strconv.Itoa(i)).Set(v)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	return reg
}

func parse(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	return mfs
}

// A writer killed with SIGKILL halfway through leaves the previous file
// whole: the new one is written beside it, hidden, and renamed over it only
// when complete. The next write removes what the killed writer left.
func TestTextfileSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mbk_production.prom")
	if err := WriteTextfile(path, series(1)); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(time.Minute)
	for {
		if _, err := os.Stat(path + ".midway"); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the writer ended before it was halfway: %v", err)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("the writer never got halfway")
		case <-time.After(10 * time.Millisecond):
		}
	}
	tmp := filepath.Join(dir, ".mbk_production.prom.tmp-"+strconv.Itoa(cmd.Process.Pid))
	if st, err := os.Stat(tmp); err != nil || st.Size() == 0 {
		t.Fatalf("no half-written temporary file: %v", err)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-done

	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatalf("the textfile changed under a writer killed midway (%d bytes before, %d after)", len(before), len(after))
	}
	mfs := parse(t, path)
	if n := len(mfs["mbk_test_value"].GetMetric()); n != nSeries {
		t.Fatalf("%d series, want %d", n, nSeries)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.prom")); len(matches) != 1 {
		t.Fatalf("node_exporter would read %v", matches)
	}

	// The next write replaces the file and removes the dead writer's.
	if err := WriteTextfile(path, series(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the killed writer's temporary file is still there: %v", err)
	}
	if v := parse(t, path)["mbk_test_value"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("value %v after the next write, want 3", v)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != TextfileMode {
		t.Errorf("mode %v, want %v (node_exporter must read it): %v", st.Mode().Perm(), TextfileMode, err)
	}
}

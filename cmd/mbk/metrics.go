package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/metrics"
)

// textfiles are where a run of p writes its metrics: the pipeline's
// metrics_file, and mbk_<pipeline>.prom in --metrics-textfile's directory.
func (a *app) textfiles(p *config.Pipeline) []string {
	var out []string
	if p.MetricsFile != "" {
		out = append(out, p.MetricsFile)
	}
	if a.metricsDir != "" {
		out = append(out, filepath.Join(a.metricsDir, "mbk_"+p.Name+".prom"))
	}
	return out
}

// writeTextfiles rewrites p's textfiles from its root, after a run or a
// drill. A file that cannot be written is logged: the backup is not the
// worse for it.
func (a *app) writeTextfiles(p *config.Pipeline) {
	paths := a.textfiles(p)
	if len(paths) == 0 {
		return
	}
	reg := metrics.Registry(metrics.New(version, []*config.Pipeline{p}))
	for _, path := range paths {
		if err := metrics.WriteTextfile(path, reg); err != nil {
			a.log.Error("the metrics textfile was not written", "pipeline", p.Name, "error", err)
			continue
		}
		a.log.Debug("metrics textfile written", "pipeline", p.Name, "file", path)
	}
}

// daemonMetrics is what `mbk daemon --metrics-listen` serves: every loaded
// pipeline's metrics (read from its root at each scrape) and the daemon's
// own: each job's next run and the ticks it skipped.
type daemonMetrics struct {
	pipelines *metrics.Collector
	skipped   *prometheus.CounterVec

	mu   sync.Mutex
	jobs []nextRun
}

// nextRun is a scheduled job, for mbk_daemon_next_run_timestamp_seconds.
type nextRun struct {
	pipeline, job string
	next          func() time.Time
}

var nextRunDesc = prometheus.NewDesc("mbk_daemon_next_run_timestamp_seconds",
	"When the daemon runs the job next (Unix time; on the daemon's clock).", []string{"pipeline", "job"}, nil)

func newDaemonMetrics() *daemonMetrics {
	return &daemonMetrics{
		pipelines: metrics.New(version, nil),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mbk_daemon_skipped_runs_total",
			Help: "Scheduled runs the daemon skipped because another run held the root's lock."}, []string{"pipeline"}),
	}
}

func (m *daemonMetrics) set(ps []*config.Pipeline, jobs []nextRun) {
	m.pipelines.Set(ps)
	m.mu.Lock()
	m.jobs = jobs
	m.mu.Unlock()
}

func (m *daemonMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- nextRunDesc }

func (m *daemonMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	jobs := m.jobs
	m.mu.Unlock()
	for _, j := range jobs {
		if n := j.next(); !n.IsZero() {
			ch <- prometheus.MustNewConstMetric(nextRunDesc, prometheus.GaugeValue, float64(n.Unix()), j.pipeline, j.job)
		}
	}
}

// serve listens on addr and serves /metrics until ctx ends. It returns once
// it listens, or why it cannot.
func (m *daemonMetrics) serve(ctx context.Context, addr string, errLog func(error)) (net.Addr, error) {
	reg := metrics.Registry(m.pipelines)
	reg.MustRegister(m.skipped, m)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errLog(err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}

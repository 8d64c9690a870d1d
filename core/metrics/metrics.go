// Package metrics exposes the health of pipelines as Prometheus metrics:
// read from their roots (the sets, the run record, the drills) each time
// they are collected, so that `mbk daemon --metrics-listen` shows runs that
// cron or a person started too, and a node_exporter textfile written after
// a run says the same as the daemon would.
package metrics

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/health"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append([]string{"pipeline"}, labels...), nil)
}

// The metrics, by Prometheus' conventions: seconds, bytes, Unix-time
// timestamps, _total for counters; labelled by pipeline, and by stage or
// store where one has several.
var (
	buildInfo      = prometheus.NewDesc("mbk_build_info", "mbk's version; always 1.", []string{"version"}, nil)
	rootReadable   = desc("mbk_root_readable", "1 when the pipeline's root (sets, run record, drills) could be read, else 0 and nothing more is known.")
	maxAge         = desc("mbk_max_age_seconds", "How old the newest complete set may be (max_age, or twice the schedule's interval, or 26 h): mbk status is CRITICAL beyond it.")
	newestSet      = desc("mbk_newest_set_timestamp_seconds", "When the newest complete backup set was made (Unix time); absent when there is none.")
	setsKept       = desc("mbk_sets_kept", "Complete backup sets in the root (safety copies of restores not counted).")
	rawBytes       = desc("mbk_artifact_raw_bytes", "Size of each artifact of the newest complete set before compression.", "kind", "stage", "artifact")
	storedBytes    = desc("mbk_artifact_stored_bytes", "Size of each artifact of the newest complete set as stored (compressed, encrypted).", "kind", "stage", "artifact")
	lastAttempt    = desc("mbk_backup_last_attempt_timestamp_seconds", "When the last backup run ended, whatever its outcome (Unix time).")
	lastSuccess    = desc("mbk_backup_last_success_timestamp_seconds", "When the last backup run that ended OK (exit 0) ended (Unix time).")
	lastExit       = desc("mbk_backup_last_exit_code", "Exit code of the last backup run: 0 success, 1 nothing committed, 3 committed with a warning.")
	lastDuration   = desc("mbk_backup_last_duration_seconds", "How long the last backup run took.")
	failedSince    = desc("mbk_backup_failed_runs_since_success", "Backup runs that committed nothing since the last that ended OK.")
	lastAlarms     = desc("mbk_backup_last_alarms", "Size and count alarms of the last run: artifacts empty, below min_size or shrunk past max_shrink.")
	stageDuration  = desc("mbk_stage_last_duration_seconds", "How long each stage of the last backup run took.", "kind", "stage")
	storeOK        = desc("mbk_store_last_copy_ok", "1 when the last run copied its set to the store whole, else 0.", "store")
	storeNewest    = desc("mbk_store_newest_copy_timestamp_seconds", "When the newest set copied whole to the store was made (Unix time).", "store")
	notifyFailures = desc("mbk_notify_failures_total", "Notifications the stage failed to send, over every run the root records.", "stage")
	drillTime      = desc("mbk_drill_last_timestamp_seconds", "When the newest drill started (Unix time).")
	drillPassed    = desc("mbk_drill_last_passed", "1 when the newest drill passed every check, else 0.")
	drillRestore   = desc("mbk_drill_last_restore_seconds", "How long the newest drill took to restore its set: the recovery time to report.")
	unfinished     = desc("mbk_restore_unfinished", "1 while a restore is unfinished (backups are refused), else 0.")
)

var all = []*prometheus.Desc{buildInfo, rootReadable, maxAge, newestSet, setsKept, rawBytes, storedBytes, lastAttempt,
	lastSuccess, lastExit, lastDuration, failedSince, lastAlarms, stageDuration, storeOK, storeNewest, notifyFailures,
	drillTime, drillPassed, drillRestore, unfinished}

// Collector reads the pipelines' roots at each collection.
type Collector struct {
	version string
	now     func() time.Time
	mu      sync.Mutex
	ps      []*config.Pipeline
}

var _ prometheus.Collector = (*Collector)(nil)

// New makes a collector of the pipelines' metrics.
func New(version string, ps []*config.Pipeline) *Collector {
	return &Collector{version: version, now: time.Now, ps: ps}
}

// Set replaces the pipelines (the daemon's reload).
func (c *Collector) Set(ps []*config.Pipeline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ps = ps
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

// Collect reads each pipeline's root and sends what it holds.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ps := c.ps
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(buildInfo, prometheus.GaugeValue, 1, c.version)
	now := c.now()
	seen := map[string]bool{}
	for _, p := range ps {
		// Two files may name the same pipeline: series must not repeat.
		if seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		collect(ch, p, now)
	}
}

func collect(ch chan<- prometheus.Metric, p *config.Pipeline, now time.Time) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{p.Name}, labels...)...)
	}
	ts := func(d *prometheus.Desc, t time.Time, labels ...string) {
		if !t.IsZero() {
			gauge(d, float64(t.UnixMilli())/1000, labels...)
		}
	}
	s, err := health.Read(p)
	if err != nil {
		gauge(rootReadable, 0)
		return
	}
	gauge(rootReadable, 1)
	gauge(maxAge, p.AgeLimit(now).Seconds())
	gauge(setsKept, float64(s.Kept))
	gauge(unfinished, b2f(s.Restore != nil))
	if n := s.Newest; n != nil {
		ts(newestSet, health.SetTime(n))
		for _, a := range n.Manifest.Artifacts {
			name := ArtifactName(a.File, n.Name)
			gauge(rawBytes, float64(a.RawSize), a.Stage, a.Name, name)
			gauge(storedBytes, float64(a.Size), a.Stage, a.Name, name)
		}
	}
	r := s.Runs
	ts(lastSuccess, r.LastSuccess)
	if last := r.Last; last != nil {
		ts(lastAttempt, last.Finished)
		gauge(lastExit, float64(last.ExitCode))
		gauge(lastDuration, last.Duration.Seconds())
		gauge(failedSince, float64(r.FailedSinceSuccess))
		gauge(lastAlarms, float64(len(last.Alarms)))
		seen := map[string]bool{}
		for _, st := range last.Stages {
			if key := st.Kind + "\x00" + st.Name; !seen[key] {
				seen[key] = true
				gauge(stageDuration, st.Duration.Seconds(), st.Kind, st.Name)
			}
		}
	}
	for name, c := range r.Stores {
		gauge(storeOK, b2f(c.OK), name)
		ts(storeNewest, c.NewestAt, name)
	}
	for name, n := range r.NotifyFailures {
		ch <- prometheus.MustNewConstMetric(notifyFailures, prometheus.CounterValue, float64(n), p.Name, name)
	}
	if d := s.Drill; d != nil {
		ts(drillTime, d.Started)
		gauge(drillPassed, b2f(d.OK))
		gauge(drillRestore, d.Restore.Seconds())
	}
}

// ArtifactName is an artifact's name without its set and extensions, as
// the metrics label it ("moodle", "moodledata"): a label that changed with
// every set would make a new series each night.
func ArtifactName(file, set string) string {
	if i := strings.Index(file, "_"+set+"."); i > 0 {
		return file[:i]
	}
	return file
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Registry is a registry holding the pipelines' collector.
func Registry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg
}

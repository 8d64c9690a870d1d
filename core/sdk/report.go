package sdk

import (
	"time"

	"github.com/mbk-backup/mbk/core/spec"
)

// Report is what a run tells its notifiers. It never holds a secret.
type Report struct {
	Pipeline  string           `json:"pipeline"`
	File      string           `json:"file"`
	Host      string           `json:"host"`
	Set       string           `json:"set"`
	Dir       string           `json:"dir"`
	Status    string           `json:"status"` // start, success, failure, warning
	Committed bool             `json:"committed"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Error     string           `json:"error,omitempty"`
	Stages    []StageReport    `json:"stages"`
	Artifacts []ArtifactReport `json:"artifacts"`
	Retention []Decision       `json:"retention,omitempty"`
	Warnings  []string         `json:"warnings,omitempty"`
	// Alarms are the artifacts of the set that are suspiciously small
	// (each is also one of the Warnings, in words): the run is a warning.
	Alarms []Alarm `json:"alarms,omitempty"`
	// Maintenance says what happened to Moodle's maintenance mode.
	Maintenance string   `json:"maintenance,omitempty"`
	LogTail     []string `json:"log_tail,omitempty"`
	// Drill is the result of `mbk drill`, with the drill event.
	Drill *DrillReport `json:"drill,omitempty"`
	// Language is the pipeline's language setting, "en" or "es": the
	// language of the messages people read (e-mails). Empty is English.
	Language string `json:"language,omitempty"`
}

// Alarm is an artifact far smaller than it should be, with the figures.
type Alarm = spec.Alarm

// DrillReport is what a drill found: a set restored into throwaway targets
// and checked with the application's own invariants.
type DrillReport = spec.DrillReport

// DrillCheck is one check of a drill, with the stage that ran it.
type DrillCheck = spec.DrillCheck

// Duration is how long the run took.
func (r Report) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// StageReport is one stage's outcome.
type StageReport struct {
	Kind     string        `json:"kind"`
	Plugin   string        `json:"plugin"`
	Name     string        `json:"name"`
	Status   string        `json:"status"` // ok, failed, skipped
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// ArtifactReport is one file of the set.
type ArtifactReport struct {
	Stage  string `json:"stage"`
	Plugin string `json:"plugin"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	Raw    int64  `json:"raw_size"`
	SHA256 string `json:"sha256"`
}

// Event names for Notifier.Notify and the `on` setting.
const (
	// EventStart is sent before a run's first stage: a dead-man check
	// learns that the run began. A stage hears it only when its `on`
	// lists it, or when it leaves `on` unset and its plugin's schema
	// names it in Schema.Events.
	EventStart   = spec.EventStart
	EventSuccess = spec.EventSuccess
	EventFailure = spec.EventFailure
	EventWarning = spec.EventWarning
	// EventTest is sent by `mbk notify test`.
	EventTest = spec.EventTest
	// EventDrill is sent after a drill; Report.Drill holds the result.
	EventDrill = spec.EventDrill
)

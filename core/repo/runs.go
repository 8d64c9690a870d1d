package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mbk-backup/mbk/core/spec"
)

// RunsFile keeps, beside the sets, what the runs of a root came to: the last
// run, the last success, the failures since, each store's newest copy and
// the notify failures. A set says what was made; this says what was tried,
// for `mbk status` and the metrics. Runs write it holding the root's lock.
const RunsFile = ".mbk-runs.json"

// Runs is RunsFile.
type Runs struct {
	Pipeline string `json:"pipeline"`
	// Last is the newest run; nil before the first.
	Last *Run `json:"last,omitempty"`
	// LastSuccess is when the newest run that ended OK (exit 0) finished,
	// and its set.
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastSuccessSet string    `json:"last_success_set,omitempty"`
	// FailedSinceSuccess counts the runs that committed nothing since the
	// last that ended OK (warnings are neither).
	FailedSinceSuccess int `json:"failed_since_success"`
	// Stores are each store stage's copies, by the stage's name.
	Stores map[string]*StoreCopies `json:"stores,omitempty"`
	// NotifyFailures counts, per notify stage's name, the notifications
	// that failed, over every run recorded here.
	NotifyFailures map[string]int64 `json:"notify_failures,omitempty"`
}

// Run outcomes, as the notifiers hear them.
const (
	RunSuccess = spec.EventSuccess
	RunWarning = spec.EventWarning
	RunFailure = spec.EventFailure
)

// Run is one run's outcome.
type Run struct {
	Set      string    `json:"set,omitempty"`
	Status   string    `json:"status"` // success, warning, failure
	ExitCode int       `json:"exit_code"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Error is the first problem (nothing committed for a failure, what
	// failed after the commit for a warning), secrets masked.
	Error    string        `json:"error,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
	Alarms   []spec.Alarm  `json:"alarms,omitempty"`
	Stages   []StageRun    `json:"stages,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// StageRun is how long one stage of a run took.
type StageRun struct {
	Kind     string        `json:"kind"`
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration_ns"`
}

// StoreCopies is what the runs (and mbk sync) did about one store.
type StoreCopies struct {
	// Newest is the newest set copied there whole, and when that set was
	// made: how far behind the store is.
	Newest   string    `json:"newest,omitempty"`
	NewestAt time.Time `json:"newest_at,omitzero"`
	// LastAttempt is the last run's copy: OK, or Error.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
}

// ReadRuns returns the root's record, empty when there is none yet.
func ReadRuns(root string) (*Runs, error) {
	b, err := os.ReadFile(filepath.Join(root, RunsFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Runs{}, nil
	}
	if err != nil {
		return nil, err
	}
	var r Runs
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not valid: %w", filepath.Join(root, RunsFile), err)
	}
	return &r, nil
}

// Record adds a run to the record: the new last run, the counts carried on.
// stores holds the copies the run attempted (nil error: copied whole);
// notifyFailed, the failed notifications per notify stage.
func (r *Runs) Record(run Run, stores map[string]error, notifyFailed map[string]int) {
	r.Last = &run
	switch run.Status {
	case RunSuccess:
		r.LastSuccess, r.LastSuccessSet, r.FailedSinceSuccess = run.Finished, run.Set, 0
	case RunFailure:
		r.FailedSinceSuccess++
	}
	for name, err := range stores {
		if r.Stores == nil {
			r.Stores = map[string]*StoreCopies{}
		}
		c := r.Stores[name]
		if c == nil {
			c = &StoreCopies{}
			r.Stores[name] = c
		}
		c.LastAttempt, c.OK, c.Error = run.Finished, err == nil, ""
		if err != nil {
			c.Error = err.Error()
			continue
		}
		c.Newest, c.NewestAt = run.Set, run.Started
	}
	for name, n := range notifyFailed {
		if r.NotifyFailures == nil {
			r.NotifyFailures = map[string]int64{}
		}
		r.NotifyFailures[name] += int64(n)
	}
}

// Copied records a set copied to a store whole outside a run (mbk sync),
// made at made: the store's newest copy when it is newer than what the
// record holds.
func (r *Runs) Copied(store, set string, made time.Time) {
	if r.Stores == nil {
		r.Stores = map[string]*StoreCopies{}
	}
	c := r.Stores[store]
	if c == nil {
		c = &StoreCopies{}
		r.Stores[store] = c
	}
	if made.After(c.NewestAt) {
		c.Newest, c.NewestAt = set, made
	}
}

// WriteRuns replaces the root's record, atomically.
func WriteRuns(root string, r *Runs) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileSync(filepath.Join(root, RunsFile), append(b, '\n'))
}

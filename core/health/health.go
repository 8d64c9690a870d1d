// Package health says whether a pipeline's backups are as they should be,
// from what lies in its root: the newest complete set and its age, the run
// record (last run, failures since the last success, store copies), the
// newest drill, an unfinished restore. It reads files only: no plugin, no
// store, no database is contacted, so a monitoring agent can ask every few
// minutes. `mbk status` and the metrics both read it.
package health

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/spec"
)

// State is what a pipeline's root holds now.
type State struct {
	Pipeline *config.Pipeline
	// Newest is the newest complete backup (never a restore's safety
	// copy); nil when there is none. Kept counts the complete backups.
	Newest *repo.Set
	Kept   int
	Runs   *repo.Runs
	// Drill is the newest drill of any set; nil when none is recorded.
	Drill *spec.DrillReport
	// Restore is an unfinished restore, which refuses backups.
	Restore *repo.RestoreMarker
}

// Read reads a pipeline's root. A root that does not exist is a state (no
// set, no run); one that cannot be read is an error.
func Read(p *config.Pipeline) (*State, error) {
	s := &State{Pipeline: p, Runs: &repo.Runs{}}
	if _, err := os.Stat(p.Root); errors.Is(err, os.ErrNotExist) {
		return s, nil
	} else if err != nil {
		return nil, err
	}
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return nil, fmt.Errorf("list the sets in %s: %w", p.Root, err)
	}
	for i := range sets {
		if sets[i].Complete && !sets[i].PreRestore() {
			s.Kept++
			s.Newest = &sets[i]
		}
	}
	if s.Runs, err = repo.ReadRuns(p.Root); err != nil {
		return nil, err
	}
	if s.Drill, err = repo.LastDrill(p.Root); err != nil {
		return nil, err
	}
	if s.Restore, err = repo.ReadRestoreMarker(p.Root); err != nil {
		return nil, err
	}
	return s, nil
}

// SetTime is when a set was made: when its run finished, or, for a set
// whose manifest does not say, the time in its name.
func SetTime(s *repo.Set) time.Time {
	if s.Manifest != nil && !s.Manifest.Finished.IsZero() {
		return s.Manifest.Finished
	}
	return s.Time
}

// Level is a monitoring plugin's state; its value is the exit code Nagios,
// Icinga, Zabbix and NRPE expect.
type Level int

// The levels, in the monitoring-plugin convention.
const (
	OK       Level = 0
	Warning  Level = 1
	Critical Level = 2
	Unknown  Level = 3
)

func (l Level) String() string {
	switch l {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// MarshalText writes the level as its name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Worse reports whether l calls for more attention than m: CRITICAL, then
// UNKNOWN (nothing is known to be right), then WARNING, then OK.
func (l Level) Worse(m Level) bool {
	rank := []Level{OK, Warning, Unknown, Critical}
	return slices.Index(rank, l) > slices.Index(rank, m)
}

// Finding is one thing found wrong.
type Finding struct {
	Level Level  `json:"level"`
	Text  string `json:"text"`
}

// Report is a pipeline's verdict with what it rests on.
type Report struct {
	Pipeline string    `json:"pipeline"`
	File     string    `json:"file"`
	Root     string    `json:"root"`
	Level    Level     `json:"state"`
	Findings []Finding `json:"findings,omitempty"`
	// MaxAge is the age limit applied to the newest set and each store's
	// newest copy.
	MaxAge   time.Duration `json:"max_age_ns"`
	Newest   *SetAge       `json:"newest_set,omitempty"`
	Kept     int           `json:"sets_kept"`
	LastRun  *repo.Run     `json:"last_run,omitempty"`
	Failed   int           `json:"failed_runs_since_success"`
	Success  time.Time     `json:"last_success,omitzero"`
	Stores   []StoreAge    `json:"stores,omitempty"`
	Drill    *DrillSummary `json:"last_drill,omitempty"`
	Restore  string        `json:"unfinished_restore,omitempty"`
	ReadFail string        `json:"error,omitempty"`
}

// SetAge is a set and how old it is.
type SetAge struct {
	Set  string        `json:"set"`
	Time time.Time     `json:"time"`
	Age  time.Duration `json:"age_ns"`
}

// StoreAge is a store's newest copy, as the runs recorded it.
type StoreAge struct {
	Store     string        `json:"store"`
	Newest    string        `json:"newest,omitempty"`
	Time      time.Time     `json:"time,omitzero"`
	Age       time.Duration `json:"age_ns,omitempty"`
	LastOK    bool          `json:"last_copy_ok"`
	LastError string        `json:"last_error,omitempty"`
}

// DrillSummary is the newest drill.
type DrillSummary struct {
	Set     string        `json:"set"`
	From    string        `json:"from"`
	OK      bool          `json:"ok"`
	Started time.Time     `json:"started"`
	Restore time.Duration `json:"restore_ns"`
	Error   string        `json:"error,omitempty"`
}

// Failed is the report of a pipeline whose root could not be read.
func Failed(p *config.Pipeline, err error) Report {
	return Report{Pipeline: p.Name, File: p.File.Path, Root: p.Root, Level: Unknown, ReadFail: err.Error(),
		Findings: []Finding{{Unknown, fmt.Sprintf("cannot read %s: %v", p.Root, err)}}}
}

// Evaluate judges a state at now against maxAge: CRITICAL when there is no
// complete backup, when the newest is older than maxAge, or while a restore
// is unfinished (backups are refused); WARNING when the last run failed or
// ended with a warning (a size alarm, a store or a notification that
// failed), when a store's newest copy is older than maxAge or missing, or
// when the newest drill failed; OK otherwise.
func Evaluate(s *State, now time.Time, maxAge time.Duration) Report {
	p := s.Pipeline
	r := Report{Pipeline: p.Name, File: p.File.Path, Root: p.Root, MaxAge: maxAge, Kept: s.Kept,
		LastRun: s.Runs.Last, Failed: s.Runs.FailedSinceSuccess, Success: s.Runs.LastSuccess}
	add := func(l Level, format string, args ...any) {
		r.Findings = append(r.Findings, Finding{l, fmt.Sprintf(format, args...)})
		if l.Worse(r.Level) {
			r.Level = l
		}
	}
	if m := s.Restore; m != nil {
		r.Restore = m.Set
		add(Critical, "a restore of set %s is unfinished: backups are refused until it is settled (mbk restore %s --abandon, or restore again)", m.Set, p.File.Path)
	}
	if s.Newest == nil {
		add(Critical, "no complete backup set in %s", p.Root)
	} else {
		t := SetTime(s.Newest)
		r.Newest = &SetAge{Set: s.Newest.Name, Time: t, Age: now.Sub(t)}
		if r.Newest.Age > maxAge {
			add(Critical, "the newest complete set, %s, is %s old (max_age %s)", s.Newest.Name, Span(r.Newest.Age), Span(maxAge))
		}
	}
	if last := s.Runs.Last; last != nil {
		switch last.Status {
		case repo.RunFailure:
			add(Warning, "the last run failed (%s): %s; %d failed run(s) since the last success", last.Finished.Format(time.RFC3339), last.Error, s.Runs.FailedSinceSuccess)
		case repo.RunWarning:
			if len(last.Alarms) > 0 {
				for _, a := range last.Alarms {
					add(Warning, "the last run's set %s is suspiciously small: %s", last.Set, a.Message)
				}
			} else {
				add(Warning, "the last run (set %s) ended with a warning: %s", last.Set, last.Error)
			}
		}
	}
	for _, st := range storeStages(p) {
		c := s.Runs.Stores[st]
		sa := StoreAge{Store: st}
		if c != nil {
			sa.Newest, sa.Time, sa.LastOK, sa.LastError = c.Newest, c.NewestAt, c.OK, c.Error
			if !c.NewestAt.IsZero() {
				sa.Age = now.Sub(c.NewestAt)
			}
		}
		r.Stores = append(r.Stores, sa)
		switch {
		case sa.Newest == "" && c != nil:
			add(Warning, "store %s holds no copy yet: %s", st, sa.LastError)
		case sa.Newest == "":
			if s.Newest != nil {
				add(Warning, "store %s: no copy recorded yet", st)
			}
		case sa.Age > maxAge:
			add(Warning, "store %s: the newest copy, %s, is %s old (max_age %s)%s", st, sa.Newest, Span(sa.Age), Span(maxAge), lastError(sa))
		}
	}
	if d := s.Drill; d != nil {
		r.Drill = &DrillSummary{Set: d.Set, From: d.From, OK: d.OK, Started: d.Started, Restore: d.Restore, Error: d.Error}
		if !d.OK {
			why := d.Error
			if why == "" {
				for _, c := range d.Failed() {
					why += fmt.Sprintf("%s %s: %s; ", c.Stage, c.Name, c.Summary)
				}
			}
			add(Warning, "the last drill (set %s, %s) failed: %s", d.Set, d.Started.Format(time.RFC3339), why)
		}
	}
	return r
}

func lastError(sa StoreAge) string {
	if sa.LastOK || sa.LastError == "" {
		return ""
	}
	return "; the last copy failed: " + sa.LastError
}

// storeStages names the pipeline's store stages: a store the record knows
// but the pipeline no longer has is not judged.
func storeStages(p *config.Pipeline) []string {
	var out []string
	for _, s := range p.StagesOf(spec.KindStore) {
		out = append(out, s.Name)
	}
	return out
}

// Span writes a duration for people: "26h", "2d6h", "45m0s", "12s", "103ms".
func Span(d time.Duration) string {
	if d < time.Second {
		if d >= time.Millisecond {
			d = d.Round(time.Millisecond) // "103ms", not "102.516972ms"
		}
		return d.String() // a limit set below a millisecond stays as set: "1ns"
	}
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour:
		days := d / (24 * time.Hour)
		h := (d - days*24*time.Hour) / time.Hour
		return fmt.Sprintf("%dd%dh", days, h)
	case d >= time.Hour && d%time.Hour < time.Minute:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return d.String()
}

package spec

import "time"

// Check is one named check's outcome, as a plugin's restore checks report it.
type Check struct {
	// Name is short and stable, for scripts: "rows", "objects",
	// "moodle-version", "moodle-plugins", "references", "blob-hashes".
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Summary string `json:"summary"`
	// Problems name each thing that failed, as an administrator finds it:
	// "missing blob 3f2a…: mod_resource/content/Plan.pdf". A Checker
	// lists at most a few hundred and says in Summary how many there were.
	Problems []string `json:"problems,omitempty"`
}

// DrillReport is what a drill found: a set restored into throwaway targets
// and checked with the application's own invariants. It is sent to notifiers
// with the drill event and kept beside the sets as the drill's record.
type DrillReport struct {
	Set  string `json:"set"`
	From string `json:"from"` // "local", or the store the set came from
	OK   bool   `json:"ok"`
	// Started is when the drill began; Duration is the whole drill
	// (sandboxes, restore, checks, teardown).
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// Restore is how long the restore took: the recovery time an
	// administrator reports.
	Restore time.Duration `json:"restore_ns"`
	Checks  []DrillCheck  `json:"checks"`
	// Sandboxes says what was made to restore into, a line per stage.
	Sandboxes []string `json:"sandboxes,omitempty"`
	// Error is why the drill could not run its checks (a sandbox that
	// could not be made, a restore that failed), "" otherwise.
	Error string `json:"error,omitempty"`
}

// Failed lists the checks that did not pass.
func (r DrillReport) Failed() []DrillCheck {
	var out []DrillCheck
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// DrillCheck is one check of a drill, with the stage that ran it.
type DrillCheck struct {
	Stage string `json:"stage"`
	Check
}

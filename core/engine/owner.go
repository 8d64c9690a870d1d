package engine

import (
	"fmt"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
)

// ForeignSetError says a root holds another pipeline's sets. A root is one
// pipeline's: its retention counts every set in it, the last-backup alarm
// and health read its newest, and restore takes its newest by default. Two
// pipelines sharing one (testing.hcl copied from production.hcl, root left
// as it was) would prune each other's sets and restore each other's sites.
type ForeignSetError struct {
	Root, Pipeline, Set, Other string
}

func (e *ForeignSetError) Error() string {
	return fmt.Sprintf("root %s holds set %s of pipeline %q, and a root keeps one pipeline's sets (retention, alarms and restore go by the root): give pipeline %q a root of its own, or, if %q was renamed to %q, rename it back or move its sets elsewhere",
		e.Root, e.Set, e.Other, e.Pipeline, e.Other, e.Pipeline)
}

// checkOwner fails when p's root holds a complete set another pipeline
// made.
func checkOwner(p *config.Pipeline) error {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	return foreignSet(p, sets)
}

// foreignSet is checkOwner over sets already listed.
func foreignSet(p *config.Pipeline, sets []repo.Set) error {
	for _, st := range sets {
		if st.Manifest != nil && st.Manifest.Pipeline != "" && st.Manifest.Pipeline != p.Name {
			return &ForeignSetError{Root: p.Root, Pipeline: p.Name, Set: st.Name, Other: st.Manifest.Pipeline}
		}
	}
	return nil
}

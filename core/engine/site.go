package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/mbk-backup/mbk/core/maintenance"
)

// Clone makes a restore bring another pipeline's set (production's) into
// this pipeline's site (testing's) and move it to this site's URL.
type Clone struct {
	FromPipeline string
	// FromURL is the URL the set's site had (recorded at backup, or
	// given); ToURL this site's.
	FromURL, ToURL string
}

// SiteStep is one of Moodle's CLI scripts run after a restore, while the
// site is still in maintenance mode.
type SiteStep struct {
	Name   string `json:"name"`
	Result string `json:"result,omitempty"`
	Err    error  `json:"-"`
}

// RestoreOutcome is what a restore that completed did.
type RestoreOutcome struct {
	// Safety is the safety copy's set ("" when none was taken).
	Safety string
	// Site are the steps run in the app container after the restore;
	// one that failed leaves the data restored but needs a hand.
	Site []SiteStep
}

// SiteFailed lists the site steps that failed.
func (o RestoreOutcome) SiteFailed() []SiteStep {
	var out []SiteStep
	for _, s := range o.Site {
		if s.Err != nil {
			out = append(out, s)
		}
	}
	return out
}

// afterRestore brings the restored site back as Moodle expects: for a clone,
// the old URL replaced in the database and e-mail switched off; then the
// caches purged (they hold the site before the restore) and every session
// ended (they belong to it too). It runs before maintenance mode goes off.
func (e *Engine) afterRestore(ctx context.Context, site *maintenance.Site, clone *Clone) []SiteStep {
	var steps []SiteStep
	step := func(name string, fn func() (string, error)) {
		out, err := fn()
		s := SiteStep{Name: name, Result: lastLine(out), Err: err}
		if err != nil {
			e.Log.Error("after the restore: "+name+" failed", "container", site.Container(), "error", e.Redact.String(err.Error()))
		} else {
			e.Log.Info("after the restore: "+name, "container", site.Container(), "result", s.Result)
		}
		steps = append(steps, s)
	}
	cli := func(rel string, args ...string) func() (string, error) {
		return func() (string, error) { return site.CLI(ctx, rel, args...) }
	}
	if clone != nil {
		step("replace "+clone.FromURL+" with "+clone.ToURL, cli("admin/tool/replace/cli/replace.php",
			"--search="+clone.FromURL, "--replace="+clone.ToURL, "--non-interactive"))
		// A copy of production must never mail production's users.
		step("noemailever", func() (string, error) {
			return "e-mail switched off ($CFG->noemailever = 1)", site.SetConfig(ctx, "noemailever", "1")
		})
	}
	step("purge_caches", cli("admin/cli/purge_caches.php"))
	step("kill_all_sessions", cli("admin/cli/kill_all_sessions.php"))
	if clone != nil {
		step("wwwroot", func() (string, error) {
			got, err := site.Config(ctx, "wwwroot")
			if err != nil {
				return "", err
			}
			if strings.TrimRight(got, "/") != strings.TrimRight(clone.ToURL, "/") {
				return got, fmt.Errorf("the site's config.php says $CFG->wwwroot = '%s': set it to '%s' in the config.php of container %s (mbk does not edit config.php)", got, clone.ToURL, site.Container())
			}
			return "config.php already names " + got, nil
		})
	}
	return steps
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mbk-backup/mbk/core/maintenance"
)

// inMaintenance runs fn with the site in maintenance mode when the pipeline
// asks for it: a run killed earlier inside its window is cleaned up first,
// and the window is closed whatever fn returns.
func (r *run) inMaintenance(ctx context.Context, fn func() error) error {
	m := r.p.Maintenance
	if m == nil || r.opts.safetyCopy() { // a restore's copy: the restore holds the window
		return fn()
	}
	site, err := maintenance.Open(ctx, m, r.log)
	if err != nil {
		return err
	}
	defer site.Close()
	if msg, err := maintenance.Recover(ctx, site, r.p.Root); err != nil {
		return err
	} else if msg != "" {
		r.warn(msg)
	}
	w, err := maintenance.Begin(ctx, site, r.p.Root)
	if err != nil {
		return err
	}
	// The site's URL, for a clone of this set into another site.
	if url, err := site.Config(ctx, "wwwroot"); err != nil {
		r.log.Warn("cannot read the site's URL (wwwroot) with admin/cli/cfg.php: a clone of this set will need --from-url", "error", r.e.Redact.String(err.Error()))
	} else if r.man != nil {
		r.man.WWWRoot = url
	}
	ferr := fn()
	held, eerr := w.End()
	switch {
	case !w.Ours():
		r.res.Report.Maintenance = "the site was already in maintenance mode; mbk left it on"
	case eerr == nil:
		r.res.Report.Maintenance = fmt.Sprintf("the site was in maintenance mode for %s", held.Round(100*time.Millisecond))
	default:
		r.res.Report.Maintenance = "mbk could not switch maintenance mode off: " + r.e.Redact.String(eerr.Error())
	}
	if r.man != nil {
		r.man.MaintenanceMS = held.Milliseconds()
	}
	r.log.Info("maintenance window closed", "summary", r.res.Report.Maintenance)
	if ferr != nil {
		return errors.Join(ferr, eerr)
	}
	if eerr != nil {
		// The copies are good: keep them, but the run is not a success.
		r.warn(eerr.Error())
		r.afterCommit = append(r.afterCommit, eerr)
	}
	return nil
}

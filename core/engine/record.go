package engine

import (
	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
)

// record adds this run to the root's run record (repo.RunsFile), which
// `mbk status` and the metrics read: its outcome, the stores it copied to,
// the notifications that failed. A record that cannot be written is
// logged; the backup itself is not the worse for it.
func (r *run) record() {
	runs, err := repo.ReadRuns(r.p.Root)
	if err != nil {
		r.log.Warn("the run record is unreadable: starting it afresh", "error", err)
		runs = &repo.Runs{}
	}
	runs.Pipeline = r.p.Name
	rep := r.res.Report
	run := repo.Run{Set: r.name, Status: rep.Status, ExitCode: r.res.ExitCode(), Started: rep.Started, Finished: rep.Finished,
		Error: rep.Error, Warnings: rep.Warnings, Alarms: rep.Alarms, Duration: rep.Duration()}
	for _, s := range rep.Stages {
		run.Stages = append(run.Stages, repo.StageRun{Kind: s.Kind, Name: s.Name, Status: s.Status, Duration: s.Duration})
	}
	runs.Record(run, r.stores, r.notifyFailed)
	if err := repo.WriteRuns(r.p.Root, runs); err != nil {
		r.log.Error("cannot write the run record: mbk status and the metrics miss this run", "error", err)
	}
}

// RecordSync adds the copies mbk sync made to the root's run record, so
// that mbk status and the metrics see each store caught up. It takes the
// root's lock for it; a run that holds the lock now records the stores
// itself.
func RecordSync(p *config.Pipeline, copies []Copied) error {
	lock, err := repo.Acquire(p.Root)
	if err != nil {
		return err
	}
	defer lock.Release()
	runs, err := repo.ReadRuns(p.Root)
	if err != nil {
		return err
	}
	for _, c := range copies {
		if c.Err != nil || c.Set == "" {
			continue
		}
		if made, ok := repo.ParseSetName(c.Set, p.Location); ok {
			runs.Copied(c.Store.Name, c.Set, made)
		}
	}
	runs.Pipeline = p.Name
	return repo.WriteRuns(p.Root, runs)
}

package engine

import (
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

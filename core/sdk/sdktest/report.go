package sdktest

import (
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

// kitSet is the backup set the kits' reports and backups name.
const kitSet = "2026-11-27_03-00-00"

// report is a run's report as the core sends it for event: a whole run with
// a dump and an archive for success and warning, a failed dump for failure,
// for start what a run sends before its first stage, and for test what
// `mbk notify test` sends (no stage ran).
func report(event string) sdk.Report {
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	r := sdk.Report{
		Pipeline: "production", File: "/etc/mbk/production.hcl", Host: "moodle1.example.org", Set: kitSet,
		Dir: "/var/backups/mbk/production/" + kitSet, Status: event, Committed: true,
		Started: start, Finished: start.Add(2*time.Minute + 13*time.Second),
		Stages: []sdk.StageReport{
			{Kind: sdk.KindDump, Plugin: "mysql", Name: "db", Status: "ok", Duration: 95 * time.Second},
			{Kind: sdk.KindArchive, Plugin: "volume", Name: "moodledata", Status: "ok", Duration: 30 * time.Second},
			{Kind: sdk.KindChecksum, Plugin: "sha256", Name: "sums", Status: "ok", Duration: 2 * time.Second},
			{Kind: sdk.KindRetain, Plugin: "policy", Name: "keep", Status: "ok", Duration: time.Millisecond},
		},
		Artifacts: []sdk.ArtifactReport{
			{Stage: "db", Plugin: "mysql", File: "moodle_" + kitSet + ".sql.zst", Size: 12897280, Raw: 52428800,
				SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			{Stage: "moodledata", Plugin: "volume", File: "moodledata_" + kitSet + ".tar.zst", Size: 734003200, Raw: 1073741824,
				SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"},
		},
		Retention: []sdk.Decision{
			{Set: kitSet, Keep: true, Reasons: []string{"newest", "daily 1"}},
			{Set: "2026-11-01_03-00-00", Keep: false, Reasons: []string{"older than every window"}},
		},
		Maintenance: "switched on at 03:00:01, off at 03:02:12",
		LogTail:     []string{"03:00:01 dump db: started", "03:01:36 dump db: 52 MiB", "03:02:13 run: committed"},
	}
	switch event {
	case sdk.EventWarning:
		r.Warnings = []string{"moodledata: 3 files changed while they were archived", "retention: 1 set could not be deleted: permission denied"}
	case sdk.EventFailure:
		r.Committed = false
		r.Error = `dump "db" stage (plugin mysql): dump database "moodle" in container "db": mariadb-dump: Access denied for user 'moodle'@'localhost'`
		r.Stages = []sdk.StageReport{
			{Kind: sdk.KindDump, Plugin: "mysql", Name: "db", Status: "failed", Duration: 2 * time.Second, Error: r.Error},
			{Kind: sdk.KindArchive, Plugin: "volume", Name: "moodledata", Status: "skipped"},
		}
		r.Artifacts, r.Retention = nil, nil
		r.LogTail = []string{"03:00:01 dump db: started", "03:00:03 dump db: mariadb-dump exited 2"}
	case sdk.EventDrill:
		// A drill that failed: one blob the database references is missing.
		r.Status, r.Error = sdk.EventFailure, "checks failed: archive \"volume\" references"
		r.Stages, r.Artifacts, r.Retention, r.Maintenance = nil, nil, nil, ""
		r.Drill = &sdk.DrillReport{Set: kitSet, From: "local", OK: false, Started: start,
			Duration: 4 * time.Minute, Restore: 3*time.Minute + 10*time.Second,
			Sandboxes: []string{`dump "mysql": MariaDB 10.11.6 in container mbk-drill-production-1-db`, `archive "volume": volume mbk-drill-production-1-moodledata`},
			Checks: []sdk.DrillCheck{
				{Stage: `dump "mysql"`, Check: sdk.Check{Name: "rows", OK: true, Summary: "412 tables, 1,204,331 rows as recorded"}},
				{Stage: `archive "volume"`, Check: sdk.Check{Name: "references", OK: false, Summary: "1 of 5,210 referenced blobs missing",
					Problems: []string{"missing blob 3f2a9c0e5d1b7a4f6e8d9c0b1a2f3e4d5c6b7a89: mod_resource/content/Plan.pdf"}}},
			}}
	case sdk.EventStart:
		// Before the first stage: the set is named, nothing is made yet.
		r = sdk.Report{Pipeline: r.Pipeline, File: r.File, Host: r.Host, Set: kitSet, Status: sdk.EventStart, Started: start, Finished: start}
	case sdk.EventTest:
		r = sdk.Report{Pipeline: r.Pipeline, File: r.File, Host: r.Host, Status: sdk.EventTest, Started: start, Finished: start}
	}
	return r
}

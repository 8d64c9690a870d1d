// Package spec holds what a plugin declares and the core checks against: the
// stage kinds, the notify events, the settings schema with its types, and
// diagnostics. It is small on purpose: both core/config (which decodes the
// user's file) and core/sdk (which plugin authors import) use it, and neither
// needs the other. Plugin authors reach it through the sdk's aliases.
package spec

// Stage kinds, in the order a pipeline runs them.
const (
	KindDump     = "dump"
	KindArchive  = "archive"
	KindChecksum = "checksum"
	KindRetain   = "retain"
	KindStore    = "store"
	KindNotify   = "notify"
)

// Kinds lists every stage kind in run order.
func Kinds() []string {
	return []string{KindDump, KindArchive, KindChecksum, KindRetain, KindStore, KindNotify}
}

// Events a notifier is sent.
const (
	// EventStart is sent once a run holds its root's lock and names its
	// set, before the first stage: a dead-man check (healthchecks.io)
	// learns that a run began, and so how long it takes.
	EventStart   = "start"
	EventSuccess = "success"
	EventFailure = "failure"
	EventWarning = "warning"
	// EventDrill is sent after `mbk drill` (Report.Drill holds the result;
	// Report.Status says whether it passed). A stage whose `on` lists
	// "failure" but not "drill" still gets a drill that failed.
	EventDrill = "drill"
	// EventTest is sent by `mbk notify test` only; a notify stage's `on`
	// setting does not list it.
	EventTest = "test"
)

// Events lists the events a notify stage can subscribe to with `on`.
func Events() []string {
	return []string{EventStart, EventSuccess, EventFailure, EventWarning, EventDrill}
}

// DefaultEvents are what a notify stage hears when its `on` is not set and
// its plugin's schema names no events of its own (Schema.Events): every
// outcome, but not the start of each run, which an e-mail need not announce.
func DefaultEvents() []string { return []string{EventSuccess, EventFailure, EventWarning, EventDrill} }

// PAX records of a pooled file's entry in a tar artifact (Artifact.Pool):
// the entry has no data, and these name the blob in the core's pool that
// holds it. The core puts the content back before a restore. A pool
// listing (listing.go) is the compact form of such entries.
const (
	PoolPAXSHA1 = "MBK.pool.sha1"
	PoolPAXSize = "MBK.pool.size"
)

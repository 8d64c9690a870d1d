package sdk

import (
	"os"
	"runtime/debug"
)

// LeanGCPercent is the garbage collector's target in mbk and its plugins
// unless GOGC says otherwise: the heap may grow to 1.5 times what is live
// between collections, not Go's default 2 times. A backup's live heap is
// mostly codec state and stream buffers, reused all run long; what the
// default's headroom costs is resident memory on a school's server (on the
// medium bench site's first pooled run, mbk and the volume plugin peaked
// at 85 + 43 MiB with GOGC=100, 68 + 35 MiB with 50), what 50 costs is a
// collection twice as often (1% of the core's CPU at 100).
const LeanGCPercent = 50

// LeanGC sets LeanGCPercent when the environment sets no GOGC. Serve calls
// it for a plugin, mbk's main for the core.
func LeanGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(LeanGCPercent)
	}
}

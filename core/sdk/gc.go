package sdk

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
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

// LeanGCFloor is the heap a collection may wait for however little is
// live. At 50% of a small live heap (an unchanged pooled night keeps a few
// MiB live while tens of MiB of listing stream through) the collector ran
// every few MiB allocated. A floor of 24 MiB took that night's archive
// stage on the medium bench tree from a median of 470 to 414 ms, but it
// also let the volume plugin hold some 16 MiB more in every run (its
// anonymous memory went from 6-8 to 19-25 MiB in make bench, taking the
// first pooled run and the pooled restore over 100 MiB in all). Since the
// walk allocates half as much, 0, 8, 14 and 24 MiB give the same stage
// (medians 222, 217, 208 and 217 ms, eight alternating runs each): 8 MiB
// is kept. (Those figures were taken before the runtime's own minimum,
// below, was allowed for: every floor then gave a goal of about 20 MiB.)
// Below the floor the percentage is raised to reach it; above,
// LeanGCPercent holds.
const LeanGCFloor = 8 << 20

// LeanGC sets LeanGCPercent, with LeanGCFloor under it, when the
// environment sets no GOGC. Serve calls it for a plugin, mbk's main for
// the core.
func LeanGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(LeanGCPercent)
		floorOnce.Do(func() {
			floor := &gcFloor{floor: LeanGCFloor, percent: LeanGCPercent, sample: []metrics.Sample{
				{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
			}}
			floor.arm()
		})
	}
}

// floorOnce: one gcFloor a process (a test serves plugins many times).
var floorOnce sync.Once

// gcFloor re-tunes the collector's percentage after each collection, from
// the heap the collection found live: percent, or more where that leaves
// the next goal below floor. It runs as the cleanup of an object made
// garbage at once, so once per collection, and stops for good when it
// finds the percentage changed by anyone else (GOGC's value is theirs).
type gcFloor struct {
	floor   uint64
	percent int
	set     int
	sample  []metrics.Sample
}

// gcFloorMax bounds the percentage the floor may set (a heap of a few
// hundred KiB live would otherwise ask for thousands).
const gcFloorMax = 500

// runtimeHeapMinimum is the Go runtime's smallest goal at a percentage of
// 100 (defaultHeapMinimum in runtime/mgcpacer.go); at percentage p the
// goal is never below runtimeHeapMinimum*p/100. The floor's percentage
// must stay under floor*100/runtimeHeapMinimum, or that minimum, not
// the floor, sets the goal: at 500 it was 20 MiB, and the volume plugin
// held 22 MiB where it had held 6 (a whole archive of the medium bench
// tree, its anonymous memory at the peak).
const runtimeHeapMinimum = 4 << 20

// target is the percentage for a heap of live bytes, whose collection
// scanned roots bytes more (stacks and globals): the runtime's goal is
// live + (live+roots)*percent/100, and at least
// runtimeHeapMinimum*percent/100.
func (g *gcFloor) target(live, roots uint64) int {
	if live+(live+roots)*uint64(g.percent)/100 >= g.floor {
		return g.percent
	}
	most := min(gcFloorMax, int(g.floor*100/runtimeHeapMinimum))
	return max(g.percent, min(most, int((g.floor-live)*100/max(1, live+roots))))
}

// gcSentinel is the garbage whose cleanup marks a collection; its pointer
// keeps it out of the tiny allocator, whose blocks may never be freed.
type gcSentinel struct{ _ *gcFloor }

func (g *gcFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), (*gcFloor).tune, g)
}

func (g *gcFloor) tune() {
	metrics.Read(g.sample)
	for _, s := range g.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return
		}
	}
	want := g.target(g.sample[0].Value.Uint64(), g.sample[1].Value.Uint64()+g.sample[2].Value.Uint64())
	if want != g.set {
		was := debug.SetGCPercent(want)
		if g.set != 0 && was != g.set {
			debug.SetGCPercent(was) // someone else set it: theirs holds
			return
		}
		g.set = want
	}
	g.arm()
}

package sdk

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
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
// stage on the medium bench tree from a median of 470 to 414 ms, but, with
// the runtime's own minimum at the raised percentage (runtimeHeapMinimum),
// it let the volume plugin hold some 16 MiB more in every make bench run,
// taking the first pooled run and the pooled restore over 100 MiB in all.
// Since the walk allocates half as much, 0, 8, 14 and 24 MiB gave the
// stage the same time (medians 222, 217, 208 and 217 ms, eight
// alternating runs each), and 8 MiB still took the large site's pooled
// restore to 101 MiB. The floor is Go's own default minimum, 4 MiB: a
// small heap collects as under Go's default, a large one at
// LeanGCPercent. Below the floor the percentage is raised to reach it;
// above, LeanGCPercent holds.
const LeanGCFloor = 4 << 20

// LeanGC sets LeanGCPercent, with LeanGCFloor under it, when the
// environment sets no GOGC. Serve calls it for a plugin, mbk's main for
// the core.
func LeanGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(LeanGCPercent)
		floorOnce.Do(func() {
			floor := newGCFloor()
			floors.Lock()
			floors.g = floor
			floors.Unlock()
			floor.arm()
		})
	}
}

// WalkGCFloor is the floor while a walk that allocates much and keeps
// little runs (RaiseGCFloor: the volume plugin's pooled walk, the core's
// pooled artifact): the archive stage of an unchanged pooled night on the
// medium bench tree took a median of 177 ms with 8 MiB everywhere, 185 ms
// with it in the plugin alone and 199 ms with LeanGCFloor everywhere
// (eight alternating runs each), for about 5 MiB more in the plugin.
const WalkGCFloor = 8 << 20

// floors is the process's floor and the raises in force.
var floors struct {
	sync.Mutex
	g      *gcFloor
	raised []uint64
}

// RaiseGCFloor raises the collector's floor to n until the returned func
// is called: for the part of a run that streams much through a small live
// heap, where LeanGCFloor would collect too often. The highest raise in
// force holds. Without LeanGC's floor (GOGC set) it does nothing.
func RaiseGCFloor(n uint64) (undo func()) {
	floors.Lock()
	defer floors.Unlock()
	if floors.g == nil {
		return func() {}
	}
	floors.raised = append(floors.raised, n)
	floors.g.setFloor(max(LeanGCFloor, slices.Max(floors.raised)))
	var once sync.Once
	return func() {
		once.Do(func() {
			floors.Lock()
			defer floors.Unlock()
			floors.raised = slices.Delete(floors.raised, slices.Index(floors.raised, n), slices.Index(floors.raised, n)+1)
			top := uint64(LeanGCFloor)
			if len(floors.raised) > 0 {
				top = max(top, slices.Max(floors.raised))
			}
			floors.g.setFloor(top)
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
	floor   uint64 // under mu: RaiseGCFloor changes it between collections
	mu      sync.Mutex
	percent int
	set     int
	sample  []metrics.Sample
}

func newGCFloor() *gcFloor {
	return &gcFloor{floor: LeanGCFloor, percent: LeanGCPercent, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}}
}

func (g *gcFloor) setFloor(n uint64) {
	g.mu.Lock()
	g.floor = n
	g.mu.Unlock()
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
	g.mu.Lock()
	defer g.mu.Unlock()
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

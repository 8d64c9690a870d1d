package sdk

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// The floor's percentage: the next goal (live + (live+roots)*p/100) reaches
// the floor, within gcFloorMax; a heap whose goal at LeanGCPercent is above
// the floor keeps LeanGCPercent.
func TestGCFloorTarget(t *testing.T) {
	const MiB = 1 << 20
	g := &gcFloor{floor: 24 * MiB, percent: LeanGCPercent}
	for _, c := range []struct {
		live, roots uint64
		want        int
	}{
		{8 * MiB, 0, 200},                  // 8 + 8*2 = 24
		{6 * MiB, 2 * MiB, 225},            // 6 + 8*2.25 = 24
		{1 * MiB, 0, gcFloorMax},           // would be 2300
		{0, 0, gcFloorMax},                 // nothing live yet
		{16 * MiB, 0, LeanGCPercent},       // 16 + 8 = 24: at the floor
		{40 * MiB, 1 * MiB, LeanGCPercent}, // a first run's heap: as before
		{15 * MiB, 2 * MiB, LeanGCPercent}, // 15 + 17*0.5 = 23.5 < 24 ...
	} {
		got := g.target(c.live, c.roots)
		if c.live == 15*MiB {
			// ... so raised, just enough: 15 + 17*0.52 = 23.9.
			if got <= LeanGCPercent || got > 60 {
				t.Errorf("live %d MiB, roots %d MiB: percent %d, want just above %d", c.live/MiB, c.roots/MiB, got, LeanGCPercent)
			}
			continue
		}
		if got != c.want {
			t.Errorf("live %d MiB, roots %d MiB: percent %d, want %d", c.live/MiB, c.roots/MiB, got, c.want)
		}
	}
}

// gogc is the collector's percentage as the runtime reports it.
func gogc(t *testing.T) int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// After LeanGC, a process with little live raises its percentage above
// LeanGCPercent once a collection has run; a percentage set by someone
// else afterwards holds, whatever the heap does.
func TestLeanGCFloor(t *testing.T) {
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)
	unsetenv(t, "GOGC")
	LeanGC()
	deadline := time.Now().Add(5 * time.Second)
	for gogc(t) <= LeanGCPercent && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := gogc(t); got <= LeanGCPercent {
		t.Fatalf("with a small live heap the percentage stayed %d", got)
	}

	debug.SetGCPercent(77)
	var keep [][]byte
	for i := range 20 {
		if i == 10 {
			keep = nil // the floor's want changes with the heap
		} else {
			keep = append(keep, make([]byte, 4<<20))
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	runtime.KeepAlive(keep)
	if got := gogc(t); got != 77 {
		t.Errorf("a percentage set after LeanGC became %d, want 77", got)
	}
}

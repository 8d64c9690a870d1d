package sdk

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// The floor's percentage: the next goal (live + (live+roots)*p/100) reaches
// the floor, within gcFloorMax and within the percentage at which the
// runtime's own smallest goal (4 MiB at 100) is the floor; a heap whose
// goal at LeanGCPercent is above the floor keeps LeanGCPercent.
func TestGCFloorTarget(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		floor, live, roots uint64
		want               int
	}{
		{24 * MiB, 8 * MiB, 0, 200},                  // 8 + 8*2 = 24
		{24 * MiB, 6 * MiB, 2 * MiB, 225},            // 6 + 8*2.25 = 24
		{24 * MiB, 1 * MiB, 0, gcFloorMax},           // would be 2300; 600 makes the runtime's minimum 24
		{24 * MiB, 0, 0, gcFloorMax},                 // nothing live yet
		{24 * MiB, 16 * MiB, 0, LeanGCPercent},       // 16 + 8 = 24: at the floor
		{24 * MiB, 40 * MiB, 1 * MiB, LeanGCPercent}, // a first run's heap: as before
		{24 * MiB, 15 * MiB, 2 * MiB, 52},            // 15 + 17*0.5 = 23.5 < 24: raised just enough
		// Under 8 MiB the percentage stops at 200, where the runtime's
		// minimum is 8 MiB: at 500 it would be 20.
		{8 * MiB, 0, 0, 200},
		{8 * MiB, 1 * MiB, 0, 200},                 // would be 700
		{8 * MiB, 3 * MiB, 0, 166},                 // 3 + 3*1.66 = 8
		{8 * MiB, 6 * MiB, 0, LeanGCPercent},       // 6 + 3 = 9: above the floor
		{8 * MiB, 5*MiB + MiB/2, 0, LeanGCPercent}, // 5.5 + 2.75 = 8.25
		{8 * MiB, 5 * MiB, 1 * MiB, LeanGCPercent}, // 5 + 3 = 8: at the floor
	} {
		g := &gcFloor{floor: c.floor, percent: LeanGCPercent}
		if got := g.target(c.live, c.roots); got != c.want {
			t.Errorf("floor %d MiB, live %d KiB, roots %d KiB: percent %d, want %d", c.floor/MiB, c.live>>10, c.roots>>10, got, c.want)
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
	// The goal the runtime works to is the floor, not its own minimum at
	// the raised percentage.
	goal := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(goal)
	if g := goal[0].Value.Uint64(); g > LeanGCFloor+LeanGCFloor/8 {
		t.Errorf("with a small live heap the goal is %d KiB, past the floor's %d KiB (percentage %d)", g>>10, LeanGCFloor>>10, gogc(t))
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

// RaiseGCFloor's floor holds, and the runtime's goal follows it, until
// its undo; the highest raise in force wins, and an undo twice is one.
func TestRaiseGCFloor(t *testing.T) {
	// A floor of the test's own: an earlier test stopped the process's
	// (it set the percentage itself). Setting it back at the end stops
	// this one too.
	was := debug.SetGCPercent(LeanGCPercent)
	defer debug.SetGCPercent(was)
	g := newGCFloor()
	floors.Lock()
	old := floors.g
	floors.g = g
	floors.Unlock()
	defer func() {
		floors.Lock()
		floors.g = old
		floors.Unlock()
	}()
	g.arm()
	goal := func() uint64 {
		for range 3 {
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	near := func(what string, got, want uint64) {
		t.Helper()
		if got < want-want/8 || got > want+want/8 {
			t.Errorf("%s: goal %d KiB, want about %d KiB", what, got>>10, want>>10)
		}
	}
	near("LeanGC", goal(), LeanGCFloor)
	undo12 := RaiseGCFloor(12 << 20)
	near("raised to 12 MiB", goal(), 12<<20)
	undo16 := RaiseGCFloor(16 << 20)
	near("raised to 16 MiB too", goal(), 16<<20)
	undo16()
	undo16()
	near("16 MiB undone", goal(), 12<<20)
	undo12()
	near("both undone", goal(), LeanGCFloor)
}

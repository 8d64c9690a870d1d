package schedule

import (
	"testing"
	"time"
)

func TestScheduleClockMapsBothWays(t *testing.T) {
	start := time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		clock Clock
	}{
		{"wall", Clock{}},
		{"rate 1", FastClock(start, 1)},
		{"rate 7", FastClock(start, 7)},
		{"rate 600", FastClock(start, 600)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range []time.Duration{0, 1, 599, time.Second + 3, time.Hour, 49*time.Hour + 7} {
				want := start.Add(d)
				w := tc.clock.toWall(want)
				got := tc.clock.fromWall(w)
				// toWall rounds up: the clock has reached the time when a
				// timer set for the wall instant fires, and not a wall
				// nanosecond later.
				rate := max(tc.clock.rate, 1)
				if got.Before(want) || !got.Before(want.Add(time.Duration(rate))) {
					t.Errorf("fromWall(toWall(%v)) = %v", want, got)
				}
			}
		})
	}
	c := FastClock(start, 60)
	if now := c.Now(); now.Before(start) || now.After(start.Add(time.Hour)) {
		t.Errorf("a clock started at %v reads %v", start, now)
	}
}

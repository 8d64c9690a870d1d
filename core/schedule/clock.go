package schedule

import "time"

// Clock is the time schedules are read in. The zero Clock is the wall clock.
// A fast clock runs a whole number of times faster than the wall clock, from
// a chosen start: tests use it to see a "* * * * *" schedule fire every
// second, or a 02:00 schedule fire now, through the real scheduler, the real
// timers and the pipeline's real schedule, without waiting for real minutes.
type Clock struct {
	wall0 time.Time // wall instant the clock started at
	at0   time.Time // clock reading at wall0
	rate  int64     // clock nanoseconds per wall nanosecond; 0 means the wall clock
}

// FastClock starts a clock reading start now and running rate times faster
// than the wall clock.
func FastClock(start time.Time, rate int) Clock {
	if rate < 1 {
		rate = 1
	}
	// Round(0) drops the monotonic reading: the clock is compared with
	// times robfig/cron makes, which have none.
	return Clock{wall0: time.Now().Round(0), at0: start.Round(0), rate: int64(rate)}
}

func (c Clock) real() bool { return c.rate == 0 }

// Now reads the clock.
func (c Clock) Now() time.Time {
	return c.fromWall(time.Now())
}

// fromWall is the clock reading at a wall instant.
func (c Clock) fromWall(w time.Time) time.Time {
	if c.real() {
		return w
	}
	return c.at0.Add(w.Round(0).Sub(c.wall0) * time.Duration(c.rate))
}

// toWall is the wall instant the clock reads t, rounded up so that the
// clock has reached t when a timer set for it fires (rounded down, the
// scheduler would wake a hair early and find the same time next again).
func (c Clock) toWall(t time.Time) time.Time {
	if c.real() {
		return t
	}
	d := t.Sub(c.at0)
	q := d / time.Duration(c.rate)
	if q*time.Duration(c.rate) < d {
		q++
	}
	return c.wall0.Add(q)
}

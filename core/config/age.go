package config

import (
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultMaxAge is the age limit of a pipeline with neither max_age nor a
// schedule: a nightly backup, with two hours to spare.
const DefaultMaxAge = 26 * time.Hour

// AgeLimit is how old the newest complete set of the pipeline may be before
// something is wrong: max_age when set; else twice the longest gap between
// two runs of its schedule (so one missed run is not yet an alarm, and a
// weekday schedule's weekend is no alarm); else DefaultMaxAge.
func (p *Pipeline) AgeLimit(now time.Time) time.Duration {
	switch {
	case p.MaxAge > 0:
		return p.MaxAge
	case p.Cron == nil:
		return DefaultMaxAge
	}
	if gap := LongestGap(p.Cron, p.Location, now); gap > 0 {
		return 2 * gap
	}
	return DefaultMaxAge
}

// LongestGap is the longest time between two consecutive runs of a
// schedule read in loc, from now over the coming fortnight (or over two
// gaps, for a schedule rarer than that); 0 for one that never fires again.
func LongestGap(s cron.Schedule, loc *time.Location, now time.Time) time.Duration {
	end := now.Add(15 * 24 * time.Hour)
	t := s.Next(now.In(loc))
	var longest time.Duration
	// The count bounds a schedule that fires every minute.
	for gaps := 0; gaps < 2000 && !t.IsZero(); gaps++ {
		n := s.Next(t)
		if n.IsZero() {
			break
		}
		longest = max(longest, n.Sub(t))
		t = n
		if t.After(end) && gaps >= 1 {
			break
		}
	}
	return longest
}

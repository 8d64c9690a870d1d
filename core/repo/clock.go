package repo

import (
	"fmt"
	"time"
)

// FutureSlack is how far ahead of the clock a set may be dated and still be
// taken at its date. A set is named by the clock of the run that made it;
// one dated further ahead was made while the clock was wrong (it jumped
// forward, or it jumped back since). Its date says nothing of how old it is.
const FutureSlack = time.Hour

// Future reports whether a set dated t lies more than FutureSlack ahead of
// now. Such a set is never the reference retention ages sets from, never
// deleted by retention for its date, and never the set a restore takes by
// default: otherwise one jump of the clock would make it "newest" for as
// long as the clock takes to catch up.
func Future(t, now time.Time) bool { return t.After(now.Add(FutureSlack)) }

// Future reports whether the set is dated more than FutureSlack ahead of now.
func (s Set) Future(now time.Time) bool { return Future(s.Time, now) }

// Latest returns the set a restore takes when none is named, from sets as
// List returns them (oldest first): the newest complete backup that is not
// dated in the future. A restore's safety copy is taken by name only. It is
// the one rule behind `mbk restore`, `mbk info`, `mbk verify` and the
// menu's default.
func Latest(sets []Set, now time.Time) (Set, bool) {
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if s.Complete && !s.PreRestore() && !s.Future(now) {
			return s, true
		}
	}
	return Set{}, false
}

// Ahead says how far ahead of now a future-dated set is, for messages:
// "3 days 2 h", "5 h".
func Ahead(t, now time.Time) string {
	d := t.Sub(now).Round(time.Hour)
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	switch {
	case days == 0:
		return fmt.Sprintf("%d h", hours)
	case hours == 0:
		return plural(days, "day")
	}
	return fmt.Sprintf("%s %d h", plural(days, "day"), hours)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

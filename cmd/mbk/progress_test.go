package main

import (
	"strings"
	"sync"
	"testing"
)

// TestBarProgressShared: streams that overlap share one bar, labelled with
// both, whose size is the sum; the bar ends when the last stream does, and
// a new stream afterwards starts a new bar.
func TestBarProgressShared(t *testing.T) {
	var out lockedBuilder
	p := &barProgress{out: &out}
	db := p.Start("dump moodle.sql.gz", 100<<20)
	files := p.Start("archive moodledata.tar.gz", 200<<20)
	if st := p.bar.State(); st.Description != "dump moodle.sql.gz + archive moodledata.tar.gz" || st.Max != 300<<20 {
		t.Errorf("shared bar: label %q, size %d; want both streams and %d", st.Description, st.Max, 300<<20)
	}
	var wg sync.WaitGroup
	for _, tr := range []interface{ Add(int64) }{db, files} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				tr.Add(1 << 20)
			}
		}()
	}
	wg.Wait()
	db.Done()
	if len(p.active) != 1 || p.bar == nil {
		t.Fatalf("after the first stream ended: %d active, bar %v", len(p.active), p.bar)
	}
	files.Add(100 << 20)
	if st := p.bar.State(); st.Description != "archive moodledata.tar.gz" || st.CurrentNum != 300<<20 || st.Max != 300<<20 {
		t.Errorf("after the dump ended: label %q, %d of %d", st.Description, st.CurrentNum, st.Max)
	}
	files.Done()
	if p.bar != nil || len(p.active) != 0 {
		t.Fatal("the bar outlived its streams")
	}
	files.Done() // twice is harmless
	if !strings.Contains(out.String(), "dump moodle.sql.gz") {
		t.Errorf("nothing drawn:\n%q", out.String())
	}
	next := p.Start("verify x", -1)
	if p.total != -1 || p.bar == nil {
		t.Errorf("a new stream after the end: total %d, bar %v", p.total, p.bar)
	}
	next.Done()
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

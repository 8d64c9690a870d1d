package main

import (
	"cmp"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/mbk-backup/mbk/core/engine"
)

// barProgress draws one progress bar on stderr for the streams under way:
// bytes, rate, and the time left when the sizes are known. The dump and the
// archive run side by side, and two bars would overwrite each other's line,
// so concurrent streams share one bar, labelled with both.
type barProgress struct {
	mu     sync.Mutex
	bar    *progressbar.ProgressBar
	active []*barTracker
	out    io.Writer // nil: stderr
	label  string    // the bar's label, once shared
	// total is the size of every stream the bar has counted, finished ones
	// included (their bytes stay in its count); -1 when one is unknown.
	total int64
}

func (p *barProgress) Start(label string, total int64) engine.Tracker {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &barTracker{p: p, label: label, total: total}
	p.active = append(p.active, t)
	if p.bar == nil {
		p.total = total
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(cmp.Or[io.Writer](p.out, os.Stderr)),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(total > 0),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
		return t
	}
	if total < 0 || p.total < 0 {
		p.total = -1
	} else {
		p.total += total
		p.bar.ChangeMax64(p.total)
	}
	p.relabel()
	return t
}

// relabel names every active stream.
func (p *barProgress) relabel() {
	labels := make([]string, len(p.active))
	for i, t := range p.active {
		labels[i] = t.label
	}
	p.bar.Describe(strings.Join(labels, " + "))
}

type barTracker struct {
	p     *barProgress
	label string
	total int64
}

func (b *barTracker) Add(n int64) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	if b.p.bar != nil {
		_ = b.p.bar.Add64(n)
	}
}

func (b *barTracker) Done() {
	p := b.p
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.active, b)
	if i < 0 {
		return
	}
	p.active = slices.Delete(p.active, i, i+1)
	if len(p.active) == 0 {
		_ = p.bar.Finish()
		p.bar = nil
		return
	}
	p.relabel()
}

// progress returns bars on a terminal with text logs, nothing elsewhere:
// no escape codes in cron mail, files or JSON logs.
func (a *app) progress() engine.Progress {
	if a.logFormat != "text" || !isatty.IsTerminal(os.Stderr.Fd()) {
		return nil
	}
	return &barProgress{}
}

// verifyProgress adapts bars to repo.Verify's callback (file, bytes read so
// far). The returned stop ends the last bar.
func (a *app) verifyProgress(dir string) (func(file string, done int64), func()) {
	p := a.progress()
	if p == nil {
		return nil, func() {}
	}
	var cur string
	var last int64
	var t engine.Tracker
	stop := func() {
		if t != nil {
			t.Done()
			t = nil
		}
	}
	return func(file string, done int64) {
		if file != cur {
			stop()
			cur, last = file, 0
			total := int64(-1)
			if st, err := os.Stat(filepath.Join(dir, file)); err == nil {
				total = st.Size()
			}
			t = p.Start("verify "+file, total)
		}
		t.Add(done - last)
		last = done
	}, stop
}

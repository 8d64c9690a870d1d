package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/mbk-backup/mbk/core/engine"
)

// barProgress draws a progress bar per stream on stderr: bytes, rate, and
// the time left when the size is known.
type barProgress struct{}

func (barProgress) Start(label string, total int64) engine.Tracker {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	return barTracker{bar}
}

type barTracker struct{ bar *progressbar.ProgressBar }

func (b barTracker) Add(n int64) { _ = b.bar.Add64(n) }
func (b barTracker) Done()       { _ = b.bar.Finish() }

// progress returns bars on a terminal with text logs, nothing elsewhere:
// no escape codes in cron mail, files or JSON logs.
func (a *app) progress() engine.Progress {
	if a.logFormat != "text" || !isatty.IsTerminal(os.Stderr.Fd()) {
		return nil
	}
	return barProgress{}
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

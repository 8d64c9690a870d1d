package engine

import "io"

// Progress shows how far a stream has got. The CLI draws bars on a
// terminal; elsewhere there is none and nothing is drawn.
type Progress interface {
	// Start begins a stream of total bytes (-1: unknown).
	Start(label string, total int64) Tracker
}

// Tracker follows one stream.
type Tracker interface {
	Add(n int64)
	Done()
}

type trackWriter struct {
	w io.Writer
	t Tracker
}

func (tw trackWriter) Write(p []byte) (int, error) {
	n, err := tw.w.Write(p)
	tw.t.Add(int64(n))
	return n, err
}

// ReadFrom passes the reading down (to a Sink that reads into its
// compressor's buffers), counting what goes by.
func (tw trackWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(tw.w, trackReader{r, tw.t})
}

type trackReader struct {
	r io.Reader
	t Tracker
}

func (tr trackReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	tr.t.Add(int64(n))
	return n, err
}

type noTracker struct{}

func (noTracker) Add(int64) {}
func (noTracker) Done()     {}

func (e *Engine) track(label string, total int64) Tracker {
	if e.Progress == nil {
		return noTracker{}
	}
	return e.Progress.Start(label, total)
}

package sdk

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mbk-backup/mbk/core/spec"
)

// Sandboxer is optional for a Source: it makes the throwaway targets that
// `mbk drill` restores a set into, so that a drill never touches the live
// site. A dump plugin makes a database server like the live one (same
// image, same settings that matter); an archive plugin makes a fresh volume.
type Sandboxer interface {
	// Sandbox makes a target nothing else uses and labels everything it
	// makes with req.Label, so that Teardown finds it even after mbk was
	// killed. It returns the restore options that point Restore and Check
	// at it.
	Sandbox(ctx context.Context, req SandboxRequest) (Sandbox, error)
	// Teardown removes everything Sandbox made under label. Finding
	// nothing is not an error: it is also how leftovers of a killed drill
	// are swept.
	Teardown(ctx context.Context, cfg Config, label string) (summary string, err error)
}

// DrillLabel is the label key (Docker's, or whatever the plugin's world
// labels with) that marks what a sandbox made, with SandboxRequest.Label as
// its value: every plugin uses the same, so an administrator finds a drill's
// leftovers with one filter (docker ps -a --filter label=mbk.drill).
const DrillLabel = "mbk.drill"

// SandboxRequest asks for a throwaway target for one artifact.
type SandboxRequest struct {
	Config   Config
	Artifact string
	// Label is unique to the drill ("mbk-drill-production-20261203-…"):
	// name and label what the sandbox makes after it.
	Label   string
	Details map[string]any // what the backup recorded
}

// Sandbox is a throwaway target.
type Sandbox struct {
	// Options are restore options in the form `--restore-opt` takes
	// (name to value), merged into the drill's restore request.
	Options map[string]string
	Summary string // one line: what was made
}

// Checker is optional for a Source: after a restore, it checks what was put
// back with the application's own invariants (every row, every routine, the
// application's version; every file the database references present and
// intact), and names what its artifact references in the others.
//
// The references are how the checks of two plugins meet without either (or
// the core) knowing the other: the database's Checker writes the content it
// references to RefsOut (for Moodle: each mdl_files content hash, labelled
// with its component, file area and name); the core hands those to the
// Checkers of the stages after it in RefsIn, and the archive's Checker
// reports the ones it cannot resolve.
type Checker interface {
	Check(ctx context.Context, req CheckRequest) (CheckResult, error)
}

// CheckRequest asks a Checker to check one restored artifact.
type CheckRequest struct {
	Config   Config
	Artifact string
	// Options are the restore options the artifact was restored with: they
	// say where it now is.
	Options Config
	Details map[string]any // what the backup recorded
	// RefsIn is a file of references (see ReadRefs) that artifacts of
	// earlier stages made, for this one to resolve; "" when there are none.
	RefsIn string
	// RefsOut is a file to write (see NewRefWriter) the references this
	// artifact makes; leave it alone when it makes none.
	RefsOut string
	Sample  Sample
}

// Sample says which part of its content a Checker re-reads in full (for
// instance, re-hashing content-addressed files). The content is split into Of
// groups by a stable key (the content's hash); a check reads group Part (1 to
// Of), and more groups after it until at least Min items were read, so that Of
// drills in turn read everything (restic's --read-data-subset n/t). Of 0
// reads nothing; Of 1 reads everything.
type Sample struct {
	Part, Of, Min int
}

// In reports whether the content with the given stable key (a hex hash) is in
// group Part of the sample; extra widens the selection by that many groups
// after Part (wrapping), for a sample that must reach Min.
func (s Sample) In(hexKey string, extra int) bool {
	if s.Of <= 0 {
		return false
	}
	if s.Of == 1 {
		return true
	}
	g := s.Group(hexKey)
	for i := 0; i <= extra && i < s.Of; i++ {
		if g == (s.Part-1+i)%s.Of {
			return true
		}
	}
	return false
}

// Group is the group (0 to Of-1) the content with this key falls in.
func (s Sample) Group(hexKey string) int {
	if s.Of <= 1 {
		return 0
	}
	return int(groupKey(hexKey) % uint64(s.Of))
}

// Extra is how many groups after Part a check must add to read at least Min
// items, given how many items each group holds (counts[g] for group g, as
// Group gives it): the fewest that reach Min, or all of them.
func (s Sample) Extra(counts []int) int {
	if s.Of <= 1 || s.Min <= 0 || len(counts) < s.Of {
		return 0
	}
	n := 0
	for i := 0; i < s.Of; i++ {
		n += counts[(s.Part-1+i)%s.Of]
		if n >= s.Min {
			return i
		}
	}
	return s.Of - 1
}

// groupKey is the number the first 8 hex digits of a key spell (hashes are
// uniform, so groups are even); non-hex characters count as 0.
func groupKey(hexKey string) uint64 {
	var v uint64
	for i := 0; i < len(hexKey) && i < 8; i++ {
		c := hexKey[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		}
		v = v<<4 | d
	}
	return v
}

// CheckResult is what a Checker found.
type CheckResult struct {
	Checks []Check
}

// Check is one named check's outcome.
type Check = spec.Check

// Ref is one piece of content an artifact references in another.
type Ref struct {
	// Hash names the content: "sha1:<40 hex digits>".
	Hash string
	// Label tells a person what it is: "mod_resource/content/Plan.pdf".
	Label string
}

// Algorithm and hex digits of the reference's hash ("sha1", "3f2a…").
func (r Ref) Split() (algorithm, hex string) {
	a, h, ok := strings.Cut(r.Hash, ":")
	if !ok {
		return "", r.Hash
	}
	return a, h
}

// RefWriter writes references to a file, one per line: the hash, a tab, the
// label (tabs and line breaks in it become spaces).
type RefWriter struct {
	f *os.File
	w *bufio.Writer
	n int64
}

// NewRefWriter creates (or truncates) the file at path.
func NewRefWriter(path string) (*RefWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &RefWriter{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

var labelClean = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

// Add writes one reference.
func (w *RefWriter) Add(r Ref) error {
	if r.Hash == "" || strings.ContainsAny(r.Hash, "\t\n\r") {
		return fmt.Errorf("bad reference hash %q", r.Hash)
	}
	w.n++
	_, err := fmt.Fprintf(w.w, "%s\t%s\n", r.Hash, labelClean.Replace(r.Label))
	return err
}

// Count is how many references were added.
func (w *RefWriter) Count() int64 { return w.n }

// Close flushes and closes the file.
func (w *RefWriter) Close() error {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadRefs calls fn for each reference in a file NewRefWriter wrote, in
// order, holding one line at a time; an error from fn stops it.
func ReadRefs(path string, fn func(Ref) error) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return ScanRefs(f, path, fn)
}

// ScanRefs is ReadRefs from a stream (name is for messages).
func ScanRefs(r io.Reader, name string, fn func(Ref) error) error {
	path := name
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		h, label, _ := strings.Cut(sc.Text(), "\t")
		if h == "" {
			return fmt.Errorf("%s:%d: empty reference", path, line)
		}
		if err := fn(Ref{Hash: h, Label: label}); err != nil {
			return err
		}
	}
	return sc.Err()
}

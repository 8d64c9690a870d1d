package main

import (
	"archive/tar"
	"fmt"
	"sort"
	"strings"

	"github.com/dustin/go-humanize"
)

const (
	largestKept  = 10
	excludedKept = 100 // listed one by one; the rest are summed
	warningsKept = 100
)

type sizedPath struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Entries int64  `json:"entries,omitempty"`
}

// stats is what an archive holds, for the manifest, the info file and a
// restore's summary.
type stats struct {
	files, dirs, symlinks, hardlinks, others int64
	bytes                                    int64
	largest                                  []sizedPath // biggest first
	excluded                                 map[string]*sizedPath
	excludedOrder                            []string
	warnings                                 []string
	moreWarnings                             int
	// A restore's entries left out (devices, FIFOs), regular files that lost
	// setuid/setgid bits and entries given the dataroot's owner instead of
	// root's: see policy.
	skipped, stripped, owners int64
}

func newStats() *stats { return &stats{excluded: map[string]*sizedPath{}} }

// statsWire is stats as a helper container sends them (helperwalk.go).
type statsWire struct {
	Files, Dirs, Symlinks, Hardlinks, Others, Bytes int64
	Largest                                         []sizedPath
	Excluded                                        []sizedPath // in the order met
	Warnings                                        []string
	MoreWarnings                                    int
}

func (s *stats) wire() statsWire {
	w := statsWire{Files: s.files, Dirs: s.dirs, Symlinks: s.symlinks, Hardlinks: s.hardlinks, Others: s.others,
		Bytes: s.bytes, Largest: s.largest, Warnings: s.warnings, MoreWarnings: s.moreWarnings}
	for _, root := range s.excludedOrder {
		w.Excluded = append(w.Excluded, *s.excluded[root])
	}
	return w
}

func (w statsWire) stats() *stats {
	s := newStats()
	s.files, s.dirs, s.symlinks, s.hardlinks, s.others, s.bytes = w.Files, w.Dirs, w.Symlinks, w.Hardlinks, w.Others, w.Bytes
	s.largest, s.warnings, s.moreWarnings = w.Largest, w.Warnings, w.MoreWarnings
	for _, x := range w.Excluded {
		s.excluded[x.Path] = &x
		s.excludedOrder = append(s.excludedOrder, x.Path)
	}
	return s
}

// add counts an entry written to (or restored from) the archive.
func (s *stats) add(name string, h *tar.Header) {
	switch h.Typeflag {
	case tar.TypeDir:
		s.dirs++
	case tar.TypeSymlink:
		s.symlinks++
	case tar.TypeLink:
		s.hardlinks++
	case tar.TypeReg:
		s.addFile(name, h.Size)
	default:
		s.others++
	}
}

// addFile counts a regular file of size bytes.
func (s *stats) addFile(name string, size int64) {
	s.files++
	s.bytes += size
	s.keepLargest(name, size)
}

func (s *stats) keepLargest(name string, size int64) {
	if len(s.largest) == largestKept && size <= s.largest[largestKept-1].Size {
		return
	}
	i := sort.Search(len(s.largest), func(i int) bool { return s.largest[i].Size < size })
	s.largest = append(s.largest, sizedPath{})
	copy(s.largest[i+1:], s.largest[i:])
	s.largest[i] = sizedPath{Path: name, Size: size}
	if len(s.largest) > largestKept {
		s.largest = s.largest[:largestKept]
	}
}

// exclude counts an entry left out because it is, or lies below, root.
func (s *stats) exclude(root string, size int64) {
	x, ok := s.excluded[root]
	if !ok {
		x = &sizedPath{Path: root}
		s.excluded[root] = x
		s.excludedOrder = append(s.excludedOrder, root)
	}
	x.Size += size
	x.Entries++
}

func (s *stats) warn(msg string) {
	if len(s.warnings) < warningsKept {
		s.warnings = append(s.warnings, msg)
	} else {
		s.moreWarnings++
	}
}

func (s *stats) excludedList() (list []sizedPath, restPaths, restSize int64) {
	for i, root := range s.excludedOrder {
		x := s.excluded[root]
		if i < excludedKept {
			list = append(list, *x)
			continue
		}
		restPaths++
		restSize += x.Size
	}
	return list, restPaths, restSize
}

func (s *stats) details(source string, patterns []string) map[string]any {
	excl, restPaths, restSize := s.excludedList()
	d := map[string]any{
		"source":           source,
		"files":            s.files,
		"directories":      s.dirs,
		"symlinks":         s.symlinks,
		"hard_links":       s.hardlinks,
		"other":            s.others,
		"bytes":            s.bytes,
		"largest_files":    s.largest,
		"exclude_patterns": patterns,
		"excluded":         excl,
		"warnings":         len(s.warnings) + s.moreWarnings,
	}
	if restPaths > 0 {
		d["excluded_more"] = map[string]int64{"paths": restPaths, "bytes": restSize}
	}
	return d
}

func (s *stats) infoText(source string, patterns []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Moodle data archive (plugin volume %s)\n", version)
	fmt.Fprintf(&b, "Source:       %s\n", source)
	fmt.Fprintf(&b, "Files:        %d\n", s.files)
	fmt.Fprintf(&b, "Directories:  %d\n", s.dirs)
	fmt.Fprintf(&b, "Symlinks:     %d\n", s.symlinks)
	fmt.Fprintf(&b, "Hard links:   %d\n", s.hardlinks)
	if s.others > 0 {
		fmt.Fprintf(&b, "Other:        %d (FIFOs)\n", s.others)
	}
	fmt.Fprintf(&b, "Total size:   %s (%d bytes)\n", humanize.IBytes(uint64(s.bytes)), s.bytes)
	fmt.Fprintf(&b, "Exclude:      %s\n", strings.Join(quoteAll(patterns), ", "))
	if len(s.largest) > 0 {
		b.WriteString("\nLargest files:\n")
		for _, f := range s.largest {
			fmt.Fprintf(&b, "  %12s  %s\n", humanize.IBytes(uint64(f.Size)), f.Path)
		}
	}
	excl, restPaths, restSize := s.excludedList()
	if len(excl) > 0 {
		b.WriteString("\nExcluded paths:\n")
		for _, x := range excl {
			fmt.Fprintf(&b, "  %12s  %s (%d entries)\n", humanize.IBytes(uint64(x.Size)), x.Path, x.Entries)
		}
		if restPaths > 0 {
			fmt.Fprintf(&b, "  %12s  ... and %d more paths\n", humanize.IBytes(uint64(restSize)), restPaths)
		}
	}
	if len(s.warnings) > 0 {
		b.WriteString("\nWarnings:\n")
		for _, w := range s.warnings {
			fmt.Fprintf(&b, "  %s\n", w)
		}
		if s.moreWarnings > 0 {
			fmt.Fprintf(&b, "  ... and %d more\n", s.moreWarnings)
		}
	}
	return b.String()
}

// summary is a one-line account of a restore.
func (s *stats) summary() string {
	out := fmt.Sprintf("%d files, %d directories, %d symlinks, %d hard links (%s)",
		s.files, s.dirs, s.symlinks, s.hardlinks, humanize.IBytes(uint64(s.bytes)))
	if s.others > 0 {
		out += fmt.Sprintf(", %d special files", s.others)
	}
	if s.skipped > 0 {
		out += fmt.Sprintf("; %d special files (devices, FIFOs) not restored", s.skipped)
	}
	if s.stripped > 0 {
		out += fmt.Sprintf("; %d files restored without setuid/setgid bits", s.stripped)
	}
	if s.owners > 0 {
		out += fmt.Sprintf("; %d root-owned entries given the dataroot's owner", s.owners)
	}
	return out
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	if len(out) == 0 {
		return []string{"(nothing)"}
	}
	return out
}

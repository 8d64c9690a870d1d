package stream

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Codec is a compressor a dump or archive stage can name in `compression`.
// This package's table of them is the only one: the config's checks of
// `compression` and `compression_level`, the writers and readers, and the
// messages and docs that name levels all come from it.
type Codec struct {
	Name string // as a stage's `compression` and the manifest spell it
	Ext  string // what it adds to an artifact's file name: ".gz", ".zst", ""

	// MinLevel to MaxLevel is what `compression_level` may be, DefaultLevel
	// what is used when it is left out. All three are 0 for a codec that
	// takes no level ("none").
	MinLevel, MaxLevel, DefaultLevel int

	newWriter func(w io.Writer, level int) (io.WriteCloser, error) // nil: stored as is
	newReader func(r io.Reader) (io.ReadCloser, error)
}

// DefaultCompression is the codec of a stage that names none.
const DefaultCompression = "gzip"

// The defaults are each compressor's fastest level. Measured on a 200 MB
// Moodle dump on a 2-core machine: gzip level 1 took 0.55 s for a ratio of
// 0.18, level 6 1.04 s for 0.17; zstd's fastest 0.61 s for 0.16. Half the time
// for 5% more bytes is the right trade for a nightly window;
// compression_level raises it.
var codecs = []Codec{
	{Name: "gzip", Ext: ".gz",
		MinLevel: pgzip.BestSpeed, MaxLevel: pgzip.BestCompression, DefaultLevel: pgzip.BestSpeed,
		newWriter: newGzipWriter,
		newReader: func(r io.Reader) (io.ReadCloser, error) {
			// Read ahead 4 blocks of 256 KiB rather than pgzip's default 8 of
			// 1 MiB: the database and the files are restored side by side,
			// and decompression runs ahead of the loading anyway.
			return pgzip.NewReaderN(r, 256<<10, 4)
		}},
	// klauspost's four encoder levels, not the zstd tool's 1 to 19: 1
	// fastest, 2 default, 3 better, 4 best. Anything above 4 is refused by
	// the encoder ("unknown encoder level").
	{Name: "zstd", Ext: ".zst",
		MinLevel: int(zstd.SpeedFastest), MaxLevel: int(zstd.SpeedBestCompression), DefaultLevel: int(zstd.SpeedFastest),
		newWriter: func(w io.Writer, level int) (io.WriteCloser, error) {
			// Independent frames compressed in parallel: zstd's own
			// stream encoder keeps only about one core busy.
			return newZstdParWriter(w, level, zstdChunkSize)
		},
		newReader: func(r io.Reader) (io.ReadCloser, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}},
	{Name: "none",
		newReader: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil }},
}

func newGzipWriter(w io.Writer, level int) (io.WriteCloser, error) {
	zw, err := pgzip.NewWriterLevel(w, level)
	if err != nil {
		return nil, err
	}
	// 512 KiB blocks, two per core in flight: all cores busy, and memory
	// bounded for two streams side by side. BenchmarkSink ran as fast as
	// with 1 MiB blocks; a whole run took 8 MiB less.
	if err := zw.SetConcurrency(512<<10, 2*runtime.GOMAXPROCS(0)); err != nil {
		return nil, err
	}
	return zw, nil
}

// Codecs lists every codec, the default first.
func Codecs() []Codec { return slices.Clone(codecs) }

// Names lists the codecs' names, the default first: "gzip", "zstd", "none".
func Names() []string {
	names := make([]string, len(codecs))
	for i, c := range codecs {
		names[i] = c.Name
	}
	return names
}

// Lookup finds a codec by the name a stage gives it.
func Lookup(name string) (Codec, bool) {
	i := slices.IndexFunc(codecs, func(c Codec) bool { return c.Name == name })
	if i < 0 {
		return Codec{}, false
	}
	return codecs[i], true
}

// lookup is Lookup for the core's own callers: "" is an artifact stored as
// is (as in manifests that never named a compression).
func lookup(name string) (Codec, error) {
	if name == "" {
		name = "none"
	}
	c, ok := Lookup(name)
	if !ok {
		return Codec{}, fmt.Errorf("unknown compression %q", name)
	}
	return c, nil
}

// TakesLevel says whether compression_level means anything to c.
func (c Codec) TakesLevel() bool { return c.MaxLevel > 0 }

// Levels tells c's valid compression_level range in words, for messages and
// docs: "1 (fastest) to 9 (smallest)", or "none" for a codec without levels.
func (c Codec) Levels() string {
	if !c.TakesLevel() {
		return "none"
	}
	return fmt.Sprintf("%d (fastest) to %d (smallest)", c.MinLevel, c.MaxLevel)
}

// levelNames lists the codecs that take a level, for messages: "gzip or zstd".
func levelNames() string {
	var names []string
	for _, c := range codecs {
		if c.TakesLevel() {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, " or ")
}

// CheckLevel says whether level is a valid compression_level for the named
// codec; the error names the valid range. A codec without levels ("none")
// takes none: a level there is a mistake (a leftover, or a misunderstanding
// of "none") that would otherwise be silently ignored.
func CheckLevel(name string, level int) error {
	c, ok := Lookup(name)
	switch {
	case !ok:
		return fmt.Errorf("unknown compression %q: one of %s", name, strings.Join(Names(), ", "))
	case !c.TakesLevel():
		return fmt.Errorf("compression %q takes no compression_level: remove it, or compress with %s", name, levelNames())
	case level < c.MinLevel || level > c.MaxLevel:
		return fmt.Errorf("%s takes compression_level %s, not %d", name, c.Levels(), level)
	}
	return nil
}

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
	// what is used when it is left out, DumpLevel the same for a database
	// dump (an artifact of format "sql"). All are 0 for a codec that takes
	// no level ("none").
	MinLevel, MaxLevel, DefaultLevel, DumpLevel int

	newWriter func(w io.Writer, level int) (io.WriteCloser, error) // nil: stored as is
	newReader func(r io.Reader) (io.ReadCloser, error)
}

// DefaultCompression is the codec of a stage that names none.
const DefaultCompression = "gzip"

// The defaults were chosen from `benchtool levels` (make bench; #21) on the
// small bench site's raw dump (100 MiB of SQL) and tar (206 MiB, half of it
// random bytes standing for JPEG, PDF, zip), 2 cores, MiB out and CPU
// seconds, against the shell way's gzip -6 (15.7 MiB, 128.8 MiB):
//
//	          dump            tar
//	gzip 1    18.4  0.38      134.2  0.67   <- gzip's default, dump and tar
//	gzip 6    16.6  0.72      130.5  1.18
//	gzip 7    15.8  1.19      129.3  3.82
//	gzip 8    15.1  1.97      128.8  6.20
//	zstd 1    16.3  0.36      131.4  0.62   <- zstd's default for dumps
//	zstd 2    16.6  0.50      129.5  0.80   <- zstd's default for archives
//	zstd 3    15.3  0.72      128.6  1.86
//	zstd 4    14.5  3.88      126.9  5.76
//
// The whole backup keeps both cores busy (dump and archive side by side,
// the database server with them), so every CPU second counts in its wall
// time; the defaults are what takes most bytes off per CPU second. zstd 2
// takes 1.9 MiB off the archive for 0.2-0.45 CPU-s; on the dump it is
// larger than zstd 1 (klauspost's "default" encoder), and zstd 3 takes
// 1 MiB off it for 0.4-1.0 CPU-s (whole runs alternated with the old
// defaults: +1.0 CPU-s against +0.45 for zstd 1/2). klauspost's deflate
// needs level 8 to match gzip -6 in size, at 5-9× the CPU of level 1.
// Level 6 takes 5.6 MiB off for about 1 CPU-s here, but on the medium site
// (make bench SCALE=medium, 2026-12-03 11:35) it made the whole gzip backup
// 1.34× slower (7.75 s against 5.78 s, +2.6 CPU-s), below #7's 5× the
// shell way, and its peak memory 100 MiB, for a set 4% smaller (352.7 MiB
// against 366.9): gzip, the default codec, stays at level 1, and a site that
// wants small sets names zstd (348.8 MiB there, as fast as before) or sets
// compression_level. Already-compressed content
// costs little at any level and still shrinks: a 148 MiB tar of real .gz,
// PNG, zip and jar files went through zstd 2 at 0.28 CPU-s per 100 MiB,
// 4.6% smaller; random bytes cost zstd 2 0.09 and are stored as is. So no
// per-file "store, don't compress" is worth having. compression_level
// overrides all of these.
var codecs = []Codec{
	{Name: "gzip", Ext: ".gz",
		MinLevel: pgzip.BestSpeed, MaxLevel: pgzip.BestCompression, DefaultLevel: pgzip.BestSpeed, DumpLevel: pgzip.BestSpeed,
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
		MinLevel: int(zstd.SpeedFastest), MaxLevel: int(zstd.SpeedBestCompression),
		DefaultLevel: int(zstd.SpeedDefault), DumpLevel: int(zstd.SpeedFastest),
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

// DumpFormat is the artifact format that gets a codec's DumpLevel.
const DumpFormat = "sql"

// DefaultLevel is the level an artifact of the given format is written at
// when its stage sets no compression_level: the codec's DumpLevel for a
// dump, its DefaultLevel otherwise; 0 for an unknown codec or one without
// levels.
func DefaultLevel(compression, format string) int {
	c, ok := Lookup(compression)
	if !ok {
		return 0
	}
	if format == DumpFormat {
		return c.DumpLevel
	}
	return c.DefaultLevel
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

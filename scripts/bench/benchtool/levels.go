package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mbk-backup/mbk/core/stream"
)

// levelsCmd is the size/speed table of #21: it compresses the bench's raw
// dump and raw tar (files already written, read into memory first so the
// disk is out of the timing) with every codec and level mbk offers, on the
// very writers a Sink runs (stream.NewWriter), plus the alternatives the
// defaults were chosen against and the shell way's `gzip -6` for reference.
// Each row: input, variant, MiB out, ratio, wall seconds, CPU seconds, MB/s
// of raw input. Results go to a JSON file the report turns into a table.
func levelsCmd(args []string) error {
	fl := flag.NewFlagSet("levels", flag.ExitOnError)
	out := fl.String("o", "", "results file (JSON) to write")
	only := fl.String("only", "", "comma-separated variant names to run (default: all)")
	fl.Parse(args)
	if *out == "" || fl.NArg() == 0 {
		return errors.New("usage: levels -o RESULT.json [-only V1,V2] NAME=FILE...")
	}
	want := map[string]bool{}
	for _, v := range strings.Split(*only, ",") {
		if v != "" {
			want[v] = true
		}
	}
	var rows []levelRow
	for _, arg := range fl.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q: NAME=FILE", arg)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range levelVariants() {
			if len(want) > 0 && !want[v.name] {
				continue
			}
			r, err := v.run(data)
			if err != nil {
				return fmt.Errorf("%s on %s: %w", v.name, name, err)
			}
			r.Input, r.Variant, r.Note, r.In = name, v.name, v.note, int64(len(data))
			fmt.Fprintf(os.Stderr, "%-6s %-22s %8.1f MiB  %.3f  %6.2f s  %6.2f cpu-s  %6.0f MB/s\n",
				r.Input, r.Variant, float64(r.Out)/(1<<20), float64(r.Out)/float64(r.In), r.Wall, r.CPU, float64(r.In)/1e6/r.Wall)
			rows = append(rows, r)
		}
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// levelRow is one input compressed one way.
type levelRow struct {
	Input   string  `json:"input"` // dump | tar
	Variant string  `json:"variant"`
	Note    string  `json:"note,omitempty"`
	In      int64   `json:"bytes_in"`
	Out     int64   `json:"bytes_out"`
	Wall    float64 `json:"wall_s"`
	CPU     float64 `json:"cpu_s"`
}

type levelVariant struct {
	name, note string
	run        func([]byte) (levelRow, error)
}

func levelVariants() []levelVariant {
	var vs []levelVariant
	mbk := func(codec string, level int, note string) {
		vs = append(vs, levelVariant{fmt.Sprintf("mbk %s %d", codec, level), note, func(b []byte) (levelRow, error) {
			return timeWriter(b, func(w io.Writer) (io.WriteCloser, error) { return stream.NewWriter(w, codec, level) })
		}})
	}
	for _, l := range []int{1, 6, 7, 8, 9} {
		mbk("gzip", l, "pgzip, 512 KiB blocks, as mbk runs it")
	}
	for l := 1; l <= 4; l++ {
		mbk("zstd", l, "mbk's parallel frames")
	}
	// klauspost's stream encoder, one frame, blocks in parallel with an
	// overlap (WithConcurrentBlocks): the window reaches past a chunk.
	for _, l := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		for _, win := range []int{0, 8 << 20} {
			opts := []zstd.EOption{zstd.WithEncoderLevel(l), zstd.WithConcurrentBlocks(true)}
			name := fmt.Sprintf("zstd-blocks %d", l)
			if win > 0 {
				opts = append(opts, zstd.WithWindowSize(win))
				name += fmt.Sprintf(" w%dM", win>>20)
			}
			vs = append(vs, levelVariant{name, "klauspost stream encoder, concurrent blocks", func(b []byte) (levelRow, error) {
				return timeWriter(b, func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, opts...) })
			}})
		}
	}
	ext := func(name, note string, argv ...string) {
		vs = append(vs, levelVariant{name, note, func(b []byte) (levelRow, error) { return timeCommand(b, argv) }})
	}
	ext("gzip -6", "the shell way's compressor", "gzip", "-6")
	if _, err := exec.LookPath("zstd"); err == nil {
		ext("zstd -3 -T0", "the zstd tool at its default level, for reference", "zstd", "-3", "-T0", "-q", "-c")
		ext("zstd -9 --long -T0", "the zstd tool far past any default, with long-distance matching: near the smallest a fast codec makes",
			"zstd", "-9", "--long=27", "-T0", "-q", "-c")
	}
	return vs
}

// timeWriter compresses b through a fresh writer into a byte counter.
func timeWriter(b []byte, mk func(io.Writer) (io.WriteCloser, error)) (levelRow, error) {
	var c counter
	cpu0 := selfCPU()
	t0 := time.Now()
	w, err := mk(&c)
	if err != nil {
		return levelRow{}, err
	}
	for p := b; len(p) > 0; {
		k := min(len(p), 256<<10) // a Sink's buffer size
		if _, err := w.Write(p[:k]); err != nil {
			return levelRow{}, err
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		return levelRow{}, err
	}
	return levelRow{Out: c.n, Wall: time.Since(t0).Seconds(), CPU: selfCPU() - cpu0}, nil
}

// timeCommand pipes b through a command and counts what it writes.
func timeCommand(b []byte, argv []string) (levelRow, error) {
	var c counter
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(string(b))
	cmd.Stdout = &c
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return levelRow{}, err
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return levelRow{Out: c.n, Wall: time.Since(t0).Seconds(), CPU: cpu.Seconds()}, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

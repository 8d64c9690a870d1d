package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// annotateCmd adds what is known only after a run: byte counts, and the
// phases mbk itself recorded (per-artifact durations in the manifest, per-step
// durations in the restore log).
func annotateCmd(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: annotate RESULT.json [-in N] [-out N] [-ref N] [-dirbytes N] [-manifest FILE [-restore]] [-mbklog FILE] [-drill FILE]")
	}
	path := args[0]
	fs := flag.NewFlagSet("annotate", flag.ExitOnError)
	in := fs.Int64("in", -1, "bytes read")
	out := fs.Int64("out", -1, "bytes written")
	ref := fs.Int64("ref", -1, "bytes the reference way writes for the same new data (see Result.RefBytes)")
	dirBytes := fs.Int64("dirbytes", -1, "what new directories added to the disk usage beyond -out (see Result.DirBytes)")
	manifest := fs.String("manifest", "", "an mbk set's manifest.json: bytes and per-artifact phases")
	restore := fs.Bool("restore", false, "with -manifest: the run read the set (bytes in = stored, out = raw)")
	mbklog := fs.String("mbklog", "", "mbk's JSON log: per-step restore durations")
	drill := fs.String("drill", "", "`mbk drill --json` output: the drill's restore time and its checks, as phases")
	fs.Parse(args[1:])

	r, err := readResult(path)
	if err != nil {
		return err
	}
	if *manifest != "" {
		raw, stored, phases, err := readManifest(*manifest)
		if err != nil {
			return err
		}
		r.BytesIn, r.BytesOut = raw, stored
		if *restore {
			r.BytesIn, r.BytesOut = stored, raw
		} else {
			r.Phases = append(r.Phases, phases...)
		}
	}
	if *mbklog != "" {
		phases, err := restorePhases(*mbklog)
		if err != nil {
			return err
		}
		r.Phases = append(r.Phases, phases...)
	}
	if *drill != "" {
		phases, err := drillPhases(*drill)
		if err != nil {
			return err
		}
		r.Phases = append(r.Phases, phases...)
	}
	if *in >= 0 {
		r.BytesIn = *in
	}
	if *out >= 0 {
		r.BytesOut = *out
	}
	if *ref >= 0 {
		r.RefBytes = *ref
	}
	if *dirBytes >= 0 {
		r.DirBytes = *dirBytes
	}
	return writeJSON(path, r)
}

type manifest struct {
	Artifacts []struct {
		Stage      string `json:"stage"`
		File       string `json:"file"`
		Size       int64  `json:"size"`
		RawSize    int64  `json:"raw_size"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"artifacts"`
	Stages []struct {
		Kind       string `json:"kind"`
		Plugin     string `json:"plugin"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"stages"`
}

func readManifest(path string) (raw, stored int64, phases []Phase, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, 0, nil, err
	}
	for _, a := range m.Artifacts {
		raw += a.RawSize
		stored += a.Size
		phases = append(phases, Phase{Name: a.File, Kind: a.Stage, Seconds: float64(a.DurationMS) / 1000, Raw: a.RawSize, Stored: a.Size})
	}
	for _, s := range m.Stages {
		if s.Kind == "checksum" {
			phases = append(phases, Phase{Name: s.Plugin, Kind: s.Kind, Seconds: float64(s.DurationMS) / 1000})
		}
	}
	return raw, stored, phases, nil
}

// restorePhases reads the "restore finished" lines of `mbk --log-format json`.
func restorePhases(path string) ([]Phase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Phase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) != nil || l["@message"] != "restore finished" {
			continue
		}
		file, _ := l["file"].(string)
		p := Phase{Name: file, Kind: kindOfFile(file)}
		switch d := l["duration"].(type) {
		case float64: // time.Duration marshals as nanoseconds
			p.Seconds = d / 1e9
		case string:
			if v, err := time.ParseDuration(d); err == nil {
				p.Seconds = v.Seconds()
			}
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

func kindOfFile(name string) string {
	switch {
	case strings.Contains(name, ".sql"):
		return "dump"
	case strings.Contains(name, ".tar"):
		return "archive"
	}
	return ""
}

// drillPhases reads `mbk drill --json`: the restore (kind "drill-restore")
// and what the drill spent outside it (sandboxes, checks, teardown: kind
// "drill-rest"). A drill that did not pass is an error: its time would
// measure something else.
func drillPhases(path string) ([]Phase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d struct {
		OK       bool          `json:"ok"`
		Restore  time.Duration `json:"restore_ns"`
		Duration time.Duration `json:"duration_ns"`
		Error    string        `json:"error"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !d.OK {
		return nil, fmt.Errorf("%s: the drill did not pass: %s", path, d.Error)
	}
	return []Phase{
		{Name: "restore", Kind: "drill-restore", Seconds: d.Restore.Seconds()},
		{Name: "sandboxes, checks, teardown", Kind: "drill-rest", Seconds: (d.Duration - d.Restore).Seconds()},
	}, nil
}

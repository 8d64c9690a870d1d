// Command mbk-plugin-faulty is a test plugin that misbehaves on request, to
// prove that mbk fails a stage cleanly, names the plugin and never hangs.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

type faulty struct {
	log  hclog.Logger
	name string
}

type settings struct {
	Mode    string  `cty:"mode"`
	Size    int64   `cty:"size"`
	Seconds float64 `cty:"seconds"`
	Gate    string  `cty:"gate"`
	PIDFile string  `cty:"pidfile"`
	Format  string  `cty:"format"`
	Text    bool    `cty:"text"`
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "mode", Type: sdk.String, Required: true, Description: "ok, crash, hang, hang-child, error, slow"},
	{Name: "size", Type: sdk.Int, Default: cty.NumberIntVal(1 << 20)},
	{Name: "seconds", Type: sdk.Int, Default: cty.NumberIntVal(0), Description: "slow: spread the bytes over this many seconds"},
	{Name: "gate", Type: sdk.String, Default: cty.StringVal(""), Description: "slow: after half the bytes, wait until this file exists"},
	{Name: "pidfile", Type: sdk.String, Default: cty.StringVal(""), Description: "hang-child: write the child's PID here"},
	{Name: "text", Type: sdk.Bool, Default: cty.False, Description: "write words in a seeded random order (which each compression level packs differently) instead of a repeating pattern"},
	{Name: "format", Type: sdk.String, Default: cty.StringVal("bin"), Description: "the artifact's format (\"sql\" is a dump to the core)"},
}}

// retainSchema: the faulty retention policy, a liar the engine must not obey.
var retainSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "mode", Type: sdk.String, Required: true, Description: "delete-all: a verdict deleting every set; delete-all-but-newest: every set but the newest complete one, incomplete ones too"},
}}

func (f *faulty) Describe() sdk.Info {
	return sdk.Info{Name: f.name, Version: "0.0.1", Kinds: []string{sdk.KindDump, sdk.KindRetain}}
}

func (f *faulty) Schema(kind string) (sdk.Schema, error) {
	if kind == sdk.KindRetain {
		return retainSchema, nil
	}
	return schema, nil
}

// Decide returns the verdict its mode asks for, whatever the sets are: the
// engine has to check it before deleting anything.
func (f *faulty) Decide(_ context.Context, cfg sdk.Config, in sdk.RetainInput) ([]sdk.Decision, error) {
	var s struct {
		Mode string `cty:"mode"`
	}
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	newest := -1
	for i, set := range in.Sets {
		if set.Complete && (newest < 0 || set.Time.After(in.Sets[newest].Time)) {
			newest = i
		}
	}
	var out []sdk.Decision
	for i, set := range in.Sets {
		keep := s.Mode == "delete-all-but-newest" && i == newest
		out = append(out, sdk.Decision{Set: set.Name, Keep: keep, Reasons: []string{"faulty " + s.Mode}})
	}
	return out, nil
}

func (f *faulty) Plan(_ context.Context, cfg sdk.Config) ([]sdk.Artifact, error) {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	return []sdk.Artifact{{ID: "0", Name: "faulty", Format: s.Format}}, nil
}

func (f *faulty) Backup(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
	var s settings
	if err := req.Config.Decode(&s); err != nil {
		return sdk.BackupResult{}, err
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	words := []string{"curso ", "matemáticas ", "álgebra ", "foro ", "tarea ", "nota ", "alumno ", "profesor ", "entrega ", "examen\n"}
	seed := uint64(21)
	text := func() {
		buf = buf[:0]
		for len(buf) < 64<<10-16 {
			seed = seed*6364136223846793005 + 1442695040888963407
			buf = append(buf, words[seed>>33%uint64(len(words))]...)
		}
	}
	if s.Text {
		text()
	}
	write := func(n int64) error {
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			n -= k
			if s.Text {
				text()
			}
		}
		return nil
	}
	switch s.Mode {
	case "crash":
		_ = write(s.Size / 2)
		f.log.Error("crashing on purpose")
		os.Exit(7)
	case "hang":
		_ = write(s.Size / 2)
		f.log.Info("hanging on purpose, ignoring cancellation")
		time.Sleep(time.Hour)
	case "hang-child":
		// A plugin that started a process of its own and then hangs: when
		// mbk gives up on it, the child must not be left running.
		_ = write(s.Size / 2)
		child := exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			return sdk.BackupResult{}, err
		}
		if s.PIDFile != "" {
			_ = os.WriteFile(s.PIDFile, []byte(strconv.Itoa(child.Process.Pid)), 0o600)
		}
		f.log.Info("hanging on purpose with a child, ignoring cancellation", "child", child.Process.Pid)
		time.Sleep(time.Hour)
	case "error":
		_ = write(s.Size / 2)
		return sdk.BackupResult{}, errors.New("disk on fire")
	case "slow":
		if err := f.slow(ctx, s, write); err != nil {
			return sdk.BackupResult{}, err
		}
		return sdk.BackupResult{Details: map[string]any{"mode": s.Mode}, InfoFile: "FAULTY_INFO.txt", InfoText: "slow but good\n"}, nil
	}
	if err := write(s.Size); err != nil {
		return sdk.BackupResult{}, err
	}
	return sdk.BackupResult{Details: map[string]any{"mode": s.Mode}, InfoFile: "FAULTY_INFO.txt", InfoText: "all good\n"}, nil
}

// slow writes the bytes in ten pieces spread over the given seconds and,
// with a gate, stops halfway until the gate file exists, so a test decides
// when the run ends. It stops when ctx ends, as a well-behaved plugin must.
func (f *faulty) slow(ctx context.Context, s settings, write func(int64) error) error {
	const pieces = 10
	pause := time.Duration(s.Seconds * float64(time.Second) / pieces)
	for i := int64(0); i < pieces; i++ {
		if i == pieces/2 && s.Gate != "" {
			f.log.Info("waiting at the gate", "gate", s.Gate)
			for {
				if _, err := os.Stat(s.Gate); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		n := s.Size / pieces
		if i == pieces-1 {
			n = s.Size - n*(pieces-1)
		}
		if err := write(n); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return nil
}

func (f *faulty) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	return sdk.RestoreResult{Summary: "discarded " + strconv.FormatInt(n, 10) + " bytes"}, nil
}

// main serves the plugin as "faulty", or under the name mbk started it as
// (MBK_PLUGIN_NAME): a copy named mbk-plugin-policy stands in for the
// built-in policy in the tests of pinned binaries.
func main() {
	name := os.Getenv("MBK_PLUGIN_NAME")
	if name == "" {
		name = "faulty"
	}
	sdk.Main(name, func(log hclog.Logger) sdk.Plugin { return &faulty{log: log, name: name} })
}

// Command mbk-plugin-notes is a third-party dump plugin, written the way
// someone outside this repository would write one: it imports only the
// public core/sdk. It backs up one host file (the site's notes) and puts it
// back on restore.
//
// Its restore options are its own: target_path answers `mbk restore
// --target-path`, and max_bytes, which no common flag answers, is set with
// `--restore-opt notes.max_bytes=N`.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

type notes struct{ log hclog.Logger }

var schema = sdk.Schema{
	Attributes: []sdk.Attribute{
		{Name: "path", Type: sdk.String, Required: true, Description: "The host file to back up."},
	},
	RestoreOptions: []sdk.Attribute{
		{Name: "target_path", Type: sdk.String, Flag: "target-path",
			Description: "Write the notes to this file; default: the file they were backed up from."},
		{Name: "max_bytes", Type: sdk.Int, Default: cty.NumberIntVal(0),
			Description: "Refuse to restore notes longer than this (0: no limit)."},
	},
}

type settings struct {
	Path string `cty:"path"`
}

type restoreOpts struct {
	TargetPath string `cty:"target_path"`
	MaxBytes   int64  `cty:"max_bytes"`
}

var (
	_ sdk.Source    = (*notes)(nil)
	_ sdk.Validator = (*notes)(nil)
)

func (n *notes) Describe() sdk.Info {
	return sdk.Info{Name: "notes", Version: "0.1.0", Kinds: []string{sdk.KindDump},
		Description: "Backs up one host file of notes (a third-party example)."}
}

func (n *notes) Schema(string) (sdk.Schema, error) { return schema, nil }

func (n *notes) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	if !filepath.IsAbs(s.Path) {
		return sdk.Diagnostics{sdk.Errorf("path", "must be an absolute path, not %q", s.Path)}
	}
	return nil
}

func (n *notes) Plan(context.Context, sdk.Config) ([]sdk.Artifact, error) {
	return []sdk.Artifact{{ID: "notes", Name: "notes", Format: "txt"}}, nil
}

func (n *notes) Backup(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
	var s settings
	if err := req.Config.Decode(&s); err != nil {
		return sdk.BackupResult{}, err
	}
	f, err := os.Open(s.Path)
	if err != nil {
		return sdk.BackupResult{}, err
	}
	defer f.Close()
	size, err := io.Copy(w, f)
	if err != nil {
		return sdk.BackupResult{}, err
	}
	return sdk.BackupResult{
		Details:  map[string]any{"path": s.Path, "size": size},
		InfoFile: "NOTES_INFO.txt",
		InfoText: fmt.Sprintf("notes: %s, %d bytes\n", s.Path, size),
	}, nil
}

// Restore writes the notes to the target path (by default where they came
// from) through a temporary file, so a refused or broken restore leaves
// the target as it was.
func (n *notes) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	var o restoreOpts
	if err := req.Options.Decode(&o); err != nil {
		return sdk.RestoreResult{}, err
	}
	target := o.TargetPath
	if target == "" {
		p, _ := req.Details["path"].(string)
		if p == "" {
			return sdk.RestoreResult{}, errors.New("the backup recorded no path: give --target-path")
		}
		target = p
	}
	limit := o.MaxBytes
	if limit <= 0 {
		limit = 1 << 40
	}
	var buf bytes.Buffer
	got, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	if got > limit {
		return sdk.RestoreResult{}, fmt.Errorf("the notes are longer than max_bytes = %d: nothing written", o.MaxBytes)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), ".notes-*")
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return sdk.RestoreResult{}, err
	}
	if err := tmp.Close(); err != nil {
		return sdk.RestoreResult{}, err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return sdk.RestoreResult{}, err
	}
	n.log.Info("notes restored", "path", target, "bytes", got)
	return sdk.RestoreResult{Summary: fmt.Sprintf("%d bytes of notes written to %s", got, target)}, nil
}

func main() {
	sdk.Main("notes", func(log hclog.Logger) sdk.Plugin { return &notes{log: log} })
}

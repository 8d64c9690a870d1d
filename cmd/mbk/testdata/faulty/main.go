// Command mbk-plugin-faulty is a test plugin that misbehaves on request, to
// prove that mbk fails a stage cleanly, names the plugin and never hangs.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

type faulty struct{ log hclog.Logger }

type settings struct {
	Mode string `cty:"mode"`
	Size int64  `cty:"size"`
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "mode", Type: cty.String, Required: true, Description: "ok, crash, hang, error"},
	{Name: "size", Type: cty.Number, Default: cty.NumberIntVal(1 << 20)},
}}

func (f *faulty) Describe() sdk.Info {
	return sdk.Info{Name: "faulty", Version: "0.0.1", Kinds: []string{sdk.KindDump}}
}

func (f *faulty) Schema(string) (sdk.Schema, error) { return schema, nil }

func (f *faulty) Plan(context.Context, sdk.Config) ([]sdk.Artifact, error) {
	return []sdk.Artifact{{ID: "0", Name: "faulty", Format: "bin"}}, nil
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
	write := func(n int64) error {
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			n -= k
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
	case "error":
		_ = write(s.Size / 2)
		return sdk.BackupResult{}, errors.New("disk on fire")
	}
	if err := write(s.Size); err != nil {
		return sdk.BackupResult{}, err
	}
	return sdk.BackupResult{Details: map[string]any{"mode": s.Mode}, InfoFile: "FAULTY_INFO.txt", InfoText: "all good\n"}, nil
}

func (f *faulty) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	return sdk.RestoreResult{Summary: "discarded " + strconv.FormatInt(n, 10) + " bytes"}, nil
}

func main() {
	sdk.Serve(func(log hclog.Logger) sdk.Plugin { return &faulty{log: log} })
}

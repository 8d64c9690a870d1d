package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
)

func (a *app) runCmd() *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "run FILE [--pipeline NAME]",
		Short: tr.T("Run the pipeline(s) in a file: dump, archive, checksum, retain, notify"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			loader, err := a.loader()
			if err != nil {
				return err
			}
			f, diags := loader.Load(args[0])
			if diags.HasErrors() {
				writeDiags(os.Stderr, loader, diags)
				return exitf(2, "%s is not valid: nothing was run", args[0])
			}
			loadWarnings := diags
			var selected []*config.Pipeline
			if pipeline != "" {
				p, err := f.Pipeline(pipeline)
				if err != nil {
					return exitf(2, "%v", err)
				}
				selected = append(selected, p)
			} else {
				selected = f.Pipelines
			}
			worst := 0
			for _, p := range selected {
				code := a.runPipeline(ctx, cmd.OutOrStdout(), loader, p, loadWarnings)
				if code > worst || (worst == engine.ExitCommitted && code != engine.ExitOK) {
					worst = code
				}
			}
			if worst != 0 {
				return &exitError{code: worst}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("run only this pipeline of the file"))
	cmd.Flags().StringVar(&a.metricsDir, "metrics-textfile", "", tr.T("after each run, write its metrics to DIR/mbk_<pipeline>.prom (node_exporter's textfile collector), atomically"))
	a.varFlag(cmd)
	return cmd
}

// runPipeline prepares and runs one pipeline of a loaded file; warnings
// are what loading the file warned of.
func (a *app) runPipeline(ctx context.Context, out io.Writer, loader *config.Loader, p *config.Pipeline, warnings hcl.Diagnostics) int {
	h := a.host(p.File)
	defer h.Close()
	e := &engine.Engine{Host: h, Log: a.log, Redact: a.redact, Version: version, Progress: a.progress()}
	stages, diags := engine.Prepare(ctx, h, p)
	a.redact.Add(engine.Secrets(p, stages)...)
	// A warning reaches the run's log and report: under cron, no one
	// reads mbk's own output.
	for _, d := range append(warnings, diags...) {
		if d.Severity == hcl.DiagWarning {
			e.Warnings = append(e.Warnings, warningText(d))
		}
	}
	if diags.HasErrors() {
		writeDiags(os.Stderr, loader, diags)
		e.NotifyFailure(ctx, p, stages, fmt.Sprintf("pipeline %q in %s is not valid (%d errors); run `mbk validate %s`", p.Name, p.File.Path, countErrors(diags), p.File.Path))
		fmt.Fprintf(os.Stderr, "mbk: pipeline %q is not valid: nothing was run\n", p.Name)
		return engine.ExitConfig
	}
	res := e.Run(ctx, p, stages)
	printResult(out, res)
	a.writeTextfiles(p)
	return res.ExitCode()
}

// warningText is a warning diagnostic on one line: where, what, why.
func warningText(d *hcl.Diagnostic) string {
	msg := d.Summary
	if d.Detail != "" {
		msg += ": " + d.Detail
	}
	if d.Subject != nil {
		msg = fmt.Sprintf("%s:%d: %s", d.Subject.Filename, d.Subject.Start.Line, msg)
	}
	return msg
}

func printResult(w io.Writer, res *engine.Result) {
	r := res.Report
	switch {
	case res.Committed && len(res.Later) == 0:
		fmt.Fprintln(w, tr.T("%s: set %s committed in %s (%s)", r.Pipeline, r.Set, r.Duration().Round(1e6), res.SetDir))
	case res.Committed:
		fmt.Fprintln(w, tr.T("%s: set %s committed (%s), with a WARNING:", r.Pipeline, r.Set, res.SetDir))
		for _, s := range r.Stages {
			if s.Error != "" {
				fmt.Fprintf(w, "  - %s\n", s.Error)
			}
		}
		for _, e := range res.Later {
			if errors.Is(e, engine.ErrContentMismatch) {
				fmt.Fprintf(w, "  - %s\n", e)
			}
		}
		for _, a := range r.Alarms {
			fmt.Fprintln(w, "  - "+tr.T("size alarm: %s", a.Message))
		}
	default:
		fmt.Fprintln(w, tr.T("%s: FAILED, nothing committed: %s", r.Pipeline, r.Error))
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(w, "  %-50s %12d bytes  sha256 %s\n", a.File, a.Size, a.SHA256)
	}
}

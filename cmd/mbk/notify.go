package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/engine"
)

func (a *app) notifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: tr.T("Notification tools"),
	}
	var pipeline string
	test := &cobra.Command{
		Use:   "test FILE [--pipeline NAME]",
		Short: tr.T("Send a test message through every notify stage and report, per stage, what the server said"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			loader, err := a.loader()
			if err != nil {
				return err
			}
			f, diags := loader.Load(args[0])
			if diags.HasErrors() {
				writeDiags(os.Stderr, loader, diags)
				return exitf(2, "%s is not valid", args[0])
			}
			out := cmd.OutOrStdout()
			failed, sent := 0, 0
			for _, p := range f.Pipelines {
				if pipeline != "" && p.Name != pipeline {
					continue
				}
				h := a.host(f)
				stages, d := engine.Prepare(cmd.Context(), h, p)
				a.redact.Add(engine.Secrets(p, stages)...)
				if d.HasErrors() {
					writeDiags(os.Stderr, loader, d)
					h.Close()
					return exitf(2, "pipeline %q is not valid", p.Name)
				}
				results := engine.NotifyTest(cmd.Context(), p, stages)
				h.Close()
				for _, r := range results {
					sent++
					if r.Err != nil {
						failed++
						fmt.Fprintf(out, "%s: %s: FAILED: %s\n", p.Name, r.Stage.ID(), a.redact.String(r.Err.Error()))
						continue
					}
					fmt.Fprintf(out, "%s: %s: ok: %s\n", p.Name, r.Stage.ID(), a.redact.String(r.Summary))
				}
			}
			if sent == 0 {
				return exitf(2, "no notify stage in %s", args[0])
			}
			if failed > 0 {
				return exitf(1, "%d of %d notify stage(s) failed", failed, sent)
			}
			return nil
		},
	}
	test.Flags().StringVar(&pipeline, "pipeline", "", tr.T("only this pipeline of the file"))
	a.varFlag(test)
	cmd.AddCommand(test)
	return cmd
}

package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/sdk"
)

func (a *app) notifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Notification tools",
	}
	var pipeline string
	test := &cobra.Command{
		Use:   "test FILE [--pipeline NAME]",
		Short: "Send a test message through every notify stage and report, per stage, what the server said",
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
				h := a.host(f.PluginDir)
				stages, d := engine.Prepare(cmd.Context(), h, p)
				a.redact.Add(engine.Secrets(p, stages)...)
				if d.HasErrors() {
					writeDiags(os.Stderr, loader, d)
					h.Close()
					return exitf(2, "pipeline %q is not valid", p.Name)
				}
				host, _ := os.Hostname()
				now := time.Now().UTC()
				rep := sdk.Report{Pipeline: p.Name, File: p.File.Path, Host: host, Status: sdk.EventTest, Started: now, Finished: now}
				for _, s := range stages {
					if s.Kind != sdk.KindNotify {
						continue
					}
					sent++
					summary, err := s.Client.Notify(cmd.Context(), s.Wire, sdk.EventTest, rep)
					if err != nil {
						failed++
						fmt.Fprintf(out, "%s: %s: FAILED: %s\n", p.Name, s.ID(), a.redact.String(err.Error()))
						continue
					}
					fmt.Fprintf(out, "%s: %s: ok: %s\n", p.Name, s.ID(), a.redact.String(summary))
				}
				h.Close()
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
	test.Flags().StringVar(&pipeline, "pipeline", "", "only this pipeline of the file")
	a.varFlag(test)
	cmd.AddCommand(test)
	return cmd
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
)

func (a *app) validateCmd() *cobra.Command {
	var preflight bool
	cmd := &cobra.Command{
		Use:   "validate [--preflight] PATH...",
		Short: tr.T("Check pipeline files (and directories of them) without touching anything"),
		Long: tr.T(`validate parses every file, asks each stage's plugin for its schema,
type-checks every stage body, checks cron expressions and prints each
pipeline's next three run times. It reports every problem at once with file,
line and column, and touches no container, database or mail server.

--preflight also checks the live world without changing it: containers and
volumes exist, database credentials work, the SMTP server accepts the login.`),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := config.Expand(args)
			if err != nil {
				return exitf(1, "%v", err)
			}
			loader, err := a.loader()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var all hcl.Diagnostics
			roots := rootUses{}
			for _, path := range files {
				f, diags := loader.Load(path)
				all = append(all, diags...)
				if f == nil {
					continue
				}
				h := a.host(f)
				for _, p := range f.Pipelines {
					all = append(all, roots.add(p)...)
					stages, d := engine.Prepare(cmd.Context(), h, p)
					if preflight && !d.HasErrors() {
						d = append(d, engine.Preflight(cmd.Context(), stages)...)
					}
					all = append(all, d...)
					if !d.HasErrors() && !diags.HasErrors() {
						printPipeline(out, p, len(stages))
					}
				}
				h.Close()
			}
			writeDiags(os.Stderr, loader, all)
			if all.HasErrors() {
				return exitf(1, "%d error(s) in %d file(s)", countErrors(all), len(files))
			}
			fmt.Fprintf(out, "%d file(s) valid\n", len(files))
			return nil
		},
	}
	cmd.Flags().BoolVar(&preflight, "preflight", false, tr.T("also check containers, credentials and servers (changes nothing)"))
	a.varFlag(cmd)
	return cmd
}

// rootUses are the roots of the pipelines validated so far, by absolute
// path: a root keeps one pipeline's sets (retention, the last-backup alarm
// and restore's choice of set go by the root), so two pipelines naming the
// same one would prune and restore each other's sets.
type rootUses map[string]*config.Pipeline

func (u rootUses) add(p *config.Pipeline) hcl.Diagnostics {
	if p.Root == "" {
		return nil
	}
	key, err := filepath.Abs(p.Root)
	if err != nil {
		key = filepath.Clean(p.Root)
	}
	prev, seen := u[key]
	if !seen {
		u[key] = p
		return nil
	}
	if prev.Name == p.Name {
		return nil
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Root shared by two pipelines",
		Detail: fmt.Sprintf("Pipeline %q keeps its sets in %s, as pipeline %q does (%s). A root keeps one pipeline's sets: retention, the last-backup alarm and restore go by the root, so each would prune and restore the other's. Give each pipeline a root of its own.",
			p.Name, p.Root, prev.Name, prev.RootRange), Subject: p.RootRange.Ptr()}}
}

func printPipeline(w io.Writer, p *config.Pipeline, stages int) {
	fmt.Fprintf(w, "%s: pipeline %q: %d stage(s), root %s, timezone %s\n", p.File.Path, p.Name, stages, p.Root, p.Location)
	if p.Cron == nil {
		fmt.Fprintf(w, "  no schedule\n")
		return
	}
	t := time.Now().In(p.Location)
	var next []string
	for i := 0; i < 3; i++ {
		t = p.Cron.Next(t)
		next = append(next, t.Format("Mon 2006-01-02 15:04 MST"))
	}
	fmt.Fprintf(w, "  schedule %q, next runs: %s\n", p.Schedule, strings.Join(next, "; "))
}

func writeDiags(w *os.File, loader *config.Loader, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	// Stable output: by file and position, whatever order they were found in.
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a == nil || b == nil {
			return a != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	color := isatty.IsTerminal(w.Fd()) && os.Getenv("NO_COLOR") == ""
	// The loader masks what is secret in the quoted lines and values.
	loader.WriteDiagnostics(w, diags, 100, color)
}

func countErrors(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

func (a *app) pluginsCmd() *cobra.Command {
	var pluginDir string
	cmd := &cobra.Command{
		Use:   "plugins [FILE]",
		Short: tr.T("List the plugins mbk finds: name, version, kinds, which binary is used, pins, restore options"),
		Long: tr.T(`plugins lists every plugin mbk finds, by name, with its version, the stage
kinds it serves, which is used (built-in, or the binary's path) and whether
the pipeline file FILE pins it (plugin "NAME" { sha256 = "..." }): with FILE,
its plugin_dir is searched first and its pins apply, as mbk run does. A binary
named like a built-in plugin is used only when pinned, and a refused binary
(as root: owned by someone else, or in a directory others can write) is
listed with the reason. Then, for each dump or archive plugin that declares
restore options, it lists them: name, type, the common mbk restore flag that
sets it (if any) and what it does. Any of them can be set with mbk restore
--restore-opt STAGE.NAME=VALUE, STAGE being the stage's name (by default its
plugin's).`),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var f *config.File
			if len(args) == 1 {
				loader, err := a.loader()
				if err != nil {
					return err
				}
				var diags hcl.Diagnostics
				if f, diags = loader.Load(args[0]); diags.HasErrors() {
					writeDiags(os.Stderr, loader, diags)
					return exitf(2, "%s is not valid", args[0])
				}
			}
			if pluginDir != "" {
				if f == nil {
					f = &config.File{}
				}
				f.PluginDir = pluginDir
			}
			h := a.host(f)
			defer h.Close()
			out := cmd.OutOrStdout()
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tKINDS\tUSED\tPINNED")
			failed := 0
			var restorers []restoreOptions
			var notes []string
			for _, f := range h.Discover() {
				used, pinned := f.Path, "no"
				switch {
				case f.Builtin:
					used, pinned = "built-in", "-"
				case f.Pinned:
					pinned = "yes (sha256)"
				}
				if f.Ignored != "" {
					notes = append(notes, fmt.Sprintf("%s: %s is not used: it is named like the built-in plugin, which it replaces only when pinned", f.Name, f.Ignored))
				}
				if f.Err != nil {
					failed++
					fmt.Fprintf(w, "%s\t-\t-\t%s\t%s\n", f.Name, orDash(used), pinned)
					notes = append(notes, fmt.Sprintf("%s: %v", f.Name, f.Err))
					continue
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				_, info, err := h.Get(ctx, f.Name)
				cancel()
				if err == nil {
					var ro []restoreOptions
					if ro, err = pluginRestoreOptions(cmd.Context(), h, info.Name, info.Kinds); err == nil {
						restorers = append(restorers, ro...)
					}
				}
				if err != nil {
					failed++
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Name, orDash(info.Version), orDash(strings.Join(info.Kinds, ",")), used, pinned)
					notes = append(notes, fmt.Sprintf("%s: broken: %v", f.Name, err))
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", info.Name, info.Version, strings.Join(info.Kinds, ","), used, pinned)
			}
			w.Flush()
			if len(notes) > 0 {
				fmt.Fprintf(out, "\n%s\n", strings.Join(notes, "\n"))
			}
			writeRestoreOptions(out, restorers)
			fmt.Fprintf(out, "\nsearched: %s\n", strings.Join(h.Dirs(), ", "))
			if failed > 0 {
				return exitf(1, "%d plugin(s) could not be used", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pluginDir, "plugin-dir", "", tr.T("search this directory first (instead of FILE's plugin_dir)"))
	a.varFlag(cmd)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// restoreOptions are what one kind of a plugin lets `mbk restore` ask.
type restoreOptions struct {
	plugin, kind string
	options      []sdk.Attribute
}

// pluginRestoreOptions asks a plugin for the restore options of each
// restoring kind (dump, archive) it serves.
func pluginRestoreOptions(ctx context.Context, h *pluginhost.Host, name string, kinds []string) ([]restoreOptions, error) {
	var out []restoreOptions
	for _, k := range kinds {
		if k != sdk.KindDump && k != sdk.KindArchive {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := h.Schema(ctx, name, k)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", k, err)
		}
		if len(s.RestoreOptions) > 0 {
			out = append(out, restoreOptions{plugin: name, kind: k, options: s.RestoreOptions})
		}
	}
	return out, nil
}

// writeRestoreOptions lists each plugin's restore options: name, type, the
// common flag that sets it ("-" when only --restore-opt does) and its
// description.
func writeRestoreOptions(out io.Writer, rs []restoreOptions) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(out, "\nRestore options: set one with mbk restore --restore-opt STAGE.NAME=VALUE (STAGE is\nthe stage's name, by default its plugin's), or with the flag shown.\n")
	for _, r := range rs {
		fmt.Fprintf(out, "\n%s (%s):\n", r.plugin, r.kind)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "  OPTION\tTYPE\tFLAG\tDESCRIPTION")
		for _, o := range r.options {
			flag := "-"
			if o.Flag != "" {
				flag = "--" + o.Flag
			}
			desc := o.Description
			if o.Required {
				desc = strings.TrimSpace("(required) " + desc)
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", o.Name, o.Type, flag, desc)
		}
		w.Flush()
	}
}

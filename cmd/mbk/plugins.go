package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

func (a *app) pluginsCmd() *cobra.Command {
	var pluginDir string
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the plugins mbk finds: name, version, kinds, path, restore options",
		Long: `plugins lists every plugin mbk finds, in search order, with its version, the
stage kinds it serves and where it was found. Then, for each dump or archive
plugin that declares restore options, it lists them: name, type, the common
mbk restore flag that sets it (if any) and what it does. Any of them can be set
with mbk restore --restore-opt STAGE.NAME=VALUE, STAGE being the stage's name
(by default its plugin's).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := a.host(pluginDir)
			defer h.Close()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tKINDS\tPATH")
			failed := 0
			var restorers []restoreOptions
			for _, f := range h.Discover() {
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				_, info, err := h.Get(ctx, f.Name)
				cancel()
				path := f.Path
				if f.Builtin {
					path = "built-in"
				}
				if err != nil {
					failed++
					fmt.Fprintf(w, "%s\t-\t-\t%s (broken: %v)\n", f.Name, path, err)
					continue
				}
				ro, err := pluginRestoreOptions(cmd.Context(), h, info.Name, info.Kinds)
				if err != nil {
					failed++
					fmt.Fprintf(w, "%s\t%s\t%s\t%s (broken: %v)\n", info.Name, info.Version, strings.Join(info.Kinds, ","), path, err)
					continue
				}
				restorers = append(restorers, ro...)
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", info.Name, info.Version, strings.Join(info.Kinds, ","), path)
			}
			w.Flush()
			writeRestoreOptions(cmd.OutOrStdout(), restorers)
			fmt.Fprintf(cmd.OutOrStdout(), "\nsearched: %s\n", strings.Join(h.Dirs(), ", "))
			if failed > 0 {
				return exitf(1, "%d plugin(s) could not be started", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pluginDir, "plugin-dir", "", "search this directory first")
	return cmd
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

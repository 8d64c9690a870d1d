package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/sdk"
)

func (a *app) pluginsCmd() *cobra.Command {
	var pluginDir string
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the plugins mbk finds: name, version, kinds, path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := a.host(pluginDir)
			defer h.Close()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tKINDS\tPATH")
			failed := 0
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
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", info.Name, info.Version, strings.Join(info.Kinds, ","), path)
			}
			w.Flush()
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

// servePluginCmd serves a built-in plugin; the host runs `mbk __plugin NAME`.
func servePluginCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__plugin NAME",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			factory, ok := builtins[args[0]]
			if !ok {
				return exitf(2, "no built-in plugin %q", args[0])
			}
			if err := sdk.Serve(args[0], factory); err != nil {
				return exitf(1, "%v", err)
			}
			return nil
		},
	}
}

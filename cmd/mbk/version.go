package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/pluginhost"
)

// version and commit are set at build time (the Makefile's build):
// -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// buildCommit is the commit mbk was built from: the one the Makefile set, or
// the one go build recorded from the work tree (a plain go build or go install).
func buildCommit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// writeVersion prints what a bug report needs: mbk's version and commit, the
// Go that built it, the plugin protocol, and the version of every plugin mbk
// finds (each is started to ask it), so "which plugin did what" has an answer
// on an installed machine.
func (a *app) writeVersion(ctx context.Context, out io.Writer) {
	fmt.Fprintf(out, "mbk %s\ncommit: %s\ngo: %s %s/%s\nplugin protocol: %d\n\n",
		version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH, pluginhost.ProtocolVersion)
	h := a.host(nil)
	defer h.Close()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PLUGIN\tVERSION\tFROM")
	for _, f := range h.Discover() {
		from := f.Path
		if f.Builtin {
			from = "built-in"
		}
		if f.Err != nil {
			fmt.Fprintf(w, "%s\t-\t%s (not usable: %v)\n", f.Name, orDash(from), f.Err)
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, info, err := h.Get(ctx, f.Name)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "%s\t-\t%s (broken: %v)\n", f.Name, from, err)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, info.Version, from)
	}
	w.Flush()
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: tr.T("Print mbk's version, commit, Go version, plugin protocol and each plugin's version (as --version)"),
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			a.writeVersion(cmd.Context(), cmd.OutOrStdout())
		},
	}
}

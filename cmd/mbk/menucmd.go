package main

import (
	"context"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/cmd/mbk/menu"
	"github.com/mbk-backup/mbk/core/config"
)

// defaultMenuDir is where an installed mbk keeps its pipelines.
const defaultMenuDir = "/etc/mbk"

func (a *app) menuCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "menu [PATH...]",
		Short: tr.T("The interactive menu: back up, list, restore, schedule, e-mail settings, details"),
		Long: tr.T(`menu is the old installer's backup menu for any number of pipelines: create
a backup, list backups, restore one over the site (a confirmation screen says
what is replaced and what comes back; a safety copy is taken first), configure,
show and remove schedules, configure and test e-mail, show a backup's details. Arrow keys and Enter, or
the option's number, choose. Every action runs the same code as its command
(mbk run, list, restore, cron, notify test, info), and the menu prints that
command so it can be used in scripts.

PATH is pipeline files or directories of them: by default /etc/mbk if it
exists, else ./pipelines. It needs a terminal; without one it exits 2.`),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !isatty.IsTerminal(os.Stdin.Fd()) || !isatty.IsTerminal(os.Stdout.Fd()) {
				return exitf(2, "mbk menu is interactive and needs a terminal on stdin and stdout; in scripts use the commands themselves (mbk run, list, restore, info, cron, notify test)")
			}
			paths := args
			if len(paths) == 0 {
				paths = []string{"pipelines"}
				if st, err := os.Stat(defaultMenuDir); err == nil && st.IsDir() {
					paths = []string{defaultMenuDir}
				}
			}
			if _, err := config.Expand(paths); err != nil {
				return exitf(2, "no pipelines to show: %v (pass pipeline files or directories: mbk menu PATH...)", err)
			}
			m, err := menu.New(menu.Options{Version: version, Paths: paths, Loader: a.loader, Run: a.runInProcess, Lang: tr})
			if err != nil {
				return exitf(2, "mbk menu cannot drive this terminal (TERM=%q): %v; in scripts use the commands themselves (mbk run, list, restore, info, cron, notify test)", os.Getenv("TERM"), err)
			}
			return m.Loop(cmd.Context())
		},
	}
	a.varFlag(cmd)
	return cmd
}

// runInProcess runs `mbk ARGS...` in this process, as the menu's actions
// do, with this invocation's variables and log settings, and returns its
// exit code.
func (a *app) runInProcess(ctx context.Context, args ...string) int {
	root := newRootCmd()
	full := append([]string{}, args...)
	if sub, _, err := root.Find(args); err == nil && sub.Flags().Lookup("var") != nil {
		for _, v := range a.vars {
			full = append(full, "--var", v)
		}
	}
	root.SetArgs(append(full, "--log-format", a.logFormat, "--log-level", a.logLevel))
	return exitCode(root.ExecuteContext(ctx))
}

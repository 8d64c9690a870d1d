package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// genManCmd writes a man page per command, generated from the command tree
// so the pages never drift from --help. Hidden: `make install` and the
// package build run it; users read the pages with man mbk.
func genManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  tr.T("Write the man pages (section 1) into DIR"),
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true // reproducible pages: no generation date
			return doc.GenManTree(root, &doc.GenManHeader{Title: "MBK", Section: "1", Source: "mbk " + version, Manual: "mbk manual"}, args[0])
		},
	}
}

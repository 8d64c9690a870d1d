package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/i18n"
)

// usageHeadings are the headings of cobra's usage template, each at the
// start of a line.
var usageHeadings = []string{
	i18n.Noop("Usage:"), i18n.Noop("Aliases:"), i18n.Noop("Examples:"), i18n.Noop("Available Commands:"),
	i18n.Noop("Additional Commands:"), i18n.Noop("Flags:"), i18n.Noop("Global Flags:"), i18n.Noop("Additional help topics:"),
}

// localizeHelp puts what cobra writes itself into the invocation's
// language: the help and completion commands' descriptions, every --help
// flag's, and the usage template's headings (Spanish only: English keeps
// cobra's own template). Each command's Short, Long and flags are written
// with tr.T where the command is made.
func localizeHelp(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		if f := c.Flags().Lookup("help"); f != nil {
			f.Usage = tr.T("help for %s", c.Name())
		}
		if c.Parent() == root {
			switch c.Name() {
			case "help":
				c.Short = tr.T("Help about any command")
			case "completion":
				c.Short = tr.T("Generate the autocompletion script for the specified shell")
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if tr.Code() == "en" {
		return
	}
	var pairs []string
	for _, h := range usageHeadings {
		pairs = append(pairs, "\n"+h, "\n"+tr.T(h))
	}
	cobra.AddTemplateFunc("mbkFlags", func(use string) string { return strings.Replace(use, " [flags]", " "+tr.T("[flags]"), 1) })
	// pflag writes "(default …)" after a flag's text itself.
	cobra.AddTemplateFunc("mbkDefaults", func(usages string) string {
		return strings.ReplaceAll(usages, " (default ", " ("+tr.T("default")+" ")
	})
	more := tr.T(`Use "%s [command] --help" for more information about a command.`, "{{.CommandPath}}")
	pairs = append(pairs, "{{.UseLine}}", "{{mbkFlags .UseLine}}", "| trimTrailingWhitespaces}}", "| trimTrailingWhitespaces | mbkDefaults}}",
		"{{.CommandPath}} [command]{{end}}", "{{.CommandPath}} "+tr.T("[command]")+"{{end}}",
		`Use "{{.CommandPath}} [command] --help" for more information about a command.`, more)
	root.SetUsageTemplate(strings.NewReplacer(pairs...).Replace("\n" + root.UsageTemplate())[1:])
}

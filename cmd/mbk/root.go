package main

import (
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/checksum"
	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/i18n"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/redact"
	"github.com/mbk-backup/mbk/core/retain"
	"github.com/mbk-backup/mbk/core/sdk"
)

// app holds what every command shares.
type app struct {
	logFormat string
	logLevel  string
	vars      []string
	// metricsDir is `mbk run --metrics-textfile`: each run writes
	// mbk_<pipeline>.prom there.
	metricsDir string
	redact     *redact.Redactor
	log        hclog.InterceptLogger
	lang       string // --lang, read before the command tree is built (see tr)
}

// tr writes this invocation's messages for people (help, menu, prompts,
// tables) in its language: --lang, else LC_ALL, LC_MESSAGES, LANG. Logs,
// JSON and exit codes stay English. newRootCmd sets it before building the
// commands, whose help it writes.
var tr = i18n.New(i18n.English)

// langArg finds --lang in the arguments before cobra parses them: the
// command tree's help texts are written in that language.
func langArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--lang="); ok {
			return v
		}
		if a == "--lang" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func newRootCmd() *cobra.Command {
	a := &app{redact: &redact.Redactor{}}
	tag, langErr := i18n.Detect(langArg(os.Args[1:]), os.Getenv)
	tr = i18n.New(tag)
	var showVersion bool
	root := &cobra.Command{
		Use:   "mbk",
		Short: tr.T("Backups of Moodle sites on Docker, by plugin pipelines"),
		Long: tr.T(`mbk runs backup pipelines written in HCL: dump the database, archive
moodledata, checksum, apply retention and notify, each stage served by a
plugin. Exit codes: 0 success; 1 the run failed and nothing was committed;
2 invalid configuration or usage; 3 the set was committed but a later stage
(retain, store, notify, or switching maintenance mode off) failed.`),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if langErr != nil {
				return exitf(2, "--lang: %v", langErr)
			}
			return a.setupLog()
		},
		// --version is handled here rather than by cobra's Version field,
		// whose template cannot ask the plugins for their versions.
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				a.writeVersion(cmd.Context(), cmd.OutOrStdout())
				return nil
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, tr.T("print the version, the commit, the Go version and each plugin's version"))
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", tr.T("log format: text (coloured on a terminal) or json"))
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", tr.T("log level: trace, debug, info, warn, error"))
	root.PersistentFlags().StringVar(&a.lang, "lang", "", tr.T("language of what people read: en or es (default: LC_ALL, LC_MESSAGES or LANG; es_* is Spanish)"))
	root.AddCommand(a.validateCmd(), a.runCmd(), a.listCmd(), a.infoCmd(), a.verifyCmd(), a.pruneCmd(), a.restoreCmd(), a.drillCmd(), a.statusCmd(), a.syncCmd(), a.keyCmd(), a.notifyCmd(), a.pluginsCmd(), a.daemonCmd(), a.cronCmd(), a.menuCmd(), a.versionCmd(), genManCmd())
	localizeHelp(root)
	return root
}

func (a *app) setupLog() error {
	if a.logFormat != "text" && a.logFormat != "json" {
		return exitf(2, "--log-format must be text or json, not %q", a.logFormat)
	}
	level := hclog.LevelFromString(a.logLevel)
	if level == hclog.NoLevel {
		return exitf(2, "--log-level %q is not one of trace, debug, info, warn, error", a.logLevel)
	}
	color := hclog.ColorOff
	if a.logFormat == "text" && isatty.IsTerminal(os.Stderr.Fd()) && os.Getenv("NO_COLOR") == "" {
		color = hclog.ForceColor
	}
	a.log = hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:       "mbk",
		Level:      level,
		Output:     a.redact.Writer(os.Stderr),
		JSONFormat: a.logFormat == "json",
		Color:      color,
		TimeFormat: "15:04:05.000",
	})
	return nil
}

// varFlag registers --var on a command.
func (a *app) varFlag(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&a.vars, "var", nil, tr.T("set a variable: --var name=value (repeatable; MBK_VAR_name works too)"))
}

func (a *app) loader() (*config.Loader, error) {
	vars := map[string]string{}
	for _, kv := range a.vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, exitf(2, "--var %q: expected name=value", kv)
		}
		vars[k] = v
	}
	return config.NewLoader(vars), nil
}

// builtins are the plugins mbk serves itself, inside its own process.
var builtins = map[string]func(hclog.Logger) sdk.Plugin{
	"sha256": func(log hclog.Logger) sdk.Plugin { return &checksum.Plugin{Version: version, Log: log} },
	"policy": func(log hclog.Logger) sdk.Plugin { return &retain.Plugin{Version: version, Log: log} },
}

// host finds and starts plugins as the pipeline file f says: its
// plugin_dir first, its pins (f may be nil: neither).
func (a *app) host(f *config.File) *pluginhost.Host {
	opts := pluginhost.Options{Builtins: builtins, Logger: a.log.Named("plugin")}
	if f != nil {
		opts.PluginDir, opts.Pins = f.PluginDir, f.Pins
	}
	return pluginhost.New(opts)
}

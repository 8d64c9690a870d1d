package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
)

// defaultMenuDir is where an installed mbk keeps its pipelines.
const defaultMenuDir = "/etc/mbk"

func (a *app) menuCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "menu [PATH...]",
		Short: "The interactive menu: back up, list, restore, schedule, e-mail settings, details",
		Long: `menu is the old installer's backup menu for any number of pipelines: create
a backup, list backups, restore one, configure, show and remove schedules,
configure and test e-mail, show a backup's details. Arrow keys and Enter, or
the option's number, choose. Every action runs the same code as its command
(mbk run, list, restore, cron, notify test, info), and the menu prints that
command so it can be used in scripts.

PATH is pipeline files or directories of them: by default /etc/mbk if it
exists, else ./pipelines. It needs a terminal; without one it exits 2.`,
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
			ui, err := openTUI()
			if err != nil {
				return exitf(2, "mbk menu cannot drive this terminal (TERM=%q): %v; in scripts use the commands themselves (mbk run, list, restore, info, cron, notify test)", os.Getenv("TERM"), err)
			}
			m := &menu{a: a, ui: ui, paths: paths}
			err = m.loop(cmd.Context())
			if errors.Is(err, errLeave) {
				return nil
			}
			return err
		},
	}
	a.varFlag(cmd)
	return cmd
}

type menu struct {
	a      *app
	ui     *tui
	paths  []string
	pipes  []*config.Pipeline
	broken map[*config.Pipeline]string // pipelines whose file has errors
	notes  []string                    // files that could not be read at all
}

var menuItems = []choice{
	{key: "1", label: "Create a backup"},
	{key: "2", label: "List backups"},
	{key: "3", label: "Restore a backup"},
	{key: "4", label: "Configure a schedule"},
	{key: "5", label: "Show schedules"},
	{key: "6", label: "Remove a schedule"},
	{key: "7", label: "Configure e-mail"},
	{key: "8", label: "Send a test e-mail"},
	{key: "9", label: "Show a backup's details"},
	{key: "0", label: "Quit"},
}

func (m *menu) loop(ctx context.Context) error {
	for {
		// Files are read again every time: a schedule or e-mail setting
		// changed by one action shows in the next.
		m.load()
		key, err := m.ui.choose(ctx, m.header(), "What do you want to do?", menuItems)
		if err != nil {
			return err
		}
		if key == "0" || key == "" {
			fmt.Println("Bye.")
			return nil
		}
		err = m.do(ctx, key)
		if errors.Is(err, errBack) {
			continue // nothing was shown: straight back to the menu
		}
		if err != nil {
			return err
		}
		if err := m.ui.pause(ctx); err != nil {
			return err
		}
	}
}

func (m *menu) do(ctx context.Context, key string) error {
	switch key {
	case "4", "5", "6":
		// mbk cron may be missing from a build: say so before asking
		// anything.
		need := map[string][]string{"4": {"cron", "install"}, "5": {"cron", "list"}, "6": {"cron", "remove"}}[key]
		if !hasCommand(need) {
			fmt.Fprintf(os.Stderr, "mbk: `mbk %s` is not available in this build\n", strings.Join(need, " "))
			return nil
		}
		if key == "5" {
			m.mbk(ctx, need)
			return nil
		}
	}
	p, err := m.choosePipeline(ctx, menuItems[indexOfKey(menuItems, key)].label)
	if err != nil || p == nil {
		return err
	}
	file, sel := p.File.Path, m.pipelineFlag(p)
	switch key {
	case "1":
		m.mbk(ctx, []string{"run"}, append([]string{file}, sel...)...)
	case "2":
		m.mbk(ctx, []string{"list"}, append([]string{file}, sel...)...)
	case "3":
		return m.restore(ctx, p)
	case "4":
		return m.schedule(ctx, p)
	case "6":
		m.mbk(ctx, []string{"cron", "remove"}, m.cronArgs(p, []string{"cron", "remove"})...)
	case "7":
		return m.configureEmail(ctx, p)
	case "8":
		m.mbk(ctx, []string{"notify", "test"}, append([]string{file}, sel...)...)
	case "9":
		set, err := m.chooseSet(ctx, p, false)
		if err != nil || set == "" {
			return err
		}
		m.mbk(ctx, []string{"info"}, append([]string{file, set}, sel...)...)
	}
	return nil
}

func indexOfKey(items []choice, key string) int {
	for i, it := range items {
		if it.key == key {
			return i
		}
	}
	return 0
}

// load reads every pipeline file. A file with errors still shows its
// pipelines, marked, so the person sees them and the action explains.
func (m *menu) load() {
	m.pipes, m.notes, m.broken = nil, nil, map[*config.Pipeline]string{}
	files, err := config.Expand(m.paths)
	if err != nil {
		m.notes = append(m.notes, err.Error())
		return
	}
	loader, err := m.a.loader()
	if err != nil {
		m.notes = append(m.notes, err.Error())
		return
	}
	for _, path := range files {
		f, diags := loader.Load(path)
		if f == nil || len(f.Pipelines) == 0 {
			m.notes = append(m.notes, fmt.Sprintf("%s cannot be loaded (run: mbk validate %s)", path, path))
			continue
		}
		for _, p := range f.Pipelines {
			m.pipes = append(m.pipes, p)
			if diags.HasErrors() {
				m.broken[p] = "not valid: run mbk validate " + path
			}
		}
	}
}

func (m *menu) header() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mbk %s · backups of Moodle sites · %d pipeline(s) in %s", version, len(m.pipes), strings.Join(m.paths, ", "))
	for _, n := range m.notes {
		fmt.Fprintf(&b, "\n  ! %s", n)
	}
	return b.String()
}

// choosePipeline returns errBack when the person went back, and nil when
// there is no pipeline to choose (it said so).
func (m *menu) choosePipeline(ctx context.Context, action string) (*config.Pipeline, error) {
	if len(m.pipes) == 0 {
		fmt.Printf("No pipeline found in %s: pass pipeline files or directories (mbk menu PATH...).\n", strings.Join(m.paths, ", "))
		return nil, nil
	}
	var items []choice
	for i, p := range m.pipes {
		hint := fmt.Sprintf("%s · sets in %s", p.File.Path, p.Root)
		if why := m.broken[p]; why != "" {
			hint += " · " + why
		}
		items = append(items, choice{key: fmt.Sprint(i + 1), label: p.Name, hint: hint})
	}
	items = append(items, choice{key: "0", label: "Back"})
	key, err := m.ui.choose(ctx, "", action+": which pipeline?", items)
	if err != nil {
		return nil, err
	}
	if key == "" || key == "0" {
		return nil, errBack
	}
	return m.pipes[indexOfKey(items, key)], nil
}

// pipelineFlag names the pipeline when its file holds several.
func (m *menu) pipelineFlag(p *config.Pipeline) []string {
	if len(p.File.Pipelines) > 1 {
		return []string{"--pipeline", p.Name}
	}
	return nil
}

// chooseSet lists the pipeline's sets, newest first; "" when there is none
// (it said so), errBack when the person went back.
func (m *menu) chooseSet(ctx context.Context, p *config.Pipeline, completeOnly bool) (string, error) {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		fmt.Printf("Cannot list the sets of %s: %v\n", p.Name, err)
		return "", nil
	}
	var items []choice
	for i := len(sets) - 1; i >= 0; i-- {
		s := summarize(sets[i])
		if completeOnly && s.Status != "complete" {
			continue
		}
		hint := s.Status + ", " + humanize.IBytes(uint64(s.Bytes))
		if s.Problem != "" {
			hint += " (" + s.Problem + ")"
		}
		items = append(items, choice{key: fmt.Sprint(len(items) + 1), label: s.Set, hint: hint})
	}
	if len(items) == 0 {
		what := "no set"
		if completeOnly {
			what = "no complete set"
		}
		fmt.Printf("Pipeline %s has %s in %s.\n", p.Name, what, p.Root)
		return "", nil
	}
	items = append(items, choice{key: "0", label: "Back"})
	key, err := m.ui.choose(ctx, "", "Which set of "+p.Name+"?", items)
	if err != nil {
		return "", err
	}
	if key == "" || key == "0" {
		return "", errBack
	}
	return items[indexOfKey(items, key)].label, nil
}

func (m *menu) restore(ctx context.Context, p *config.Pipeline) error {
	set, err := m.chooseSet(ctx, p, true)
	if err != nil || set == "" {
		return err
	}
	what, err := m.ui.choose(ctx, "", "Restore what?", []choice{
		{key: "1", label: "The database and the files"},
		{key: "2", label: "Only the database"},
		{key: "3", label: "Only the files"},
		{key: "0", label: "Back"},
	})
	if err != nil {
		return err
	}
	if what == "" || what == "0" {
		return errBack
	}
	args := append([]string{p.File.Path, set}, m.pipelineFlag(p)...)
	switch what {
	case "2":
		args = append(args, "--only", "db")
	case "3":
		args = append(args, "--only", "files")
	}
	// restore itself verifies the set, says what it will overwrite and asks
	// for the pipeline's name on this terminal.
	m.mbk(ctx, []string{"restore"}, args...)
	return nil
}

// mbk runs one of mbk's own commands in this process, as if typed, and
// prints that command first so the person learns it. It returns the exit
// code the command would have had.
func (m *menu) mbk(ctx context.Context, path []string, args ...string) int {
	root := newRootCmd()
	sub, _, err := root.Find(path)
	if err != nil || sub.CommandPath() != "mbk "+strings.Join(path, " ") {
		fmt.Fprintf(os.Stderr, "mbk: `mbk %s` is not available in this build\n", strings.Join(path, " "))
		return 2
	}
	full := append(append([]string{}, path...), args...)
	fmt.Printf("\n$ mbk %s\n", shellQuote(full))
	if sub.Flags().Lookup("var") != nil {
		for _, v := range m.a.vars {
			full = append(full, "--var", v)
		}
	}
	full = append(full, "--log-format", m.a.logFormat, "--log-level", m.a.logLevel)
	root.SetArgs(full)
	err = root.ExecuteContext(ctx)
	var ec *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		if ec.msg != "" {
			fmt.Fprintln(os.Stderr, "mbk:", ec.msg)
		}
		fmt.Printf("(exit code %d)\n", ec.code)
		return ec.code
	default:
		fmt.Fprintln(os.Stderr, "mbk:", err)
		return 2
	}
}

func hasCommand(path []string) bool {
	sub, _, err := newRootCmd().Find(path)
	return err == nil && sub.CommandPath() == "mbk "+strings.Join(path, " ")
}

// hasFlag says whether a command of this build takes a flag: the menu asks
// instead of assuming, so it follows the commands as they grow.
func hasFlag(path []string, flag string) bool {
	sub, _, err := newRootCmd().Find(path)
	return err == nil && sub.CommandPath() == "mbk "+strings.Join(path, " ") && sub.Flags().Lookup(flag) != nil
}

// cronArgs names the file (absolute: a crontab line outlives the current
// directory) and the pipeline: crontab lines are per pipeline, so the menu
// never touches another pipeline's line of the same file.
func (m *menu) cronArgs(p *config.Pipeline, path []string) []string {
	file := p.File.Path
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	args := []string{file}
	if hasFlag(path, "pipeline") {
		args = append(args, "--pipeline", p.Name)
	}
	return args
}

func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]#~;&|<>(){}!") {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

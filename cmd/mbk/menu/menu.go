// Package menu is mbk's interactive menu, the old installer's backup menu
// for any number of pipelines: create a backup, list backups, restore one
// over the site (after a confirmation screen; mbk restore takes a safety
// copy first), configure, show and remove schedules, configure and test
// e-mail, show a backup's details. Every action runs one of mbk's own commands, in the
// process, as if typed, and prints that command first so it can be learnt
// for scripts.
package menu

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/i18n"
)

// Options is what the menu takes from the mbk binary that shows it.
type Options struct {
	// Version is mbk's, shown in the header.
	Version string
	// Paths are pipeline files or directories of them.
	Paths []string
	// Loader reads pipeline files with the command line's variables.
	Loader func() (*config.Loader, error)
	// Run runs one of mbk's commands in this process, as if `mbk ARGS...`
	// were typed, and returns its exit code; it prints the command's own
	// error, as mbk would.
	Run func(ctx context.Context, args ...string) int
	// Lang is the language the menu speaks (nil: English).
	Lang *i18n.Printer
}

// Menu is the menu on the process's terminal.
type Menu struct {
	opts   Options
	tr     *i18n.Printer
	ui     *tui
	pipes  []*config.Pipeline
	broken map[*config.Pipeline]string // pipelines whose file has errors
	notes  []string                    // files that could not be read at all
}

// New opens the terminal (/dev/tty), and fails on one the menu cannot
// drive ($TERM unknown or not cursor-addressable) before any prompt.
func New(opts Options) (*Menu, error) {
	tr := opts.Lang
	if tr == nil {
		tr = i18n.New(i18n.English)
	}
	ui, err := openTUI(tr)
	if err != nil {
		return nil, err
	}
	return &Menu{opts: opts, tr: tr, ui: ui}, nil
}

// menuItems are the menu's options, labels in English: items translates.
var menuItems = []choice{
	{key: "1", label: i18n.Noop("Create a backup")},
	{key: "2", label: i18n.Noop("List backups")},
	{key: "3", label: i18n.Noop("Restore a backup")},
	{key: "4", label: i18n.Noop("Configure a schedule")},
	{key: "5", label: i18n.Noop("Show schedules")},
	{key: "6", label: i18n.Noop("Remove a schedule")},
	{key: "7", label: i18n.Noop("Configure e-mail")},
	{key: "8", label: i18n.Noop("Send a test e-mail")},
	{key: "9", label: i18n.Noop("Show a backup's details")},
	{key: "0", label: i18n.Noop("Quit")},
}

// items is the menu in the person's language.
func (m *Menu) items() []choice {
	out := make([]choice, len(menuItems))
	for i, it := range menuItems {
		out[i] = choice{key: it.key, label: m.tr.T(it.label)}
	}
	return out
}

// Loop shows the menu until the person quits, or leaves with Ctrl+C or by
// closing the terminal.
func (m *Menu) Loop(ctx context.Context) error {
	err := m.loop(ctx)
	if errors.Is(err, errLeave) {
		return nil
	}
	return err
}

func (m *Menu) loop(ctx context.Context) error {
	for {
		// Files are read again every time: a schedule or e-mail setting
		// changed by one action shows in the next.
		m.load()
		key, err := m.ui.choose(ctx, m.header(), m.tr.T("What do you want to do?"), m.items())
		if err != nil {
			return err
		}
		if key == "0" || key == "" {
			fmt.Println(m.tr.T("Bye."))
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

func (m *Menu) do(ctx context.Context, key string) error {
	if key == "5" {
		m.mbk(ctx, "cron", "list")
		return nil
	}
	p, err := m.choosePipeline(ctx, m.tr.T(menuItems[indexOfKey(menuItems, key)].label))
	if err != nil || p == nil {
		return err
	}
	file, sel := p.File.Path, m.pipelineFlag(p)
	switch key {
	case "1":
		m.mbk(ctx, append([]string{"run", file}, sel...)...)
	case "2":
		m.mbk(ctx, append([]string{"list", file}, sel...)...)
	case "3":
		return m.restore(ctx, p)
	case "4":
		return m.schedule(ctx, p)
	case "6":
		m.mbk(ctx, append([]string{"cron", "remove"}, m.cronArgs(p)...)...)
	case "7":
		return m.configureEmail(ctx, p)
	case "8":
		m.mbk(ctx, append([]string{"notify", "test", file}, sel...)...)
	case "9":
		set, _, err := m.chooseSet(ctx, p, false)
		if err != nil || set == nil {
			return err
		}
		m.mbk(ctx, append([]string{"info", file, set.Name}, sel...)...)
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
func (m *Menu) load() {
	m.pipes, m.notes, m.broken = nil, nil, map[*config.Pipeline]string{}
	files, err := config.Expand(m.opts.Paths)
	if err != nil {
		m.notes = append(m.notes, err.Error())
		return
	}
	loader, err := m.opts.Loader()
	if err != nil {
		m.notes = append(m.notes, err.Error())
		return
	}
	for _, path := range files {
		f, diags := loader.Load(path)
		if f == nil || len(f.Pipelines) == 0 {
			m.notes = append(m.notes, m.tr.T("%[1]s cannot be loaded (run: mbk validate %[1]s)", path))
			continue
		}
		for _, p := range f.Pipelines {
			m.pipes = append(m.pipes, p)
			if diags.HasErrors() {
				m.broken[p] = m.tr.T("not valid: run mbk validate %s", path)
			}
		}
	}
}

func (m *Menu) header() string {
	var b strings.Builder
	b.WriteString(m.tr.T("mbk %s · backups of Moodle sites · %d pipeline(s) in %s", m.opts.Version, len(m.pipes), strings.Join(m.opts.Paths, ", ")))
	for _, n := range m.notes {
		fmt.Fprintf(&b, "\n  ! %s", n)
	}
	return b.String()
}

// choosePipeline returns errBack when the person went back, and nil when
// there is no pipeline to choose (it said so).
func (m *Menu) choosePipeline(ctx context.Context, action string) (*config.Pipeline, error) {
	if len(m.pipes) == 0 {
		fmt.Println(m.tr.T("No pipeline found in %s: pass pipeline files or directories (mbk menu PATH...).", strings.Join(m.opts.Paths, ", ")))
		return nil, nil
	}
	var items []choice
	for i, p := range m.pipes {
		hint := m.tr.T("%s · sets in %s", p.File.Path, p.Root)
		if why := m.broken[p]; why != "" {
			hint += " · " + why
		}
		items = append(items, choice{key: fmt.Sprint(i + 1), label: p.Name, hint: hint})
	}
	items = append(items, choice{key: "0", label: m.tr.T("Back")})
	key, err := m.ui.choose(ctx, "", m.tr.T("%s: which pipeline?", action), items)
	if err != nil {
		return nil, err
	}
	if key == "" || key == "0" {
		return nil, errBack
	}
	return m.pipes[indexOfKey(items, key)], nil
}

// pipelineFlag names the pipeline when its file holds several.
func (m *Menu) pipelineFlag(p *config.Pipeline) []string {
	if len(p.File.Pipelines) > 1 {
		return []string{"--pipeline", p.Name}
	}
	return nil
}

// mbk runs one of mbk's own commands in this process, as if typed, and
// prints that command first so the person learns it. It returns the
// command's exit code.
func (m *Menu) mbk(ctx context.Context, args ...string) int {
	fmt.Printf("\n$ mbk %s\n", shellQuote(args))
	code := m.opts.Run(ctx, args...)
	if code != 0 {
		fmt.Println(m.tr.T("(exit code %v)", code))
	}
	return code
}

// cronArgs names the file (absolute: a crontab line outlives the current
// directory) and the pipeline: crontab lines are per pipeline, so the menu
// never touches another pipeline's line of the same file.
func (m *Menu) cronArgs(p *config.Pipeline) []string {
	file := p.File.Path
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	return []string{file, "--pipeline", p.Name}
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

package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
)

// RestoreCommand is the mbk restore command line for a pipeline's file, as
// a person would type it, with args after it.
func RestoreCommand(p *config.Pipeline, args ...string) string {
	return Command(p, "restore", args...)
}

// Command is an mbk command line (mbk VERB FILE [--pipeline NAME] args...)
// for a pipeline, as a person would type it.
func Command(p *config.Pipeline, verb string, args ...string) string {
	cmd := []string{"mbk", verb, shellQuote(p.File.Path)}
	if len(p.File.Pipelines) > 1 {
		cmd = append(cmd, "--pipeline", shellQuote(p.Name))
	}
	for _, a := range args {
		cmd = append(cmd, shellQuote(a))
	}
	return strings.Join(cmd, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// UnfinishedRestoreError says why no backup runs while a restore is
// unfinished, and the commands that end that state.
func UnfinishedRestoreError(p *config.Pipeline, m *repo.RestoreMarker) error {
	var b strings.Builder
	fmt.Fprintf(&b, "a restore of set %s is unfinished (started %s", m.Set, m.Started.Local().Format(time.DateTime))
	if m.Host != "" {
		fmt.Fprintf(&b, " on %s", m.Host)
	}
	if m.Error != "" {
		fmt.Fprintf(&b, "; it failed: %s", m.Error)
	} else {
		b.WriteString("; it was interrupted")
	}
	b.WriteString("): the site may hold part of that set, so no backup is taken until it is finished or abandoned.")
	fmt.Fprintf(&b, " To finish it: %s.", RestoreCommand(p, append([]string{m.Set}, m.Args...)...))
	if m.Safety != "" {
		fmt.Fprintf(&b, " To put the site back as it was before it: %s.", RestoreCommand(p, append([]string{m.Safety, "--yes"}, m.Args...)...))
	}
	fmt.Fprintf(&b, " If the site is known to be whole: %s.", RestoreCommand(p, "--abandon"))
	return fmt.Errorf("%s", b.String())
}

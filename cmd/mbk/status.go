package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/health"
)

func (a *app) statusCmd() *cobra.Command {
	var maxAge time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status PATH... [--max-age 26h] [--json]",
		Short: tr.T("Say whether the backups are current: for people, and as a Nagios/Icinga/NRPE check"),
		Long: tr.T(`status reads each pipeline's root, and nothing else (no plugin, store or
database is contacted): the newest complete set and its age, the last run's
result and time, the failed runs since the last success, each store's newest
copy as the runs recorded it, and the newest drill.

It follows the monitoring-plugin convention, so Nagios, Icinga, Zabbix and
NRPE can run it as it is: the first line is "MBK STATE - summary | perfdata"
and the exit code is the worst state among the pipelines:
  0 OK
  1 WARNING   the last run failed or ended with a warning (a size alarm, a
              store or notification that failed), a store's newest copy is
              older than the age limit or missing, or the newest drill failed
  2 CRITICAL  no complete set, the newest is older than the age limit, or a
              restore is unfinished (backups are refused)
  3 UNKNOWN   a file or a root cannot be read, or bad usage

The age limit is --max-age, else the pipeline's max_age, else twice the
longest interval of its schedule, else 26h.`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return unknown(cmd.OutOrStdout(), errors.New("status needs a pipeline file or directory"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := a.status(cmd.OutOrStdout(), args, maxAge, asJSON, time.Now())
			if err != nil {
				return err
			}
			if code != health.OK {
				return &exitError{code: int(code)}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&maxAge, "max-age", 0, tr.T("how old the newest set may be (overrides each pipeline's max_age)"))
	cmd.Flags().BoolVar(&asJSON, "json", false, tr.T("print the status as JSON"))
	// A monitoring system reads exit 2 as CRITICAL: bad usage is UNKNOWN.
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return unknown(cmd.OutOrStdout(), err)
	})
	a.varFlag(cmd)
	return cmd
}

// statusOut is `mbk status --json`.
type statusOut struct {
	State     health.Level    `json:"state"`
	ExitCode  int             `json:"exit_code"`
	Pipelines []health.Report `json:"pipelines"`
}

func (a *app) status(out io.Writer, paths []string, maxAge time.Duration, asJSON bool, now time.Time) (health.Level, error) {
	if maxAge < 0 {
		return 0, unknown(out, errors.New("--max-age must be positive"))
	}
	ps, err := a.loadAll(paths)
	if err != nil {
		return 0, unknown(out, err)
	}
	var reports []health.Report
	worst := health.OK
	for _, p := range ps {
		limit := maxAge
		if limit == 0 {
			limit = p.AgeLimit(now)
		}
		var r health.Report
		if s, err := health.Read(p); err != nil {
			r = health.Failed(p, err)
		} else {
			r = health.Evaluate(s, now, limit)
		}
		if r.Level.Worse(worst) {
			worst = r.Level
		}
		reports = append(reports, r)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return worst, enc.Encode(statusOut{State: worst, ExitCode: int(worst), Pipelines: reports})
	}
	printStatus(out, worst, reports, now)
	return worst, nil
}

// unknown says, as a monitoring plugin does on its first line, that the
// status cannot be known, and exits 3.
func unknown(out io.Writer, err error) error {
	fmt.Fprintf(out, "MBK UNKNOWN - %v\n", err)
	return &exitError{code: int(health.Unknown)}
}

// loadAll loads every pipeline of the files and directories, without
// plugins: status needs the roots, schedules and store names only.
func (a *app) loadAll(paths []string) ([]*config.Pipeline, error) {
	files, err := config.Expand(paths)
	if err != nil {
		return nil, err
	}
	loader, err := a.loader()
	if err != nil {
		return nil, err
	}
	var ps []*config.Pipeline
	for _, path := range files {
		f, diags := loader.Load(path)
		if diags.HasErrors() {
			writeDiags(os.Stderr, loader, diags)
			return nil, fmt.Errorf("%s is not valid: %s", path, diags.Errs()[0])
		}
		ps = append(ps, f.Pipelines...)
	}
	if len(ps) == 0 {
		return nil, errors.New("no pipeline found")
	}
	return ps, nil
}

// printStatus writes the status as a monitoring plugin does: one line with
// the state, a summary and performance data, then the details. The first
// line is for the monitoring system and stays English; the details are in
// the invocation's language.
func printStatus(w io.Writer, worst health.Level, reports []health.Report, now time.Time) {
	var summary, perf []string
	for _, r := range reports {
		for _, f := range r.Findings {
			if f.Level == r.Level {
				summary = append(summary, r.Pipeline+": "+f.Text)
			}
		}
		if len(r.Findings) == 0 && r.Newest != nil {
			summary = append(summary, fmt.Sprintf("%s: newest set %s, %s old", r.Pipeline, r.Newest.Set, health.Span(r.Newest.Age)))
		}
		if r.ReadFail == "" {
			age := ""
			if r.Newest != nil {
				age = fmt.Sprintf("%d", int64(r.Newest.Age.Seconds()))
			}
			perf = append(perf,
				fmt.Sprintf("'%s_age'=%ss;;%d;0", r.Pipeline, age, int64(r.MaxAge.Seconds())),
				fmt.Sprintf("'%s_failed_runs'=%d;1;;0", r.Pipeline, r.Failed),
				fmt.Sprintf("'%s_sets'=%d;;1;0", r.Pipeline, r.Kept))
		}
	}
	fmt.Fprintf(w, "MBK %s - %s | %s\n", worst, strings.Join(summary, "; "), strings.Join(perf, " "))
	for _, r := range reports {
		fmt.Fprintf(w, "\n%s (%s): %s\n", r.Pipeline, r.File, r.Level)
		if r.ReadFail != "" {
			fmt.Fprintf(w, "  %s\n", r.ReadFail)
			continue
		}
		// Labels line up: 14 columns, or the language's longest label.
		width := 14
		for _, l := range []string{tr.T("newest set"), tr.T("sets kept"), tr.T("last run"), tr.T("last success"), tr.T("failed since"), tr.T("last drill")} {
			width = max(width, utf8.RuneCountInString(l)+1)
		}
		line := func(label, text string) {
			fmt.Fprintf(w, "  %s%s %s\n", label+":", strings.Repeat(" ", max(width-utf8.RuneCountInString(label)-1, 0)), text)
		}
		if n := r.Newest; n != nil {
			line(tr.T("newest set"), tr.T("%s, %s old (max_age %s)", n.Set, health.Span(n.Age), health.Span(r.MaxAge)))
		} else {
			line(tr.T("newest set"), tr.T("none in %s", r.Root))
		}
		line(tr.T("sets kept"), tr.Number(int64(r.Kept)))
		if l := r.LastRun; l != nil {
			text := tr.T("%s at %s (exit %v)", l.Status, l.Finished.Local().Format("2006-01-02 15:04:05"), l.ExitCode)
			if l.Set != "" {
				text += ", " + tr.T("set %s", l.Set)
			}
			line(tr.T("last run"), text)
		} else {
			line(tr.T("last run"), tr.T("none recorded"))
		}
		if !r.Success.IsZero() {
			line(tr.T("last success"), tr.T("%s (%s ago)", r.Success.Local().Format("2006-01-02 15:04:05"), health.Span(now.Sub(r.Success))))
		}
		line(tr.T("failed since"), tr.T("%d run(s) since the last success", r.Failed))
		for _, s := range r.Stores {
			label := tr.T("store %s", s.Store)
			if s.Newest == "" {
				line(label, tr.T("no copy recorded"))
				continue
			}
			ok := tr.T("the last copy succeeded")
			if !s.LastOK {
				ok = tr.T("the last copy FAILED")
			}
			line(label, tr.T("newest copy %s, %s old; %s", s.Newest, health.Span(s.Age), ok))
		}
		if d := r.Drill; d != nil {
			verdict := tr.T("passed")
			if !d.OK {
				verdict = tr.T("FAILED")
			}
			line(tr.T("last drill"), tr.T("%s %s, set %s (%s), restore %s", verdict, d.Started.Local().Format("2006-01-02 15:04"), d.Set, d.From, d.Restore.Round(time.Second)))
		}
		for _, f := range r.Findings {
			fmt.Fprintf(w, "  %s: %s\n", f.Level, f.Text)
		}
	}
}

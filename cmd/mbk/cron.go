package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/schedule"
)

// cronCmd manages crontab entries, the seed's way of scheduling: cron(8)
// starts `mbk run FILE --pipeline NAME`, and the root's lock keeps it from
// overlapping a daemon's or a person's run.
func (a *app) cronCmd() *cobra.Command {
	ct := &schedule.Crontab{Program: os.Getenv("MBK_CRONTAB")}
	cmd := &cobra.Command{
		Use:   "cron install|list|remove",
		Short: tr.T("Manage crontab entries that run pipelines"),
		Long: tr.T(`cron manages the user's crontab through the crontab command: one line per
pipeline, "<schedule> /path/mbk run /path/FILE --pipeline NAME", tagged with
a "# mbk:NAME:FILE" comment so that install replaces its own line and remove
deletes only its own lines; every other line stays as it was.

cron reads schedules in the system timezone: when a pipeline's timezone
differs, install and list say so and show both times. cron also runs with a
minimal environment: keep the settings env() reads in the file's env_file.
MBK_CRONTAB names another crontab-compatible program.`),
	}
	cmd.PersistentFlags().StringVar(&ct.User, "user", "", tr.T("manage this user's crontab instead of your own (root only: crontab -u USER)"))
	cmd.AddCommand(a.cronInstallCmd(ct), a.cronListCmd(ct), a.cronRemoveCmd(ct))
	return cmd
}

func (a *app) cronInstallCmd(ct *schedule.Crontab) *cobra.Command {
	var pipeline, expr string
	cmd := &cobra.Command{
		Use:   "install FILE [--pipeline NAME] [--schedule EXPR]",
		Short: tr.T("Add or replace the crontab line of each scheduled pipeline of FILE"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := filepath.Abs(args[0])
			if err != nil {
				return exitf(2, "%v", err)
			}
			loader, selected, err := a.cronPipelines(cmd, file, pipeline)
			if err != nil {
				return err
			}
			if expr != "" && len(selected) > 1 {
				return exitf(2, "%s defines %d pipelines: say which one --schedule is for with --pipeline", file, len(selected))
			}
			if expr != "" {
				if _, err := schedule.ParseCrontabSchedule(expr); err != nil {
					return exitf(2, "--schedule %q: %v", expr, err)
				}
			}
			self, err := os.Executable()
			if err != nil {
				return exitf(1, "cannot find the mbk binary's path for the crontab line: %v", err)
			}
			lines, err := ct.Read(cmd.Context())
			if err != nil {
				return exitf(1, "%v", err)
			}
			before := strings.Join(lines, "\n")
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			installed := 0
			for _, p := range selected {
				spec := expr
				if spec == "" {
					spec = p.Schedule
				}
				if spec == "" {
					if len(selected) == 1 {
						return exitf(2, "pipeline %q has no schedule: give one with --schedule EXPR (e.g. \"0 2 * * *\")", p.Name)
					}
					fmt.Fprintf(stderr, "mbk: pipeline %q has no schedule: not installed (use --pipeline %s --schedule EXPR)\n", p.Name, p.Name)
					continue
				}
				sched, err := schedule.ParseCrontabSchedule(spec)
				if err != nil {
					return exitf(2, "pipeline %q: schedule %q: %v", p.Name, spec, err)
				}
				line, err := schedule.Line(spec, []string{self, "run", file, "--pipeline", p.Name}, p.Name, file, schedule.KindBackup)
				if err != nil {
					return exitf(2, "%v", err)
				}
				lines = upsertLine(stdout, lines, p.Name, file, schedule.KindBackup, line)
				printNextRuns(stdout, stderr, sched, p.Name, p.Location)
				installed++
				if expr != "" {
					continue // --schedule is the backup's alone
				}
				for _, j := range a.blockJobs(loader, p, file) {
					jsched, err := schedule.ParseCrontabSchedule(j.schedule)
					if err != nil {
						return exitf(2, "pipeline %q: %s schedule %q: %v", p.Name, j.kind, j.schedule, err)
					}
					line, err := schedule.Line(j.schedule, append([]string{self}, j.args...), p.Name, file, j.kind)
					if err != nil {
						return exitf(2, "%v", err)
					}
					lines = upsertLine(stdout, lines, p.Name, file, j.kind, line)
					printNextRuns(stdout, stderr, jsched, p.Name+" ("+j.kind+")", p.Location)
				}
			}
			if installed == 0 {
				return exitf(2, "no pipeline of %s has a schedule: nothing installed (give one with --pipeline NAME --schedule EXPR)", file)
			}
			if strings.Join(lines, "\n") == before {
				return nil // nothing changed: the crontab is not rewritten
			}
			if err := ct.Write(cmd.Context(), lines); err != nil {
				return exitf(1, "%v", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("only this pipeline of the file"))
	cmd.Flags().StringVar(&expr, "schedule", "", tr.T("cron expression to use instead of the pipeline's schedule"))
	return cmd
}

// cronPipelines loads and checks the file as validate does: a line that
// would only fail at 2 a.m. is not installed.
func (a *app) cronPipelines(cmd *cobra.Command, file, name string) (*config.Loader, []*config.Pipeline, error) {
	loader, err := a.loader()
	if err != nil {
		return nil, nil, err
	}
	f, diags := loader.Load(file)
	if f != nil {
		h := a.host(f)
		for _, p := range f.Pipelines {
			if name == "" || p.Name == name {
				_, d := engine.Prepare(cmd.Context(), h, p)
				diags = append(diags, d...)
			}
		}
		h.Close()
	}
	if diags.HasErrors() {
		writeDiags(os.Stderr, loader, diags)
		return nil, nil, exitf(2, "%s is not valid: nothing was installed", file)
	}
	if name == "" {
		return loader, f.Pipelines, nil
	}
	p, err := f.Pipeline(name)
	if err != nil {
		return nil, nil, exitf(2, "%v", err)
	}
	return loader, []*config.Pipeline{p}, nil
}

func (a *app) cronListCmd(ct *schedule.Crontab) *cobra.Command {
	return &cobra.Command{
		Use:   "list [FILE]",
		Short: tr.T("Show mbk's crontab lines (of FILE only, when given) with their next runs"),
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			only := ""
			if len(args) == 1 {
				abs, err := filepath.Abs(args[0])
				if err != nil {
					return exitf(2, "%v", err)
				}
				only = abs
			}
			lines, err := ct.Read(cmd.Context())
			if err != nil {
				return exitf(1, "%v", err)
			}
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			n := 0
			for _, e := range schedule.Entries(lines) {
				if only != "" && e.File != only {
					continue
				}
				n++
				name := e.Pipeline
				if e.Kind != schedule.KindBackup {
					name += " (" + e.Kind + ")"
				}
				fmt.Fprintf(stdout, "%s (%s)\n  %s %s\n", name, e.File, e.Schedule, e.Command)
				sched, err := schedule.ParseCrontabSchedule(e.Schedule)
				if err != nil {
					fmt.Fprintf(stdout, "  warning: cron may not understand this schedule: %v\n", err)
					continue
				}
				loc := a.pipelineLocation(stdout, e)
				printNextRuns(stdout, stderr, sched, e.Pipeline, loc)
			}
			if n == 0 {
				fmt.Fprintln(stdout, "no mbk lines in the crontab")
			}
			return nil
		},
	}
}

// pipelineLocation reads the entry's pipeline for its timezone; when the
// file cannot be read it says so and falls back to the system timezone.
func (a *app) pipelineLocation(w io.Writer, e schedule.Entry) *time.Location {
	loader, err := a.loader()
	if err != nil {
		return time.Local
	}
	f, diags := loader.Load(e.File)
	if diags.HasErrors() {
		fmt.Fprintf(w, "  warning: the pipeline file does not load, so this line fails when cron runs it: %s\n", diags.Errs()[0])
		return time.Local
	}
	p, err := f.Pipeline(e.Pipeline)
	if err != nil {
		fmt.Fprintf(w, "  warning: %v: this line fails when cron runs it\n", err)
		return time.Local
	}
	if p.Schedule != "" && p.Schedule != e.Schedule {
		fmt.Fprintf(w, "  note: the file's schedule is %q; this line was installed with --schedule\n", p.Schedule)
	}
	return p.Location
}

func (a *app) cronRemoveCmd(ct *schedule.Crontab) *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "remove FILE [--pipeline NAME]",
		Short: tr.T("Delete mbk's crontab lines for FILE (or one pipeline of it); nothing else"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The file may be gone already: the path is all remove needs.
			file, err := filepath.Abs(args[0])
			if err != nil {
				return exitf(2, "%v", err)
			}
			lines, err := ct.Read(cmd.Context())
			if err != nil {
				return exitf(1, "%v", err)
			}
			kept, removed := schedule.Remove(lines, pipeline, file)
			if len(removed) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no mbk line for %s in the crontab: nothing to remove\n", describe(pipeline, file))
				return nil
			}
			if err := ct.Write(cmd.Context(), kept); err != nil {
				return exitf(1, "%v", err)
			}
			for _, e := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed: %s\n", e.Line)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", tr.T("only this pipeline's line"))
	return cmd
}

func describe(pipeline, file string) string {
	if pipeline == "" {
		return file
	}
	return fmt.Sprintf("pipeline %q of %s", pipeline, file)
}

// printNextRuns shows when cron will start the line: in the system
// timezone, which cron uses, and in the pipeline's when that differs.
func printNextRuns(stdout, stderr io.Writer, sched cron.Schedule, pipeline string, loc *time.Location) {
	differs := !sameZone(loc, time.Local)
	t := time.Now()
	var next []string
	for i := 0; i < 3; i++ {
		t = schedule.NextIn(sched, time.Local, t)
		if t.IsZero() {
			break
		}
		s := t.Format("Mon 2006-01-02 15:04 MST")
		if differs {
			s += " (" + t.In(loc).Format("15:04 MST") + " pipeline time)"
		}
		next = append(next, s)
	}
	fmt.Fprintf(stdout, "  next runs: %s\n", strings.Join(next, "; "))
	if differs {
		fmt.Fprintf(stderr, "mbk: warning: pipeline %q uses timezone %s, but cron reads the schedule in the system timezone (%s); the times above are when cron starts it\n",
			pipeline, loc, time.Local)
	}
}

// sameZone says whether two locations keep the same offsets over the next
// year, whatever their names ("Local" and "Etc/UTC" may well be one zone).
func sameZone(a, b *time.Location) bool {
	if a == b || a.String() == b.String() {
		return true
	}
	t := time.Now()
	for i := 0; i < 2*366; i++ {
		_, oa := t.In(a).Zone()
		_, ob := t.In(b).Zone()
		if oa != ob {
			return false
		}
		t = t.Add(12 * time.Hour)
	}
	return true
}

// upsertLine puts an mbk line into the crontab's lines and says what it did.
func upsertLine(w io.Writer, lines []string, pipeline, file, kind, line string) []string {
	prev := strings.Join(lines, "\n")
	lines, replaced := schedule.Upsert(lines, pipeline, file, kind, line)
	verb := "installed"
	switch {
	case strings.Join(lines, "\n") == prev:
		verb = "already installed"
	case replaced:
		verb = "replaced"
	}
	fmt.Fprintf(w, "%s: %s\n", verb, line)
	return lines
}

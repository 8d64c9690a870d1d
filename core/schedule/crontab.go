package schedule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/mbk-backup/mbk/core/config"
)

// Crontab reads and writes a user's crontab through the crontab(1) program,
// the one interface every cron implementation keeps.
type Crontab struct {
	// Program is the crontab command; "crontab" when empty.
	Program string
	// User, when set, is passed as -u USER (root managing another user).
	User string
}

// ParseCrontabSchedule checks a schedule for a crontab line: as the
// pipeline grammar does, refusing too what robfig/cron accepts but cron(8)
// does not.
func ParseCrontabSchedule(spec string) (cron.Schedule, error) {
	switch {
	case strings.HasPrefix(spec, "@every"):
		return nil, errors.New("cron has no @every: use five fields, e.g. \"*/30 * * * *\"")
	case strings.Contains(spec, "?"):
		return nil, errors.New("cron has no \"?\": use \"*\"")
	}
	return config.ParseSchedule(spec)
}

// ErrNoCrontabProgram says the crontab command is missing.
var ErrNoCrontabProgram = errors.New("the crontab command is not installed (on Debian: apt-get install cron)")

func (c Crontab) command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	prog := c.Program
	if prog == "" {
		prog = "crontab"
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prog, ErrNoCrontabProgram)
	}
	if c.User != "" {
		args = append([]string{"-u", c.User}, args...)
	}
	return exec.CommandContext(ctx, path, args...), nil
}

// Read returns the crontab's lines; none when the user has no crontab. Any
// other failure is an error: a crontab that could not be read must never be
// written back as if it were empty.
func (c Crontab) Read(ctx context.Context) ([]string, error) {
	cmd, err := c.command(ctx, "-l")
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if strings.HasPrefix(msg, "no crontab for ") {
			return nil, nil
		}
		return nil, fmt.Errorf("read the crontab (%s -l): %v: %s", cmd.Path, err, msg)
	}
	s := strings.TrimSuffix(out.String(), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

// Write installs lines as the whole crontab. crontab(1) checks the syntax
// and refuses a bad file, leaving the old one in place.
func (c Crontab) Write(ctx context.Context, lines []string) error {
	cmd, err := c.command(ctx, "-")
	if err != nil {
		return err
	}
	text := strings.Join(lines, "\n")
	if len(lines) > 0 {
		text += "\n" // cron ignores a last line without its newline
	}
	cmd.Stdin = strings.NewReader(text)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install the crontab (%s -): %v: %s", cmd.Path, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// Entry is one mbk line of a crontab.
type Entry struct {
	Schedule string // the five fields, or a descriptor such as @daily
	Command  string // what cron runs, without the marker
	Pipeline string
	File     string // absolute
	Line     string // the whole line as it is in the crontab
	// Kind says which of the pipeline's jobs the line runs: KindBackup,
	// or a job one of its blocks schedules (KindDrill, KindVerify).
	Kind string
}

// The jobs of a pipeline that have crontab lines of their own.
const (
	KindBackup = ""       // mbk run
	KindDrill  = "drill"  // mbk drill, from the drill block
	KindVerify = "verify" // mbk verify --scheduled, from the verify block
)

// kinds are the jobs a line may run, each tagged by its own prefix.
var kinds = []string{KindBackup, KindDrill, KindVerify}

// prefix tags the lines of a kind of job: "# mbk:" for backups, "#
// mbk-<kind>:" for the others. The shell cron hands the line to ignores
// the comment; mbk finds its own lines by it.
func prefix(kind string) string {
	if kind == KindBackup {
		return "# mbk:"
	}
	return "# mbk-" + kind + ":"
}

// Marker is the tag of a pipeline's line: "# mbk:<pipeline>:<file>", or
// "# mbk-drill:<pipeline>:<file>" for its drill's, and so on.
func Marker(pipeline, file, kind string) string {
	return escapePercent(prefix(kind) + pipeline + ":" + file)
}

// Line builds a crontab line running argv on the schedule, tagged for the
// pipeline's job of that kind. Arguments are quoted for sh, and % is
// escaped: cron turns a bare % into a newline.
func Line(schedule string, argv []string, pipeline, file, kind string) (string, error) {
	for _, s := range append([]string{schedule, pipeline, file}, argv...) {
		if strings.ContainsAny(s, "\n\r") {
			return "", fmt.Errorf("%q: a crontab line cannot hold a line break", s)
		}
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = escapePercent(shellQuote(a))
	}
	return schedule + " " + strings.Join(q, " ") + " " + Marker(pipeline, file, kind), nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@=+,-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func escapePercent(s string) string { return strings.ReplaceAll(s, "%", `\%`) }

// Entries finds mbk's lines.
func Entries(lines []string) []Entry {
	var out []Entry
	for _, l := range lines {
		if e, ok := parseEntry(l); ok {
			out = append(out, e)
		}
	}
	return out
}

func parseEntry(line string) (Entry, bool) {
	t := strings.TrimSpace(line)
	if strings.HasPrefix(t, "#") {
		return Entry{}, false // a comment, even one that mentions mbk
	}
	i, kind := -1, ""
	for _, k := range kinds {
		if at := strings.LastIndex(t, " "+prefix(k)); at > i {
			i, kind = at, k
		}
	}
	if i < 0 {
		return Entry{}, false
	}
	tag := strings.ReplaceAll(t[i+1+len(prefix(kind)):], `\%`, "%")
	// The file is absolute: the tag splits at the first ":/", so a
	// pipeline name may hold a colon.
	j := strings.Index(tag, ":/")
	if j < 0 {
		return Entry{}, false
	}
	pipeline, file := tag[:j], tag[j+1:]
	fields := strings.Fields(t[:i])
	n := 5
	if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
		n = 1
	}
	if len(fields) <= n {
		return Entry{}, false
	}
	return Entry{Schedule: strings.Join(fields[:n], " "), Command: strings.Join(fields[n:], " "),
		Pipeline: pipeline, File: file, Line: line, Kind: kind}, true
}

// Upsert puts line in place of the pipeline's mbk line, or at the end when
// there is none, and leaves every other line as it was. It reports whether
// an existing line was replaced.
func Upsert(lines []string, pipeline, file, kind, line string) ([]string, bool) {
	out := make([]string, 0, len(lines)+1)
	replaced := false
	for _, l := range lines {
		if isEntryOf(l, pipeline, file, kind) {
			if !replaced {
				out = append(out, line)
				replaced = true
			}
			continue // a duplicate left by hand goes: the entry is one line
		}
		out = append(out, l)
	}
	if !replaced {
		out = append(out, line)
	}
	return out, replaced
}

// Remove drops the mbk lines of a pipeline, its drill's and verify's included (of every
// pipeline of the file when pipeline is empty), and nothing else. It returns what it removed.
func Remove(lines []string, pipeline, file string) ([]string, []Entry) {
	var out []string
	var removed []Entry
	for _, l := range lines {
		if e, ok := parseEntry(l); ok && e.File == file && (pipeline == "" || e.Pipeline == pipeline) {
			removed = append(removed, e)
			continue
		}
		out = append(out, l)
	}
	return out, removed
}

func isEntryOf(line, pipeline, file, kind string) bool {
	e, ok := parseEntry(line)
	return ok && e.Pipeline == pipeline && e.File == file && e.Kind == kind
}

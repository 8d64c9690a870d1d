package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Restore options (RestoreRequest.Options), declared in restoreOptions.
const (
	// optTarget names the database to restore into; default: the one dumped.
	optTarget = "target_database"
	// optReplace drops a target database that already holds tables. Without
	// it such a target is refused: loading a dump over other tables would
	// leave a mixture no check could vouch for.
	optReplace = "replace"
	// optSandbox names a drill's sandbox container (sandbox.go) to restore
	// into instead of the stage's server.
	optSandbox = "sandbox_container"
)

// restoreOptions is what `mbk restore` may ask of a dump stage.
var restoreOptions = []sdk.Attribute{
	{Name: optTarget, Type: sdk.String, Flag: "target-database",
		Description: "Database to restore into; default: the stage's database setting, or (with databases or all_databases) the database that was dumped."},
	{Name: optReplace, Type: sdk.Bool, Flag: "clean", Default: cty.False,
		Description: "Drop and recreate a target database that already holds tables, views, routines or events; without it such a target is refused."},
	{Name: optSandbox, Type: sdk.String,
		Description: "Set by `mbk drill`: the sandbox container (labelled " + labelDrill + ") the drill made for this stage. The restore and its checks then go to that container's server, as root through its socket without a password, instead of the server the stage's settings name; any other container is refused."},
}

// restoreOpts are the decoded restore options.
type restoreOpts struct {
	Target  string `cty:"target_database"`
	Replace bool   `cty:"replace"`
	Sandbox string `cty:"sandbox_container"`
}

// Restore loads a dump into a new or empty database, created with the
// recorded character set and collation, then checks that every table the
// dump held is there with the rows it held.
func (p *plugin) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	s, err := decodeSettings(req.Config)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	d, recorded, err := detailsFrom(req.Details)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	var opts restoreOpts
	if err := req.Options.Decode(&opts); err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	target := cmp.Or(opts.Target, defaultTarget(s, d), req.Artifact)
	switch {
	case target == "":
		return sdk.RestoreResult{}, errors.New("restore: no target database: set the option " + optTarget)
	case slices.Contains(systemDatabases, strings.ToLower(target)):
		return sdk.RestoreResult{}, fmt.Errorf("restore: %q is one of the server's own databases; choose another %s", target, optTarget)
	}
	if opts.Sandbox != "" {
		if s, err = inSandbox(ctx, s, opts.Sandbox); err != nil {
			return sdk.RestoreResult{}, fmt.Errorf("restore database %q: %w", target, err)
		}
	}
	ss, err := open(ctx, s)
	if err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("restore database %q: %w", target, err)
	}
	defer ss.Close()
	summary, err := p.restore(ctx, ss, opts, d, recorded, target, s.RestoreJobs, r)
	if err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("restore database %q %s: %w", target, ss.at, err)
	}
	return sdk.RestoreResult{Summary: summary}, nil
}

func (p *plugin) restore(ctx context.Context, ss *session, opts restoreOpts, d details, recorded bool, target string, jobs int, r io.Reader) (string, error) {
	if err := ss.needSQL(); err != nil {
		return "", err
	}
	// The whole dump is checked before the target is touched (guard.go).
	checked, err := checkDump(ctx, r)
	if err != nil {
		return "", err
	}
	defer checked.Close()
	r = checked
	ss.sandbox = ss.hasSandbox(ctx)
	if err := p.prepareTarget(ctx, ss, opts.Replace, d, target); err != nil {
		return "", err
	}

	p.log.Info("restore starting", "database", target, "where", ss.at, "client", ss.sql, "connections", jobs, "sandbox", ss.sandbox)
	if jobs > 1 {
		err := p.load(ctx, ss, target, jobs, r)
		if err != nil && lockConflict(err) && ctx.Err() == nil {
			// InnoDB chose one of our own connections as a deadlock's
			// victim (or a lock wait timed out): the dump is not at
			// fault. The target holds only what this load wrote, so it
			// starts again, empty, over one connection.
			p.log.Warn("the server stopped the parallel load on a lock conflict between its connections: loading again over one connection",
				"database", target, "error", err.Error())
			if err := checked.Rewind(); err != nil {
				return "", fmt.Errorf("read the dump again: %w", err)
			}
			if err := p.prepareTarget(ctx, ss, true, d, target); err != nil {
				return "", err
			}
			jobs = 1
		} else if err != nil {
			return "", err
		}
	}
	if jobs <= 1 {
		var stderr lines
		client := path.Base(ss.sql)
		code, err := ss.run.run(ctx, command{
			args:   ss.sqlCmd("--database=" + target),
			env:    ss.env,
			stdin:  r,
			bulkIn: true,
			stderr: func(l string) {
				p.log.Warn(client+" said", "database", target, "line", stderr.add(l))
			},
		})
		if err != nil {
			return "", err
		}
		if code != 0 {
			return "", errors.New(said(client, stderr.failure(code)))
		}
	}
	if !recorded {
		return fmt.Sprintf("loaded into database %q; not verified: the backup recorded no table list", target), nil
	}
	return p.verify(ctx, ss, d, target)
}

// prepareTarget leaves an empty target database with the recorded
// character set and collation.
func (p *plugin) prepareTarget(ctx context.Context, ss *session, replace bool, d details, target string) error {
	spec := ""
	if d.Charset != "" {
		if !charsetName.MatchString(d.Charset) || !charsetName.MatchString(d.Collation) {
			return fmt.Errorf("the backup's details name an odd character set %q / collation %q", d.Charset, d.Collation)
		}
		spec = fmt.Sprintf(" CHARACTER SET %s COLLATE %s", d.Charset, d.Collation)
	}
	cur, err := ss.database(ctx, target)
	switch {
	case errors.Is(err, errNoDatabase):
		p.log.Info("creating database", "database", target, "charset", d.Charset, "collation", d.Collation)
		_, err = ss.query(ctx, "CREATE DATABASE "+quoteIdent(target)+spec+";")
		return err
	case err != nil:
		return err
	}
	if n := len(cur.Tables) + len(cur.Views) + cur.Routines + cur.Events; n > 0 {
		if !replace {
			return fmt.Errorf("the database already holds %d tables, views, routines or events; restore into a new database (--target-database) or allow replacing it (--clean, option %s)", n, optReplace)
		}
		p.log.Warn("dropping the existing database to replace it", "database", target)
		_, err = ss.query(ctx, "DROP DATABASE "+quoteIdent(target)+"; CREATE DATABASE "+quoteIdent(target)+spec+";")
		return err
	}
	if spec != "" && (cur.Charset != d.Charset || cur.Collation != d.Collation) {
		_, err = ss.query(ctx, "ALTER DATABASE "+quoteIdent(target)+spec+";")
	}
	return err
}

// verify compares the restored database with what the dump held.
func (p *plugin) verify(ctx context.Context, ss *session, d details, target string) (string, error) {
	got, err := ss.database(ctx, target)
	if err != nil {
		return "", fmt.Errorf("check the restored database: %w", err)
	}
	var want []string
	for t := range d.Rows {
		want = append(want, t)
	}
	slices.Sort(want)
	var missing, present []string
	for _, t := range want {
		if slices.Contains(got.Tables, t) {
			present = append(present, t)
		} else {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("after loading, %d of %d tables are missing: %s", len(missing), len(want), strings.Join(missing, ", "))
	}
	counts, err := ss.countRows(ctx, target, present)
	if err != nil {
		return "", fmt.Errorf("count the restored rows: %w", err)
	}
	var wrong []string
	var total int64
	for _, t := range present {
		total += counts[t]
		if counts[t] != d.Rows[t] {
			wrong = append(wrong, fmt.Sprintf("%s (%d rows, the dump held %d)", t, counts[t], d.Rows[t]))
		}
	}
	if len(wrong) > 0 {
		return "", fmt.Errorf("after loading, row counts differ: %s", strings.Join(wrong, ", "))
	}
	if len(got.Tables) != d.Tables {
		return "", fmt.Errorf("after loading, the database has %d tables, the dump held %d", len(got.Tables), d.Tables)
	}
	summary := fmt.Sprintf("restored database %q: verified %d tables and %d rows (exact counts match the dump)", target, len(present), total)
	objects := []struct {
		what      string
		got, want int
	}{
		{"views", len(got.Views), d.Views},
		{"routines", got.Routines, d.Routines},
		{"triggers", got.Triggers, d.Triggers},
		{"events", got.Events, d.Events},
	}
	var found, differ []string
	for _, o := range objects {
		found = append(found, fmt.Sprintf("%d %s", o.got, o.what))
		if o.got != o.want {
			differ = append(differ, fmt.Sprintf("%d %s where the source had %d", o.got, o.what, o.want))
		}
	}
	summary += "; found " + strings.Join(found, ", ")
	if len(differ) > 0 {
		// extra_args such as --skip-triggers leave objects out on purpose,
		// so this is reported, not failed.
		summary += "; note: " + strings.Join(differ, ", ")
		p.log.Warn("restored objects differ from the source", "database", target, "difference", strings.Join(differ, ", "))
	}
	return summary, nil
}

// defaultTarget is where a restore goes without target_database: the
// database the stage names now when it names one (a set of production
// restored into testing's stage goes to testing's database), else the one
// that was dumped.
func defaultTarget(s settings, d details) string {
	if s.Database != "" {
		return s.Database
	}
	return d.Database
}

// lockConflictError matches the server's words for a deadlock or a lock
// wait timeout, as the SQL client prints them.
var lockConflictError = regexp.MustCompile(`ERROR (1213|1205) \(`)

// lockConflict reports whether a load failed because the server stopped it
// on a lock conflict (between the load's own connections), which loading
// again over one connection cannot meet.
func lockConflict(err error) bool { return lockConflictError.MatchString(err.Error()) }

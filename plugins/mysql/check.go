package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mbk-backup/mbk/core/sdk"
)

var _ sdk.Checker = (*plugin)(nil)

// Names of the checks a restored database gets.
const (
	checkRows    = "rows"
	checkObjects = "objects"
	checkVersion = "moodle-version"
	checkPlugins = "moodle-plugins"
)

// maxProblems bounds the problems one check lists; its summary counts them
// all.
const maxProblems = 200

// Check compares a restored database (in a drill's sandbox, or where the
// restore options say) with what its backup recorded, and writes the file
// contents a Moodle database references to req.RefsOut.
func (p *plugin) Check(ctx context.Context, req sdk.CheckRequest) (sdk.CheckResult, error) {
	s, err := decodeSettings(req.Config)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	d, recorded, err := detailsFrom(req.Details)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	if !recorded {
		return sdk.CheckResult{}, errors.New("check: the backup recorded no tables to check against (it was not made by this plugin)")
	}
	var opts restoreOpts
	if err := req.Options.Decode(&opts); err != nil {
		return sdk.CheckResult{}, fmt.Errorf("check: %w", err)
	}
	target := cmp.Or(opts.Target, d.Database, req.Artifact)
	if opts.Sandbox != "" {
		if s, err = inSandbox(ctx, s, opts.Sandbox); err != nil {
			return sdk.CheckResult{}, fmt.Errorf("check database %q: %w", target, err)
		}
	}
	ss, err := open(ctx, s)
	if err != nil {
		return sdk.CheckResult{}, fmt.Errorf("check database %q: %w", target, err)
	}
	defer ss.Close()
	res, err := p.check(ctx, ss, d, target, req.RefsOut)
	if err != nil {
		return sdk.CheckResult{}, fmt.Errorf("check database %q %s: %w", target, ss.at, err)
	}
	return res, nil
}

func (p *plugin) check(ctx context.Context, ss *session, d details, target, refsOut string) (sdk.CheckResult, error) {
	sql := databaseSQL(target)
	if d.Moodle != nil {
		sql += moodleSQL(target, &d.Moodle.Prefix)
	}
	rows, err := ss.query(ctx, sql)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	var dbRows, moodleRows [][]string
	for _, r := range rows {
		if isMoodleRow(r) {
			moodleRows = append(moodleRows, r)
		} else {
			dbRows = append(dbRows, r)
		}
	}
	got, err := parseDatabase(target, dbRows)
	if errors.Is(err, errNoDatabase) {
		msg := fmt.Sprintf("the database %q does not exist", target)
		return sdk.CheckResult{Checks: []sdk.Check{
			{Name: checkRows, Summary: msg}, {Name: checkObjects, Summary: msg},
			{Name: checkVersion, OK: d.Moodle == nil, Summary: msg}, {Name: checkPlugins, OK: d.Moodle == nil, Summary: msg},
		}}, nil
	}
	if err != nil {
		return sdk.CheckResult{}, err
	}
	rowsCheck, err := checkTables(ctx, ss, d, got)
	if err != nil {
		return sdk.CheckResult{}, err
	}
	checks := []sdk.Check{rowsCheck, checkObjectsOf(d, got)}
	if d.Moodle == nil {
		skipped := fmt.Sprintf("skipped: the backup recorded no Moodle site in database %q", d.Database)
		checks = append(checks, sdk.Check{Name: checkVersion, OK: true, Summary: skipped}, sdk.Check{Name: checkPlugins, OK: true, Summary: skipped})
		return sdk.CheckResult{Checks: checks}, nil
	}
	site, why := parseMoodle(moodleRows, &d.Moodle.Prefix)
	checks = append(checks, checkMoodle(d.Moodle, site, why)...)
	if refsOut != "" && slices.Contains(got.Tables, d.Moodle.Prefix+"files") {
		n, err := writeRefs(ctx, ss, target, d.Moodle.Prefix, refsOut)
		if err != nil {
			return sdk.CheckResult{}, fmt.Errorf("list the files %sfiles references: %w", d.Moodle.Prefix, err)
		}
		p.log.Info("file references listed", "database", target, "references", n)
	}
	return sdk.CheckResult{Checks: checks}, nil
}

// checkTables counts the rows of every table and compares each count with
// the one the dump held.
func checkTables(ctx context.Context, ss *session, d details, got database) (sdk.Check, error) {
	c := sdk.Check{Name: checkRows}
	var present []string
	for _, t := range slices.Sorted(maps.Keys(d.Rows)) {
		if slices.Contains(got.Tables, t) {
			present = append(present, t)
		} else {
			c.Problems = append(c.Problems, fmt.Sprintf("table %s is missing (the backup held %d rows)", t, d.Rows[t]))
		}
	}
	for _, t := range got.Tables {
		if _, ok := d.Rows[t]; !ok && !slices.Contains(d.Skipped, t) {
			c.Problems = append(c.Problems, fmt.Sprintf("table %s is not in the backup", t))
		}
	}
	counts, err := ss.countRows(ctx, got.Name, present)
	if err != nil {
		return c, fmt.Errorf("count the rows: %w", err)
	}
	var total int64
	for _, t := range present {
		total += counts[t]
		if counts[t] != d.Rows[t] {
			c.Problems = append(c.Problems, fmt.Sprintf("table %s has %d rows, the backup held %d", t, counts[t], d.Rows[t]))
		}
	}
	if len(c.Problems) > 0 {
		c.Summary = fmt.Sprintf("the tables differ from the %d recorded in %d ways", len(d.Rows), len(c.Problems))
		c.Problems = capped(c.Problems)
		return c, nil
	}
	c.OK = true
	c.Summary = fmt.Sprintf("%d tables, %d rows: every count equals the backup's", len(present), total)
	return c, nil
}

// checkObjectsOf compares the views and stored programs with those the
// backup recorded: by name, or only by number for a set recorded before
// the names were.
func checkObjectsOf(d details, got database) sdk.Check {
	c := sdk.Check{Name: checkObjects}
	have := make([]string, 0, len(got.Views)+len(got.Programs))
	for _, v := range got.Views {
		have = append(have, program{Kind: "VIEW", Name: v}.String())
	}
	for _, o := range got.Programs {
		have = append(have, o.String())
	}
	slices.Sort(have)
	if d.Objects == nil {
		for _, o := range []struct {
			what      string
			got, want int
		}{
			{"views", len(got.Views), d.Views}, {"routines", got.Routines, d.Routines},
			{"triggers", got.Triggers, d.Triggers}, {"events", got.Events, d.Events},
		} {
			if o.got != o.want {
				c.Problems = append(c.Problems, fmt.Sprintf("%d %s where the backup recorded %d", o.got, o.what, o.want))
			}
		}
		if len(c.Problems) > 0 {
			c.Summary = "the numbers of views and stored programs differ (this backup recorded numbers, not names)"
			return c
		}
		c.OK = true
		c.Summary = fmt.Sprintf("%d views and stored programs, as many as recorded (this backup recorded numbers, not names)", len(have))
		return c
	}
	// "TRIGGER t" is "trigger t is missing" to a person.
	say := func(o, what string) string {
		kind, name, _ := strings.Cut(o, " ")
		return strings.ToLower(kind) + " " + name + " " + what
	}
	for _, o := range d.Objects {
		if !slices.Contains(have, o) {
			c.Problems = append(c.Problems, say(o, "is missing"))
		}
	}
	for _, o := range have {
		if !slices.Contains(d.Objects, o) {
			c.Problems = append(c.Problems, say(o, "is not in the backup"))
		}
	}
	if len(c.Problems) > 0 {
		c.Summary = fmt.Sprintf("the views and stored programs differ from the %d recorded in %d ways", len(d.Objects), len(c.Problems))
		c.Problems = capped(c.Problems)
		return c
	}
	c.OK = true
	c.Summary = fmt.Sprintf("%d views and stored programs, as recorded", len(have))
	return c
}

// checkMoodle compares the restored site with the recorded one; got is
// nil, and why says why, when the restored database has none.
func checkMoodle(want, got *moodle, why string) []sdk.Check {
	version := sdk.Check{Name: checkVersion}
	plugins := sdk.Check{Name: checkPlugins}
	if got == nil {
		msg := fmt.Sprintf("the restored database holds no Moodle site with table prefix %q", want.Prefix)
		if why != "" {
			msg += ": " + why
		}
		version.Summary, plugins.Summary = msg, msg
		return []sdk.Check{version, plugins}
	}
	if got.Version != want.Version {
		version.Problems = append(version.Problems, fmt.Sprintf("version %s, the backup had %s", got.Version, want.Version))
	}
	if got.Release != want.Release {
		version.Problems = append(version.Problems, fmt.Sprintf("release %q, the backup had %q", got.Release, want.Release))
	}
	if version.OK = len(version.Problems) == 0; version.OK {
		version.Summary = fmt.Sprintf("Moodle %s (version %s), as recorded", got.Release, got.Version)
	} else {
		version.Summary = "Moodle's version differs from the backup's"
	}
	plugins.Problems = pluginChanges(want.Plugins, got.Plugins)
	if plugins.OK = len(plugins.Problems) == 0; plugins.OK {
		plugins.Summary = fmt.Sprintf("%d plugins at the recorded versions", len(got.Plugins))
	} else {
		plugins.Summary = fmt.Sprintf("%d plugins differ from the %d recorded", len(plugins.Problems), len(want.Plugins))
		plugins.Problems = capped(plugins.Problems)
	}
	return []sdk.Check{version, plugins}
}

func capped(problems []string) []string {
	if len(problems) <= maxProblems {
		return problems
	}
	return append(problems[:maxProblems:maxProblems], fmt.Sprintf("... and %d more", len(problems)-maxProblems))
}

// writeRefs writes one reference per file content the database's files
// table names (rows with content: directories have none), labelled with the
// first of its rows: "mod_resource/content/Plan.pdf". The rows arrive
// sorted by content hash, so repeats are told without remembering any.
func writeRefs(ctx context.Context, ss *session, db, prefix, path string) (int64, error) {
	w, err := sdk.NewRefWriter(path)
	if err != nil {
		return 0, err
	}
	var prev string
	err = ss.queryEach(ctx, "SELECT contenthash, component, filearea, filepath, filename FROM "+quoteIdent(db)+"."+quoteIdent(prefix+"files")+
		" WHERE filesize > 0 ORDER BY contenthash, id;", func(r []string) error {
		if len(r) != 5 {
			return fmt.Errorf("unexpected row %q", r)
		}
		if r[0] == prev {
			return nil
		}
		prev = r[0]
		return w.Add(sdk.Ref{Hash: "sha1:" + r[0], Label: r[1] + "/" + r[2] + r[3] + r[4]})
	})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return w.Count(), err
}

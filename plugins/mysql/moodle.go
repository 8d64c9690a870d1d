package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// moodle is what a backup records about a Moodle database, for the info
// file and for a drill to compare the restored site with: which Moodle it
// ran and which plugins at which versions.
type moodle struct {
	// Prefix is the tables' prefix ("mdl_", "m_"): never assumed, found or
	// configured (moodle_prefix).
	Prefix  string `json:"prefix"`
	Version string `json:"version"` // <prefix>config version, e.g. "2024100700.00"
	Release string `json:"release"` // <prefix>config release, e.g. "4.5 (Build: 20241007)"
	// Plugins are <prefix>config_plugins' version rows: plugin to version.
	Plugins map[string]string `json:"plugins"`
}

// prefixName is what moodle_prefix may hold; "" is a site without one.
var prefixName = regexp.MustCompile(`^[A-Za-z0-9_]*$`)

// Tags of moodleSQL's answer rows.
const (
	tagPrefix = "moodle-prefix"
	tagConfig = "moodle-config"
	tagPlugin = "moodle-plugin"
)

// isMoodleRow tells moodleSQL's rows from the others of the same run.
func isMoodleRow(r []string) bool { return strings.HasPrefix(r[0], "moodle-") }

// moodleSQL asks whether db is a Moodle database and, when it is, for its
// version, release and plugins, in statements that go into the same client
// run as the other facts (each run is an exec that competes with the dump).
// A candidate prefix P has tables Pconfig, Pconfig_plugins and Pfiles; with
// prefix nil every such P is a candidate, else only *prefix. Only when there
// is exactly one, and its tables have Moodle's columns, are they read: the
// read is a prepared statement, since the tables' names are only known on
// the server, so that a database that merely looks like Moodle's can never
// make the query (and the backup with it) fail.
func moodleSQL(db string, prefix *string) string {
	q := quoteString(db)
	from := "SELECT LEFT(TABLE_NAME, CHAR_LENGTH(TABLE_NAME) - 14) AS prefix FROM information_schema.TABLES " +
		"WHERE TABLE_SCHEMA = " + q + " AND TABLE_TYPE = 'BASE TABLE' AND RIGHT(TABLE_NAME, 14) = 'config_plugins'"
	if prefix != nil {
		from = "SELECT " + quoteString(*prefix) + " AS prefix"
	}
	// Table names compare as bytes: the prefix found names the tables the
	// prepared statement reads exactly, whatever the server's collation.
	named := func(suffix string) string {
		return "CAST(CONCAT(p.prefix, '" + suffix + "') AS BINARY)"
	}
	exists := func(suffix string) string {
		return "EXISTS (SELECT 1 FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = " + q + " AND t.TABLE_NAME = " + named(suffix) + ")"
	}
	candidates := "SELECT p.prefix, (SELECT COUNT(*) FROM information_schema.COLUMNS k WHERE k.TABLE_SCHEMA = " + q + " AND (" +
		"(k.TABLE_NAME = " + named("config") + " AND k.COLUMN_NAME IN ('name', 'value')) OR " +
		"(k.TABLE_NAME = " + named("config_plugins") + " AND k.COLUMN_NAME IN ('plugin', 'name', 'value')))) = 5 AS shaped " +
		"FROM (" + from + ") p WHERE " + exists("config") + " AND " + exists("config_plugins") + " AND " + exists("files")

	// The statement to prepare, around the prefix the server found.
	p := "REPLACE(MIN(c.prefix), '`', '``')"
	read := "CONCAT(" +
		quoteString("SELECT '"+tagConfig+"', name, value FROM "+quoteIdent(db)+".`") + ", " + p + ", " +
		quoteString("config` WHERE name IN ('version', 'release') UNION ALL SELECT '"+tagPlugin+"', plugin, value FROM "+quoteIdent(db)+".`") + ", " + p + ", " +
		quoteString("config_plugins` WHERE name = 'version'") + ")"
	return "SELECT '" + tagPrefix + "', c.prefix, c.shaped FROM (" + candidates + ") c;\n" +
		"SET @mbk_moodle = (SELECT IF(COUNT(*) = 1 AND MIN(c.shaped) = 1, " + read + ", 'SELECT 1 FROM DUAL WHERE FALSE') FROM (" + candidates + ") c);\n" +
		"PREPARE mbk_moodle FROM @mbk_moodle;\nEXECUTE mbk_moodle;\nDEALLOCATE PREPARE mbk_moodle;\n"
}

// parseMoodle reads moodleSQL's answer. It returns nil, and why, when the
// database is not one Moodle site's (why is "" when nothing suggested it
// was); configured is the moodle_prefix setting.
func parseMoodle(rows [][]string, configured *string) (m *moodle, why string) {
	var prefixes []string
	shaped := false
	got := &moodle{Plugins: map[string]string{}}
	var config map[string]string
	for _, r := range rows {
		switch {
		case r[0] == tagPrefix && len(r) == 3:
			prefixes = append(prefixes, r[1])
			shaped = r[2] == "1"
		case r[0] == tagConfig && len(r) == 3:
			if config == nil {
				config = map[string]string{}
			}
			config[r[1]] = r[2]
		case r[0] == tagPlugin && len(r) == 3:
			got.Plugins[r[1]] = r[2]
		default:
			return nil, fmt.Sprintf("unexpected answer about the Moodle tables: %q", r)
		}
	}
	switch {
	case len(prefixes) == 0 && configured != nil:
		p := *configured
		return nil, fmt.Sprintf("moodle_prefix is %q, but the database lacks one of the tables %sconfig, %sconfig_plugins, %sfiles", p, p, p, p)
	case len(prefixes) == 0:
		return nil, ""
	case len(prefixes) > 1:
		slices.Sort(prefixes)
		return nil, fmt.Sprintf("several table prefixes have Moodle's tables (%s): set moodle_prefix to say which site to record", strings.Join(quoteAll(prefixes), ", "))
	case !shaped:
		p := prefixes[0]
		return nil, fmt.Sprintf("tables %sconfig and %sconfig_plugins lack Moodle's columns (name, value; plugin, name, value)", p, p)
	case config["version"] == "":
		return nil, fmt.Sprintf("table %sconfig holds no version: Moodle is not installed in it", prefixes[0])
	}
	got.Prefix, got.Version, got.Release = prefixes[0], config["version"], config["release"]
	return got, ""
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// pluginChanges names the plugins added, removed or at another version in
// got than in want, in plugin order.
func pluginChanges(want, got map[string]string) []string {
	names := slices.Sorted(maps.Keys(want))
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		w, inWant := want[n]
		g, inGot := got[n]
		switch {
		case !inGot:
			out = append(out, fmt.Sprintf("plugin %s removed (the backup had version %s)", n, w))
		case !inWant:
			out = append(out, fmt.Sprintf("plugin %s added (version %s; the backup did not have it)", n, g))
		case w != g:
			out = append(out, fmt.Sprintf("plugin %s at version %s, the backup had %s", n, g, w))
		}
	}
	return out
}

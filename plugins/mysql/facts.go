package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// server is what the dump's flags and the info file need to know about the
// server.
type server struct {
	Flavour string // "MariaDB" or "MySQL"
	Version string // as VERSION() says, e.g. "10.11.6-MariaDB-0+deb12u1"
	Comment string // @@version_comment, e.g. "mariadb.org binary distribution"
	Major   int
}

func parseServer(version, comment string) server {
	s := server{Flavour: "MySQL", Version: version, Comment: comment}
	if strings.Contains(strings.ToLower(version+" "+comment), "mariadb") {
		s.Flavour = "MariaDB"
	}
	major, _, _ := strings.Cut(version, ".")
	s.Major, _ = strconv.Atoi(major)
	return s
}

// dumpFlags are the options every dump gets, before extra_args. They do
// not depend on the server, so the dump need not wait for its answers.
//
// --no-tablespaces for any user but root: MySQL 8 and 5.7.31+ want the
// PROCESS privilege to dump tablespaces, which an application user rarely
// has, and InnoDB databases have none worth dumping; MariaDB has none at
// all (its option only says so).
//
// No --hex-blob: binary columns (BLOB, BINARY, VARBINARY) go out as the
// dump tools write them by default, raw bytes in a quoted string with only
// NUL, \n, \r, \\, ', " and ^Z escaped (2.7% more bytes for random data),
// which the SQL client loads back byte for byte under --binary-mode
// (sqlCmd; TestBinaryRoundTrip). Hex doubles every byte, and doubled bytes
// do not shrink back: 32 MiB of already-compressed BLOB data (the usual
// content: images, zipped packages) became 64 MiB hex, stored as 64.0 MiB
// by zstd's fastest level, 61.7 by gzip 1, 35.0 by gzip 6; as raw bytes
// 32.9 MiB at every level, at several GB/s (benchtool levels). Sets made
// with --hex-blob (mbk before #21, or extra_args) restore unchanged.
func dumpFlags(user string) []string {
	flags := []string{
		"--single-transaction", "--quick", "--routines", "--triggers", "--events",
		"--default-character-set=utf8mb4",
	}
	if user != "root" {
		flags = append(flags, "--no-tablespaces")
	}
	return flags
}

// dumpedObjects names the views and stored programs a dump carries, sorted
// (details.Objects): the server's, less the views and the triggers of the
// tables it left out (--ignore-table), and the kinds extra_args turned off.
func dumpedObjects(db database, skipped, extra []string) []string {
	// Never nil: a set that recorded none is told from one made before
	// they were recorded.
	out := []string{}
	for _, v := range db.Views {
		if !slices.Contains(ignoredTables(extra, db.Name), v) {
			out = append(out, program{Kind: "VIEW", Name: v}.String())
		}
	}
	for _, o := range db.Programs {
		switch o.Kind {
		case "PROCEDURE", "FUNCTION":
			if !dumps(extra, "routines") {
				continue
			}
		case "TRIGGER":
			if !dumps(extra, "triggers") || slices.Contains(skipped, o.Table) {
				continue
			}
		case "EVENT":
			if !dumps(extra, "events") {
				continue
			}
		}
		out = append(out, o.String())
	}
	slices.Sort(out)
	return out
}

// ignoredTables are the tables (or views) of db that --ignore-table options
// among extra_args leave out.
func ignoredTables(extra []string, db string) []string {
	var out []string
	for i, a := range extra {
		name, value, hasValue := strings.Cut(a, "=")
		if optionName(name) != "--ignore-table" {
			continue
		}
		if !hasValue && i+1 < len(extra) {
			value = extra[i+1]
		}
		if t, ok := strings.CutPrefix(value, db+"."); ok {
			out = append(out, t)
		}
	}
	return out
}

// optionName is a long option's name as the clients read it: "--Loose_Skip_Triggers"
// is "--skip-triggers".
func optionName(arg string) string {
	if !strings.HasPrefix(arg, "--") {
		return ""
	}
	return "--" + strings.TrimPrefix(strings.ReplaceAll(strings.ToLower(arg[2:]), "_", "-"), "loose-")
}

// dumps reports whether the dump carries what an option dumpFlags gives
// (routines, triggers, events) names, which extra_args may turn off again.
func dumps(extra []string, option string) bool {
	on := true
	for _, a := range extra {
		name, value, hasValue := strings.Cut(a, "=")
		switch optionName(name) {
		case "--skip-" + option, "--disable-" + option:
			on = false
		case "--" + option, "--enable-" + option:
			on = !hasValue || !slices.Contains([]string{"0", "false", "off"}, strings.ToLower(value))
		}
	}
	return on
}

// database is what the server says about one database before the dump.
type database struct {
	Name      string
	Charset   string
	Collation string
	Tables    []string // base tables
	Views     []string
	DataBytes int64
	Routines  int
	Triggers  int
	Events    int
	// Programs are the routines, triggers and events by name.
	Programs []program
}

// program is a stored program of a database.
type program struct {
	Kind  string // "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"
	Name  string
	Table string // a trigger's table
}

// String is how details and checks name it: "TRIGGER mdl_text_ai".
func (o program) String() string { return o.Kind + " " + o.Name }

var errNoDatabase = errors.New("database does not exist")

// database reads a database's facts; errNoDatabase when it does not exist.
func (ss *session) database(ctx context.Context, name string) (database, error) {
	rows, err := ss.query(ctx, databaseSQL(name))
	if err != nil {
		return database{Name: name}, err
	}
	return parseDatabase(name, rows)
}

// facts asks for the server's and a database's facts, Moodle's among them
// (moodleSQL, with the moodle_prefix setting), in one go: every question is
// a client run (an exec, inside a container), and those runs compete with
// the dump for the CPU. errNoDatabase when the database does not exist.
func (ss *session) facts(ctx context.Context, name string, prefix *string) (server, database, [][]string, error) {
	rows, err := ss.query(ctx, "SELECT 'server', VERSION(), @@version_comment;\n"+databaseSQL(name)+moodleSQL(name, prefix))
	if err != nil {
		return server{}, database{Name: name}, nil, err
	}
	var srvRows, dbRows, moodleRows [][]string
	for _, r := range rows {
		switch {
		case r[0] == "server":
			srvRows = append(srvRows, r)
		case isMoodleRow(r):
			moodleRows = append(moodleRows, r)
		default:
			dbRows = append(dbRows, r)
		}
	}
	if len(srvRows) != 1 || len(srvRows[0]) != 3 {
		return server{}, database{Name: name}, nil, fmt.Errorf("unexpected answer to SELECT VERSION(): %q", srvRows)
	}
	db, err := parseDatabase(name, dbRows)
	return parseServer(srvRows[0][1], srvRows[0][2]), db, moodleRows, err
}

// databaseSQL asks for a database's facts; each row starts with a tag
// saying what it answers.
func databaseSQL(name string) string {
	q := quoteString(name)
	return "SELECT 'schema', DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " + q + ";\n" +
		"SELECT 'table', TABLE_NAME, TABLE_TYPE, COALESCE(DATA_LENGTH,0) + COALESCE(INDEX_LENGTH,0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = " + q + " ORDER BY TABLE_NAME;\n" +
		"SELECT 'objects', " +
		"(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = " + q + "), " +
		"(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = " + q + "), " +
		"(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = " + q + ");\n" +
		"SELECT 'program', ROUTINE_TYPE, ROUTINE_NAME, '' FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = " + q + ";\n" +
		"SELECT 'program', 'TRIGGER', TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = " + q + ";\n" +
		"SELECT 'program', 'EVENT', EVENT_NAME, '' FROM information_schema.EVENTS WHERE EVENT_SCHEMA = " + q + ";\n"
}

// parseDatabase reads databaseSQL's answer.
func parseDatabase(name string, rows [][]string) (database, error) {
	db := database{Name: name}
	var schema, objects bool
	for _, r := range rows {
		switch {
		case r[0] == "schema" && len(r) == 3:
			db.Charset, db.Collation, schema = r[1], r[2], true
		case r[0] == "table" && len(r) == 4:
			switch r[2] {
			case "VIEW":
				db.Views = append(db.Views, r[1])
			case "BASE TABLE", "SYSTEM VERSIONED":
				db.Tables = append(db.Tables, r[1])
				n, _ := strconv.ParseInt(r[3], 10, 64)
				db.DataBytes += n
			}
		case r[0] == "objects" && len(r) == 4:
			db.Routines, _ = strconv.Atoi(r[1])
			db.Triggers, _ = strconv.Atoi(r[2])
			db.Events, _ = strconv.Atoi(r[3])
			objects = true
		case r[0] == "program" && len(r) == 4:
			db.Programs = append(db.Programs, program{Kind: r[1], Name: r[2], Table: r[3]})
		default:
			return db, fmt.Errorf("unexpected answer about database %q: %q", name, r)
		}
	}
	if !schema {
		return db, errNoDatabase
	}
	if !objects {
		return db, fmt.Errorf("no answer about the routines, triggers and events of %q", name)
	}
	return db, nil
}

// userDatabases lists the server's databases, less the server's own.
func (ss *session) userDatabases(ctx context.Context) ([]string, error) {
	rows, err := ss.query(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME;")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if !slices.Contains(systemDatabases, strings.ToLower(r[0])) {
			out = append(out, r[0])
		}
	}
	return out, nil
}

// countRows counts the rows of tables exactly, in one statement.
func (ss *session) countRows(ctx context.Context, db string, tables []string) (map[string]int64, error) {
	out := map[string]int64{}
	// Batches keep each statement well below the server's limits even for a
	// database with thousands of tables.
	for batch := range slices.Chunk(tables, 200) {
		var parts []string
		for _, t := range batch {
			parts = append(parts, fmt.Sprintf("SELECT %s, COUNT(*) FROM %s.%s", quoteString(t), quoteIdent(db), quoteIdent(t)))
		}
		rows, err := ss.query(ctx, strings.Join(parts, " UNION ALL ")+";")
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if len(r) != 2 {
				return nil, fmt.Errorf("unexpected answer counting rows: %q", r)
			}
			n, err := strconv.ParseInt(r[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("unexpected row count %q for table %q", r[1], r[0])
			}
			out[r[0]] = n
		}
	}
	return out, nil
}

// charsetName guards names read back from a backup's details before they
// go into SQL.
var charsetName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

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

func (ss *session) server(ctx context.Context) (server, error) {
	rows, err := ss.query(ctx, "SELECT VERSION(), @@version_comment;")
	if err != nil {
		return server{}, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return server{}, fmt.Errorf("unexpected answer to SELECT VERSION(): %q", rows)
	}
	return parseServer(rows[0][0], rows[0][1]), nil
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

// dumpFlags are the options every dump gets, before extra_args.
func dumpFlags(srv server, user string) []string {
	flags := []string{
		"--single-transaction", "--quick", "--routines", "--triggers", "--events",
		"--hex-blob", "--default-character-set=utf8mb4",
	}
	// MySQL 8 wants the PROCESS privilege to dump tablespaces, which an
	// application user rarely has; InnoDB databases have none worth dumping.
	if srv.Flavour == "MySQL" && srv.Major >= 8 && user != "root" {
		flags = append(flags, "--no-tablespaces")
	}
	return flags
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
}

var errNoDatabase = errors.New("database does not exist")

// database reads a database's facts; errNoDatabase when it does not exist.
func (ss *session) database(ctx context.Context, name string) (database, error) {
	db := database{Name: name}
	q := quoteString(name)
	rows, err := ss.query(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+q+";")
	if err != nil {
		return db, err
	}
	if len(rows) == 0 {
		return db, errNoDatabase
	}
	if len(rows[0]) != 2 {
		return db, fmt.Errorf("unexpected answer about the character set of %q: %q", name, rows)
	}
	db.Charset, db.Collation = rows[0][0], rows[0][1]

	rows, err = ss.query(ctx, "SELECT TABLE_NAME, TABLE_TYPE, COALESCE(DATA_LENGTH,0) + COALESCE(INDEX_LENGTH,0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+q+" ORDER BY TABLE_NAME;")
	if err != nil {
		return db, err
	}
	for _, r := range rows {
		if len(r) != 3 {
			return db, fmt.Errorf("unexpected answer about the tables of %q: %q", name, r)
		}
		switch r[1] {
		case "VIEW":
			db.Views = append(db.Views, r[0])
		case "BASE TABLE", "SYSTEM VERSIONED":
			db.Tables = append(db.Tables, r[0])
			n, _ := strconv.ParseInt(r[2], 10, 64)
			db.DataBytes += n
		}
	}

	rows, err = ss.query(ctx, "SELECT "+
		"(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = "+q+"), "+
		"(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "+q+"), "+
		"(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = "+q+");")
	if err != nil {
		return db, err
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return db, fmt.Errorf("unexpected answer about the routines of %q: %q", name, rows)
	}
	db.Routines, _ = strconv.Atoi(rows[0][0])
	db.Triggers, _ = strconv.Atoi(rows[0][1])
	db.Events, _ = strconv.Atoi(rows[0][2])
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

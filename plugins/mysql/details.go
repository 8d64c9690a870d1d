package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
)

// details is what a backup records about one database (manifest.json) and
// what its restore is checked against.
type details struct {
	Flavour       string `json:"flavour"`
	ServerVersion string `json:"server_version"`
	ServerComment string `json:"server_comment,omitempty"`
	Client        string `json:"client"`
	ClientVersion string `json:"client_version,omitempty"`
	// Container is where the server runs, or, over TCP, Address (host:port)
	// and ClientContainer (where the clients ran, "" for mbk's machine).
	Container       string           `json:"container,omitempty"`
	Address         string           `json:"address,omitempty"`
	ClientContainer string           `json:"client_container,omitempty"`
	Database        string           `json:"database"`
	Charset         string           `json:"charset"`
	Collation       string           `json:"collation"`
	Tables          int              `json:"tables"`
	Views           int              `json:"views"`
	Routines        int              `json:"routines"`
	Triggers        int              `json:"triggers"`
	Events          int              `json:"events"`
	Rows            map[string]int64 `json:"rows"`
	TotalRows       int64            `json:"total_rows"`
	DataBytes       int64            `json:"data_bytes"`
	DumpSeconds     float64          `json:"dump_seconds"`
	// Output is how the dump's bytes left its container: "fifo" (a FIFO
	// in the container read from this host) or "exec" (the Engine's exec
	// stream); "" on mbk's machine.
	Output string `json:"output,omitempty"`
	// Skipped lists base tables the server had but the dump left out
	// (e.g. --ignore-table in extra_args).
	Skipped []string `json:"skipped_tables,omitempty"`
	// Objects are the views and stored programs the dump carries, sorted:
	// "VIEW mdl_view", "PROCEDURE p", "FUNCTION f", "TRIGGER t", "EVENT e".
	// Sets made before it was recorded (nil) have only the counts above.
	Objects []string `json:"objects"`
	// Moodle is the Moodle site in the database; nil for another database.
	Moodle *moodle `json:"moodle,omitempty"`
}

// toMap turns details into the JSON-friendly map the SDK carries. Numbers
// stay json.Number so that row counts survive exactly.
func (d details) toMap() (map[string]any, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// detailsFrom reads back what a backup recorded; ok is false when it
// recorded nothing (a set made by something else).
func detailsFrom(m map[string]any) (d details, ok bool, err error) {
	if len(m) == 0 {
		return d, false, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return d, false, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, false, fmt.Errorf("the backup's details are not what this plugin writes: %w", err)
	}
	return d, d.Rows != nil, nil
}

// infoText is the human summary for DB_INFO.txt.
func (d details) infoText() string {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-16s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "Database %q\n", d.Database)
	line("Server", "%s %s (%s) %s", d.Flavour, d.ServerVersion, d.ServerComment, d.place())
	line("Dump client", "%s", cmp.Or(d.ClientVersion, d.Client))
	line("Character set", "%s, collation %s", d.Charset, d.Collation)
	line("Tables", "%d (and %d views, %d routines, %d triggers, %d events)", d.Tables, d.Views, d.Routines, d.Triggers, d.Events)
	line("Rows dumped", "%d", d.TotalRows)
	line("Data size", "%s (data + indexes, as the server estimates it)", humanize.IBytes(uint64(d.DataBytes)))
	switch d.Output {
	case "fifo":
		line("Dump time", "%.1f s (output through a FIFO in the container)", d.DumpSeconds)
	case "exec":
		line("Dump time", "%.1f s (output through the Engine's exec stream)", d.DumpSeconds)
	default:
		line("Dump time", "%.1f s", d.DumpSeconds)
	}
	if len(d.Skipped) > 0 {
		line("Left out", "%s (not in the dump: see extra_args)", strings.Join(d.Skipped, ", "))
	}
	if big := largest(d.Rows, 5); len(big) > 0 {
		line("Largest tables", "%s", strings.Join(big, ", "))
	}
	if m := d.Moodle; m != nil {
		line("Moodle", "%s (version %s), table prefix %q, %d plugins (listed below)", cmp.Or(m.Release, "release unknown"), m.Version, m.Prefix, len(m.Plugins))
	}
	fmt.Fprintf(&b, "  To restore by hand: CREATE DATABASE %s CHARACTER SET %s COLLATE %s;\n", quoteIdent(d.Database), d.Charset, d.Collation)
	fmt.Fprintf(&b, "    then: gunzip -c %s_<timestamp>.sql.gz | %s -u <user> %s\n", d.Database, d.restoreCommand(), d.Database)
	if m := d.Moodle; m != nil {
		fmt.Fprintf(&b, "  Moodle plugins and their versions (%sconfig_plugins):\n", m.Prefix)
		for _, n := range slices.Sorted(maps.Keys(m.Plugins)) {
			fmt.Fprintf(&b, "    %-40s %s\n", n, m.Plugins[n])
		}
	}
	return b.String()
}

// place says where the server was, as the info file tells it.
func (d details) place() string {
	switch {
	case d.Address == "":
		return fmt.Sprintf("in container %q", d.Container)
	case d.ClientContainer != "":
		return fmt.Sprintf("at %s (clients run in container %q)", d.Address, d.ClientContainer)
	}
	return "at " + d.Address + " (clients run on mbk's host)"
}

// restoreCommand is the SQL client's command line a person would load the
// dump with, without user and database.
func (d details) restoreCommand() string {
	sql := sqlClientFor(d.Client)
	if d.Address == "" {
		return fmt.Sprintf("docker exec -i %s %s", d.Container, sql)
	}
	host, port, _ := net.SplitHostPort(d.Address)
	cmd := fmt.Sprintf("%s --host=%s --port=%s --protocol=TCP", sql, host, port)
	if d.ClientContainer != "" {
		return fmt.Sprintf("docker exec -i %s %s", d.ClientContainer, cmd)
	}
	// -p asks on the terminal; the dump comes through stdin.
	return cmd + " -p"
}

func sqlClientFor(dumpClient string) string {
	if strings.Contains(dumpClient, "mysqldump") {
		return "mysql"
	}
	return "mariadb"
}

// largest names the n tables with the most rows, with their counts.
func largest(rows map[string]int64, n int) []string {
	names := make([]string, 0, len(rows))
	for t, c := range rows {
		if c > 0 {
			names = append(names, t)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(rows[b], rows[a]), cmp.Compare(a, b))
	})
	var out []string
	for _, t := range names[:min(n, len(names))] {
		out = append(out, fmt.Sprintf("%s (%d rows)", t, rows[t]))
	}
	return out
}

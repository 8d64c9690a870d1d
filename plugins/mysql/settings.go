// Settings of a mysql dump stage.
//
// Where the server is (exactly one of container, compose_project +
// compose_service, host):
//
//	container                          name or ID of the server's container; the clients run
//	                                   inside it through the Docker exec API and use its socket
//	compose_project + compose_service  the same, found by Docker Compose's labels
//	host + port                        a server reached over TCP (port defaults to 3306); the
//	                                   clients run on mbk's machine, from its PATH, connecting
//	                                   with --host --port --protocol=TCP
//	client_container                   with host only: run the clients inside this container
//	                                   instead (a sidecar that has them, or the server's own
//	                                   container); host and port are then as it sees them
//
// What to dump (exactly one of):
//
//	database       one database
//	databases      several, one artifact each
//	all_databases  every database but information_schema, performance_schema, sys, mysql
//
// How:
//
//	user        database user (default root)
//	password    sensitive; reaches the client only as MYSQL_PWD in its environment (the exec's,
//	            or the child process's on mbk's machine), never in its arguments. Without it an
//	            option file (~/.my.cnf where the client runs) may supply one; on mbk's machine
//	            a MYSQL_PWD mbk itself inherited is not passed on.
//	extra_args  more options for the dump client; those that would break the stream, its
//	            trailer or the choice of databases are refused, and over TCP so are those that
//	            pick another server (--host, --port, --socket, --protocol)
//	client      the dump program; default: the first of mariadb-dump, mysqldump found where
//	            the clients run. The SQL client (queries, restore) is mariadb or mysql.
//	restore_jobs  connections a restore loads through side by side (default 2; see load.go)
//	moodle_prefix the table prefix of a Moodle database (moodle.go); default: found by its
//	            tables, for the Moodle facts a backup records and a drill checks
//
// Inside a container the dump's output comes out through a FIFO in the
// container's /tmp, read from this host (docker.NewPipe), and through the
// exec stream where that cannot work; DB_INFO.txt records which.
//
// On mbk's machine each client runs in a process group of its own; when the
// run is cancelled the group gets SIGTERM, then SIGKILL after a grace period,
// as the exec path does inside a container. TLS has no setting yet: options
// in an option file's [client] group (~/.my.cnf where the clients run) reach
// both clients, whereas extra_args reach only the dump client, not the SQL
// client that runs the queries and the restore.

package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/sdk"
)

// settings is the decoded stage body.
type settings struct {
	Container       string   `cty:"container"`
	ComposeProject  string   `cty:"compose_project"`
	ComposeService  string   `cty:"compose_service"`
	Host            string   `cty:"host"`
	Port            *int     `cty:"port"` // nil: defaultPort; a pointer so that a port without a host is caught
	ClientContainer string   `cty:"client_container"`
	Database        string   `cty:"database"`
	Databases       []string `cty:"databases"`
	AllDatabases    bool     `cty:"all_databases"`
	User            string   `cty:"user"`
	Password        string   `cty:"password"`
	ExtraArgs       []string `cty:"extra_args"`
	Client          string   `cty:"client"`
	RestoreJobs     int      `cty:"restore_jobs"`
	MoodlePrefix    *string  `cty:"moodle_prefix"` // nil: detect it
}

// defaultPort is the server's port when host is set and port is not.
const defaultPort = 3306

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "container", Type: sdk.String,
		Description: "Name or ID of the container the database server runs in. Use this or compose_project + compose_service."},
	{Name: "compose_project", Type: sdk.String,
		Description: "Docker Compose project of the database container (with compose_service)."},
	{Name: "compose_service", Type: sdk.String,
		Description: "Docker Compose service of the database container (with compose_project)."},
	{Name: "host", Type: sdk.String,
		Description: "Host name or IP address of a database server reached over TCP, instead of container or compose_project + compose_service. The clients then run on mbk's machine (from its PATH), or in client_container."},
	{Name: "port", Type: sdk.Int,
		Description: "TCP port of the server at host. Default: 3306."},
	{Name: "client_container", Type: sdk.String,
		Description: "With host: run the clients inside this container (through the Docker exec API) instead of on mbk's machine; host and port are then as that container sees them."},
	{Name: "database", Type: sdk.String,
		Description: "The database to dump. Use exactly one of database, databases, all_databases."},
	{Name: "databases", Type: sdk.List(sdk.String),
		Description: "Several databases to dump, one artifact each."},
	{Name: "all_databases", Type: sdk.Bool,
		Description: "Dump every database on the server except information_schema, performance_schema, sys and mysql."},
	{Name: "user", Type: sdk.String, Default: cty.StringVal("root"),
		Description: "Database user the dump runs as."},
	{Name: "password", Type: sdk.String, Sensitive: true,
		Description: "Password of user. It reaches the client only as MYSQL_PWD in its environment, never on a command line. Leave it out to use an option file (~/.my.cnf) where the client runs."},
	{Name: "extra_args", Type: sdk.List(sdk.String),
		Description: "More options for the dump client (not for the SQL client), e.g. [\"--ignore-table=moodle.mdl_cache\"]. Passwords are refused here."},
	{Name: "client", Type: sdk.String,
		Description: "Dump program: \"mariadb-dump\" or \"mysqldump\" (or a path), where the clients run. Default: the first of mariadb-dump, mysqldump found there."},
	{Name: "restore_jobs", Type: sdk.Int, Default: cty.NumberIntVal(defaultRestoreJobs),
		Description: "Connections a restore loads the dump through, side by side (1 to 16; default 2). The server runs each on one thread: 2 suits a 2-core server, 1 loads the dump as one stream, as `mariadb < dump.sql` does."},
	{Name: "moodle_prefix", Type: sdk.String,
		Description: "Table prefix of a Moodle database (\"mdl_\", \"m_\"), whose version, release and plugins a backup records and a drill checks. Default: the prefix P for which Pconfig, Pconfig_plugins and Pfiles exist, when exactly one does."},
}}

// defaultRestoreJobs: a 2-core server is the common case.
const defaultRestoreJobs = 2

func (p *plugin) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindDump {
		return sdk.Schema{}, fmt.Errorf("the mysql plugin serves only the %q kind, not %q", sdk.KindDump, kind)
	}
	return sdk.Schema{Attributes: schema.Attributes, RestoreOptions: restoreOptions}, nil
}

// systemDatabases are never dumped by all_databases: they belong to the server.
var systemDatabases = []string{"information_schema", "performance_schema", "sys", "mysql"}

func decodeSettings(cfg sdk.Config) (settings, error) {
	s := settings{User: "root", RestoreJobs: defaultRestoreJobs}
	if err := cfg.Decode(&s); err != nil {
		return s, err
	}
	return s, nil
}

// port is the server's TCP port when host is set.
func (s settings) port() int {
	if s.Port == nil {
		return defaultPort
	}
	return *s.Port
}

func (s settings) target() docker.Target {
	return docker.Target{Container: s.Container, ComposeProject: s.ComposeProject, ComposeService: s.ComposeService}
}

// env is added to the clients' environment. With no password configured
// MYSQL_PWD stays unset, so an option file (~/.my.cnf) can supply one.
func (s settings) env() []string {
	if s.Password == "" {
		return nil
	}
	return []string{"MYSQL_PWD=" + s.Password}
}

// configured lists the databases named in the settings; nil for all_databases.
func (s settings) configured() []string {
	if s.Database != "" {
		return []string{s.Database}
	}
	return s.Databases
}

func (p *plugin) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	s, err := decodeSettings(cfg)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	return s.validate()
}

func (s settings) validate() sdk.Diagnostics {
	var ds sdk.Diagnostics
	compose := s.ComposeProject != "" || s.ComposeService != ""
	switch {
	case s.Host != "" && (s.Container != "" || compose):
		ds = append(ds, sdk.Errorf("host", "set either host (and port) or container / compose_project + compose_service, not both; to run the clients in a container next to a TCP server, use client_container"))
	case s.Container != "" && compose:
		ds = append(ds, sdk.Errorf("container", "set either container or compose_project + compose_service, not both"))
	case s.Container == "" && !compose && s.Host == "":
		ds = append(ds, sdk.Errorf("container", "say where the database server runs: container, compose_project + compose_service, or host (and port)"))
	case compose && s.ComposeProject == "":
		ds = append(ds, sdk.Errorf("compose_project", "compose_service needs compose_project too"))
	case compose && s.ComposeService == "":
		ds = append(ds, sdk.Errorf("compose_service", "compose_project needs compose_service too"))
	}
	ds = append(ds, s.validateTCP()...)

	n := 0
	if s.Database != "" {
		n++
	}
	if s.Databases != nil {
		n++
	}
	if s.AllDatabases {
		n++
	}
	switch {
	case n == 0:
		ds = append(ds, sdk.Errorf("database", "say what to dump: database, databases or all_databases = true"))
	case n > 1:
		ds = append(ds, sdk.Errorf("database", "set only one of database, databases and all_databases"))
	case s.Databases != nil && len(s.Databases) == 0:
		ds = append(ds, sdk.Errorf("databases", "databases is empty"))
	}
	seen := map[string]bool{}
	for _, db := range s.Databases {
		switch {
		case db == "":
			ds = append(ds, sdk.Errorf("databases", "databases holds an empty name"))
		case seen[db]:
			ds = append(ds, sdk.Errorf("databases", "database %q is listed twice", db))
		}
		seen[db] = true
	}
	if s.User == "" {
		ds = append(ds, sdk.Errorf("user", "user is empty"))
	}
	if s.MoodlePrefix != nil && !prefixName.MatchString(*s.MoodlePrefix) {
		ds = append(ds, sdk.Errorf("moodle_prefix", "moodle_prefix %q is not a table prefix (letters, digits and _)", *s.MoodlePrefix))
	}
	if s.RestoreJobs < 1 || s.RestoreJobs > 16 {
		ds = append(ds, sdk.Errorf("restore_jobs", "restore_jobs must be 1 to 16, not %d", s.RestoreJobs))
	}
	if s.Client != "" && !slices.Contains([]string{"mariadb-dump", "mysqldump"}, s.Client) {
		ds = append(ds, sdk.Diagnostic{Attribute: "client",
			Summary: fmt.Sprintf("client %q is neither mariadb-dump nor mysqldump; mbk will run it with mysqldump's options", s.Client)})
	}
	for _, a := range s.ExtraArgs {
		why := refusedArg(a)
		if why == "" && s.Host != "" {
			why = refusedOverTCP(a)
		}
		if why != "" {
			ds = append(ds, sdk.Errorf("extra_args", "extra_args: %s", why))
		}
	}
	return ds
}

// validateTCP checks host, port and client_container.
func (s settings) validateTCP() sdk.Diagnostics {
	var ds sdk.Diagnostics
	if s.Host == "" {
		if s.Port != nil {
			ds = append(ds, sdk.Errorf("port", "port needs host"))
		}
		if s.ClientContainer != "" {
			ds = append(ds, sdk.Errorf("client_container", "client_container needs host: it runs the clients that connect to host and port"))
		}
		return ds
	}
	switch {
	// An IPv6 address holds colons too, but parses as an IP.
	case strings.Contains(s.Host, ":") && net.ParseIP(s.Host) == nil:
		ds = append(ds, sdk.Errorf("host", "host %q is not a host name or an IP address; put the port in port", s.Host))
	case strings.ContainsAny(s.Host, " \t\n/"):
		ds = append(ds, sdk.Errorf("host", "host %q is not a host name or an IP address", s.Host))
	}
	if p := s.port(); p < 1 || p > 65535 {
		ds = append(ds, sdk.Errorf("port", "port %d is not a TCP port (1 to 65535)", p))
	}
	return ds
}

// refusedOverTCP says why an option cannot be passed through when host and
// port say where the server is, or "": the option would send the dump
// elsewhere than the queries, the restore and the details say.
func refusedOverTCP(arg string) string {
	for _, o := range shortOptions(arg) {
		switch o {
		case 'h', 'P', 'S':
			return fmt.Sprintf("-%c changes which server is dumped; set host and port instead", o)
		}
	}
	name, _, ok := longOption(arg)
	if !ok {
		return ""
	}
	for _, o := range []string{"host", "port", "socket", "protocol"} {
		if len(name) >= 2 && strings.HasPrefix(o, name) {
			return fmt.Sprintf("--%s changes which server is dumped; set host and port instead", name)
		}
	}
	return ""
}

// passwordRefused is why no option may carry a password.
const passwordRefused = "a password option (%s) is not allowed: set password, which reaches the client only through its environment"

// refusedArg says why a dump option cannot be passed through, or "". The
// message never repeats the argument, only the option's letter or name: the
// rest may hold a password. An argument holding blanks is checked word by
// word too: written as for a shell ("-uroot -pX"), it may hold a password
// option that some client would split out.
func refusedArg(arg string) string {
	if strings.ContainsAny(arg, " \t\n\r\v\f") {
		for _, word := range strings.Fields(arg) {
			if why := refusedArg(word); why != "" {
				return why
			}
		}
	}
	for _, o := range shortOptions(arg) {
		switch o {
		case 'p':
			return fmt.Sprintf(passwordRefused, "-p")
		case 'r', 'T':
			return fmt.Sprintf("-%c would write the dump to files where the client runs instead of the stream", o)
		case 'X':
			return "-X (XML output) is not SQL"
		case 'A', 'B':
			return fmt.Sprintf("-%c changes which databases are dumped; use database, databases or all_databases", o)
		}
	}
	name, value, ok := longOption(arg)
	if !ok {
		return ""
	}
	hasValue := strings.Contains(arg, "=")
	// The clients accept any unambiguous prefix of an option name, so
	// "--pass" is --password, and a modifier before it.
	prefixOf := func(full string) bool { return name != "" && strings.HasPrefix(full, name) }
	bare := name
	for _, m := range []string{"skip-", "enable-", "disable-", "maximum-"} {
		bare = strings.TrimPrefix(bare, m)
	}
	switch {
	case bare != "" && strings.HasPrefix("password", bare):
		return fmt.Sprintf(passwordRefused, "--password")
	case prefixOf("result-file"), prefixOf("tab"):
		return fmt.Sprintf("--%s would write the dump to files where the client runs instead of the stream", name)
	case prefixOf("xml"):
		return "--xml output is not SQL"
	case prefixOf("databases"), prefixOf("all-databases"):
		return fmt.Sprintf("--%s changes which databases are dumped; use database, databases or all_databases", name)
	case prefixOf("compact"), name == "skip-comments", name == "disable-comments",
		name == "comments" && hasValue && slices.Contains([]string{"0", "false", "off"}, strings.ToLower(value)):
		return fmt.Sprintf("--%s drops the \"-- Dump completed\" trailer that proves a dump finished", name)
	}
	return ""
}

// argShortOptions are the dump clients' short options that take a value
// (mysqldump's and mariadb-dump's -h -P -S -u -r -T -w -O, -p and -# whose
// value is optional): in "-uxp" the p is part of the user name, in "-cpX"
// it is -p with the password X.
const argShortOptions = "hPSurTwOp#"

// shortOptions returns the option letters of a group of short options as
// the clients read it ("-cpX" is -c, then -p with the value X): every letter
// up to and including the first that takes a value, the rest being that
// value. A letter the table does not know is read as one that takes no
// value, so that a p after it is still found. Not a short option: nil.
func shortOptions(arg string) []byte {
	if len(arg) < 2 || arg[0] != '-' || arg[1] == '-' {
		return nil
	}
	var out []byte
	for i := 1; i < len(arg); i++ {
		out = append(out, arg[i])
		if strings.IndexByte(argShortOptions, arg[i]) >= 0 {
			break
		}
	}
	return out
}

// longOption reads "--name[=value]": the name lower-cased, with "_" as
// "-" and without the "loose-" prefix, as the clients read it.
func longOption(arg string) (name, value string, ok bool) {
	rest, ok := strings.CutPrefix(arg, "--")
	if !ok {
		return "", "", false
	}
	name, value, _ = strings.Cut(rest, "=")
	name = strings.ReplaceAll(strings.ToLower(name), "_", "-")
	return strings.TrimPrefix(name, "loose-"), value, true
}

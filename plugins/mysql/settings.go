package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/sdk"
)

// settings is the decoded stage body.
type settings struct {
	Container      string   `cty:"container"`
	ComposeProject string   `cty:"compose_project"`
	ComposeService string   `cty:"compose_service"`
	Database       string   `cty:"database"`
	Databases      []string `cty:"databases"`
	AllDatabases   bool     `cty:"all_databases"`
	User           string   `cty:"user"`
	Password       string   `cty:"password"`
	ExtraArgs      []string `cty:"extra_args"`
	Client         string   `cty:"client"`
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "container", Type: cty.String,
		Description: "Name or ID of the container the database server runs in. Use this or compose_project + compose_service."},
	{Name: "compose_project", Type: cty.String,
		Description: "Docker Compose project of the database container (with compose_service)."},
	{Name: "compose_service", Type: cty.String,
		Description: "Docker Compose service of the database container (with compose_project)."},
	{Name: "database", Type: cty.String,
		Description: "The database to dump. Use exactly one of database, databases, all_databases."},
	{Name: "databases", Type: cty.List(cty.String),
		Description: "Several databases to dump, one artifact each."},
	{Name: "all_databases", Type: cty.Bool,
		Description: "Dump every database on the server except information_schema, performance_schema, sys and mysql."},
	{Name: "user", Type: cty.String, Default: cty.StringVal("root"),
		Description: "Database user the dump runs as."},
	{Name: "password", Type: cty.String, Sensitive: true,
		Description: "Password of user. It reaches the client only as MYSQL_PWD in the exec's environment, never on a command line. Leave it out to use an option file inside the container."},
	{Name: "extra_args", Type: cty.List(cty.String),
		Description: "More options for the dump client (not for the SQL client), e.g. [\"--ignore-table=moodle.mdl_cache\"]. Passwords are refused here."},
	{Name: "client", Type: cty.String,
		Description: "Dump program inside the container: \"mariadb-dump\" or \"mysqldump\" (or a path). Default: the first of mariadb-dump, mysqldump found there."},
}}

func (p *plugin) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindDump {
		return sdk.Schema{}, fmt.Errorf("the mysql plugin serves only the %q kind, not %q", sdk.KindDump, kind)
	}
	return schema, nil
}

// systemDatabases are never dumped by all_databases: they belong to the server.
var systemDatabases = []string{"information_schema", "performance_schema", "sys", "mysql"}

func decodeSettings(cfg sdk.Config) (settings, error) {
	s := settings{User: "root"}
	if err := cfg.Decode(&s); err != nil {
		return s, err
	}
	return s, nil
}

func (s settings) target() docker.Target {
	return docker.Target{Container: s.Container, ComposeProject: s.ComposeProject, ComposeService: s.ComposeService}
}

// env is the exec environment. With no password configured MYSQL_PWD stays
// unset, so an option file inside the container (~/.my.cnf) can supply one.
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
	case s.Container != "" && compose:
		ds = append(ds, sdk.Errorf("container", "set either container or compose_project + compose_service, not both"))
	case s.Container == "" && !compose:
		ds = append(ds, sdk.Errorf("container", "say where the database server runs: container, or compose_project + compose_service"))
	case compose && s.ComposeProject == "":
		ds = append(ds, sdk.Errorf("compose_project", "compose_service needs compose_project too"))
	case compose && s.ComposeService == "":
		ds = append(ds, sdk.Errorf("compose_service", "compose_project needs compose_service too"))
	}

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
	if s.Client != "" && !slices.Contains([]string{"mariadb-dump", "mysqldump"}, s.Client) {
		ds = append(ds, sdk.Diagnostic{Attribute: "client",
			Summary: fmt.Sprintf("client %q is neither mariadb-dump nor mysqldump; mbk will run it with mysqldump's options", s.Client)})
	}
	for _, a := range s.ExtraArgs {
		if why := refusedArg(a); why != "" {
			ds = append(ds, sdk.Errorf("extra_args", "extra_args: %s", why))
		}
	}
	return ds
}

// refusedArg says why a dump option cannot be passed through, or "". The
// message never repeats the argument: it may hold a password.
func refusedArg(arg string) string {
	if !strings.HasPrefix(arg, "-") {
		return ""
	}
	if !strings.HasPrefix(arg, "--") {
		if len(arg) < 2 {
			return ""
		}
		switch arg[1] {
		case 'p':
			return "a password option (-p) is not allowed: set password, which reaches the client only through its environment"
		case 'r', 'T':
			return fmt.Sprintf("%s would write the dump to files inside the container instead of the stream", arg[:2])
		case 'X':
			return "-X (XML output) is not SQL"
		case 'A', 'B':
			return fmt.Sprintf("%s changes which databases are dumped; use database, databases or all_databases", arg[:2])
		}
		return ""
	}
	name, value, hasValue := strings.Cut(arg[2:], "=")
	name = strings.ReplaceAll(strings.ToLower(name), "_", "-")
	name = strings.TrimPrefix(name, "loose-")
	// The clients accept any unambiguous prefix of an option name, so
	// "--pass" is --password.
	prefixOf := func(full string) bool { return name != "" && strings.HasPrefix(full, name) }
	switch {
	case prefixOf("password"):
		return "a password option (--password) is not allowed: set password, which reaches the client only through its environment"
	case prefixOf("result-file"), prefixOf("tab"):
		return fmt.Sprintf("--%s would write the dump to files inside the container instead of the stream", name)
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

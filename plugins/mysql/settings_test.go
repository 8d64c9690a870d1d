package main

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

func TestValidateConfig(t *testing.T) {
	p := newPlugin(t)
	list := func(s ...string) cty.Value {
		var vs []cty.Value
		for _, x := range s {
			vs = append(vs, cty.StringVal(x))
		}
		if len(vs) == 0 {
			return cty.ListValEmpty(cty.String)
		}
		return cty.ListVal(vs)
	}
	db := cty.StringVal("moodle")
	ctr := cty.StringVal("db")
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		attr  string // attribute of the expected error; "" for none
		want  string // part of its summary
	}{
		{"container and database", map[string]cty.Value{"container": ctr, "database": db}, "", ""},
		{"compose and databases", map[string]cty.Value{"compose_project": cty.StringVal("site"), "compose_service": cty.StringVal("db"), "databases": list("a", "b")}, "", ""},
		{"all databases", map[string]cty.Value{"container": ctr, "all_databases": cty.True}, "", ""},
		{"harmless extra args", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--ignore-table=moodle.mdl_cache", "--max-allowed-packet=1G", "--port=3307", "-P3307")}, "", ""},
		{"no place", map[string]cty.Value{"database": db}, "container", "where the database server runs"},
		{"both places", map[string]cty.Value{"container": ctr, "compose_project": cty.StringVal("p"), "compose_service": cty.StringVal("s"), "database": db}, "container", "not both"},
		{"compose without service", map[string]cty.Value{"compose_project": cty.StringVal("p"), "database": db}, "compose_service", "needs compose_service"},
		{"compose without project", map[string]cty.Value{"compose_service": cty.StringVal("s"), "database": db}, "compose_project", "needs compose_project"},
		{"nothing to dump", map[string]cty.Value{"container": ctr}, "database", "say what to dump"},
		{"database and all", map[string]cty.Value{"container": ctr, "database": db, "all_databases": cty.True}, "database", "only one"},
		{"database and databases", map[string]cty.Value{"container": ctr, "database": db, "databases": list("x")}, "database", "only one"},
		{"empty databases", map[string]cty.Value{"container": ctr, "databases": list()}, "databases", "empty"},
		{"duplicate databases", map[string]cty.Value{"container": ctr, "databases": list("a", "a")}, "databases", "twice"},
		{"empty user", map[string]cty.Value{"container": ctr, "database": db, "user": cty.StringVal("")}, "user", "empty"},
		{"password long", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--password=s3cret")}, "extra_args", "password"},
		{"password prefix", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--pass=s3cret")}, "extra_args", "password"},
		{"password loose underscore", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--loose_password")}, "extra_args", "password"},
		{"password short", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("-ps3cret")}, "extra_args", "password"},
		{"result file", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--result-file=/tmp/x.sql")}, "extra_args", "write the dump to files"},
		{"tab", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("-T", "/tmp")}, "extra_args", "write the dump to files"},
		{"xml", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--xml")}, "extra_args", "not SQL"},
		{"databases flag", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--databases")}, "extra_args", "which databases"},
		{"skip comments", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--skip-comments")}, "extra_args", "trailer"},
		{"comments off", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--comments=0")}, "extra_args", "trailer"},
		{"compact", map[string]cty.Value{"container": ctr, "database": db, "extra_args": list("--compact")}, "extra_args", "trailer"},
		{"host", map[string]cty.Value{"host": cty.StringVal("db.example.org"), "database": db}, "", ""},
		{"host and port", map[string]cty.Value{"host": cty.StringVal("127.0.0.1"), "port": cty.NumberIntVal(3307), "database": db}, "", ""},
		{"IPv6 host", map[string]cty.Value{"host": cty.StringVal("::1"), "database": db}, "", ""},
		{"host and client container", map[string]cty.Value{"host": cty.StringVal("db"), "client_container": cty.StringVal("tools"), "database": db}, "", ""},
		{"harmless extra args over TCP", map[string]cty.Value{"host": cty.StringVal("db"), "database": db, "extra_args": list("--hex-blob", "--skip-triggers", "--ssl")}, "", ""},
		{"host and container", map[string]cty.Value{"host": cty.StringVal("db"), "container": ctr, "database": db}, "host", "not both"},
		{"host and compose", map[string]cty.Value{"host": cty.StringVal("db"), "compose_project": cty.StringVal("p"), "compose_service": cty.StringVal("s"), "database": db}, "host", "not both"},
		{"port without host", map[string]cty.Value{"container": ctr, "port": cty.NumberIntVal(3306), "database": db}, "port", "needs host"},
		{"client container without host", map[string]cty.Value{"container": ctr, "client_container": cty.StringVal("tools"), "database": db}, "client_container", "needs host"},
		{"port in host", map[string]cty.Value{"host": cty.StringVal("db:3306"), "database": db}, "host", "put the port in port"},
		{"port out of range", map[string]cty.Value{"host": cty.StringVal("db"), "port": cty.NumberIntVal(70000), "database": db}, "port", "not a TCP port"},
		{"port zero", map[string]cty.Value{"host": cty.StringVal("db"), "port": cty.NumberIntVal(0), "database": db}, "port", "not a TCP port"},
		{"host in extra args over TCP", map[string]cty.Value{"host": cty.StringVal("db"), "database": db, "extra_args": list("--host=other")}, "extra_args", "set host and port instead"},
		{"short port in extra args over TCP", map[string]cty.Value{"host": cty.StringVal("db"), "database": db, "extra_args": list("-P3307")}, "extra_args", "set host and port instead"},
		{"socket in extra args over TCP", map[string]cty.Value{"host": cty.StringVal("db"), "database": db, "extra_args": list("--socket=/run/x.sock")}, "extra_args", "set host and port instead"},
		{"protocol in extra args over TCP", map[string]cty.Value{"host": cty.StringVal("db"), "database": db, "extra_args": list("--loose_protocol=socket")}, "extra_args", "set host and port instead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := p.ValidateConfig(context.Background(), config(t, tt.attrs))
			if tt.attr == "" {
				if ds.HasErrors() {
					t.Fatalf("unexpected errors: %+v", ds)
				}
				return
			}
			for _, d := range ds {
				if d.Error && d.Attribute == tt.attr && strings.Contains(d.Summary, tt.want) {
					if strings.Contains(d.Summary, "s3cret") {
						t.Fatalf("the diagnostic repeats the password: %q", d.Summary)
					}
					return
				}
			}
			t.Fatalf("want an error on %q containing %q, got %+v", tt.attr, tt.want, ds)
		})
	}
}

// TestExtraArgsPasswords: every form of extra_args that would hand the dump
// client a password on its command line is refused, as the clients read
// their options (any unambiguous prefix of --password, modifiers before it,
// -p anywhere in a group of short options before a letter that takes a
// value, options written as for a shell in one argument), and the refusal
// never repeats the password. Options that only look alike pass.
func TestExtraArgsPasswords(t *testing.T) {
	const secret = "Zq7s3cretX"
	p := newPlugin(t)
	refused := []string{
		"-p" + secret, "-p", "-p=" + secret,
		"--password", "--password=" + secret, "--PASSWORD=" + secret, "--pass=" + secret, "--passw", "--pa=" + secret,
		"--loose-password=" + secret, "--loose_password=" + secret, "--enable-password=" + secret,
		"-cp" + secret, "-Cp" + secret, "-vcp" + secret, "-ecqp" + secret, "-Zp" + secret, // letters before p that take no value
		"-uroot -p" + secret, "--user=root --password=" + secret, "-uroot\t-p" + secret, "--single-transaction -cp" + secret,
	}
	harmless := []string{
		"-uxp", "-uadmin_p", "-hpdb", "-P3307", "-w", "-wp=1", "-#p", "--port=3307", "--protocol=tcp", "--pipe", "--print-defaults",
		"--ignore-table=moodle.mdl_password_history", "--where=id > 1",
	}
	for _, arg := range refused {
		t.Run("refused "+strings.ReplaceAll(arg, secret, "SECRET"), func(t *testing.T) {
			ds := p.ValidateConfig(context.Background(), config(t, map[string]cty.Value{
				"container": cty.StringVal("db"), "database": cty.StringVal("moodle"),
				"extra_args": cty.ListVal([]cty.Value{cty.StringVal("--hex-blob"), cty.StringVal(arg)}),
			}))
			var found bool
			for _, d := range ds {
				if strings.Contains(d.Summary+d.Detail, secret) {
					t.Errorf("the diagnostic repeats the password: %+v", d)
				}
				found = found || d.Error && d.Attribute == "extra_args" && strings.Contains(d.Summary, "a password option") && strings.Contains(d.Summary, "set password")
			}
			if !found {
				t.Errorf("not refused as a password option: %+v", ds)
			}
		})
	}
	for _, arg := range harmless {
		t.Run("harmless "+arg, func(t *testing.T) {
			ds := p.ValidateConfig(context.Background(), config(t, map[string]cty.Value{
				"container": cty.StringVal("db"), "database": cty.StringVal("moodle"),
				"extra_args": cty.ListVal([]cty.Value{cty.StringVal(arg)}),
			}))
			if ds.HasErrors() {
				t.Errorf("refused: %+v", ds)
			}
		})
	}
}

func TestValidateConfigWarnsOnUnknownClient(t *testing.T) {
	ds := newPlugin(t).ValidateConfig(context.Background(), config(t, map[string]cty.Value{
		"container": cty.StringVal("db"), "database": cty.StringVal("moodle"), "client": cty.StringVal("/opt/mysql/bin/mysqldump8"),
	}))
	if ds.HasErrors() || len(ds) != 1 || ds[0].Attribute != "client" {
		t.Fatalf("want one warning on client, got %+v", ds)
	}
}

func TestSchemaOnlyDump(t *testing.T) {
	p := newPlugin(t)
	if _, err := p.Schema(sdk.KindArchive); err == nil {
		t.Fatal("Schema(archive) succeeded")
	}
	s, err := p.Schema(sdk.KindDump)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := s.Attribute("password")
	if !ok || !pw.Sensitive {
		t.Fatalf("password must be a sensitive attribute: %+v", pw)
	}
}

func TestDumpFlags(t *testing.T) {
	tests := []struct {
		name, user    string
		noTablespaces bool
	}{
		{"app user", "moodle", true},
		{"root", "root", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := strings.Join(dumpFlags(tt.user), " ")
			for _, f := range []string{"--single-transaction", "--quick", "--routines", "--triggers", "--events", "--default-character-set=utf8mb4"} {
				if !strings.Contains(flags, f) {
					t.Errorf("flags %q lack %s", flags, f)
				}
			}
			// Binary columns go out raw: hex doubles them (#21).
			if strings.Contains(flags, "--hex-blob") {
				t.Errorf("flags %q hold --hex-blob", flags)
			}
			if got := strings.Contains(flags, "--no-tablespaces"); got != tt.noTablespaces {
				t.Errorf("--no-tablespaces present = %v, want %v (flags %q)", got, tt.noTablespaces, flags)
			}
		})
	}
}

func TestDefaultsFirst(t *testing.T) {
	front, rest := defaultsFirst([]string{"--ignore-table=a.b", "--defaults-extra-file=/etc/x.cnf", "--max-allowed-packet=1G"})
	if strings.Join(front, " ") != "--defaults-extra-file=/etc/x.cnf" || strings.Join(rest, " ") != "--ignore-table=a.b --max-allowed-packet=1G" {
		t.Fatalf("front %q rest %q", front, rest)
	}
}

func TestUnescapeBatch(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        "plain",
		`a\tb\nc\\d\0`: "a\tb\nc\\d\x00",
		`ends\`:        `ends\`,
	} {
		if got := unescapeBatch(in); got != want {
			t.Errorf("unescapeBatch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDetailsSurviveJSON(t *testing.T) {
	d := details{Database: "moodle", Charset: "utf8mb4", Collation: "utf8mb4_unicode_ci", Tables: 2,
		Rows: map[string]int64{"a": 1 << 60, "b": 0}, TotalRows: 1 << 60}
	m, err := d.toMap()
	if err != nil {
		t.Fatal(err)
	}
	back, ok, err := detailsFrom(m)
	if err != nil || !ok {
		t.Fatalf("detailsFrom: ok=%v err=%v", ok, err)
	}
	if back.Rows["a"] != 1<<60 || back.Tables != 2 || back.Collation != d.Collation {
		t.Fatalf("details changed on the way: %+v", back)
	}
	if _, ok, _ := detailsFrom(nil); ok {
		t.Fatal("empty details were taken as recorded")
	}
}

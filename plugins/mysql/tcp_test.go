package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// The servers these tests reach over TCP are published on 127.0.0.1 only:
// tests never connect to a container's bridge address.

// tcpConfig is a stage body for a server at host:port.
func tcpConfig(t testing.TB, host string, port int, db string, more map[string]cty.Value) sdk.Config {
	attrs := map[string]cty.Value{"host": cty.StringVal(host), "port": cty.NumberIntVal(int64(port)), "database": cty.StringVal(db)}
	for k, v := range more {
		attrs[k] = v
	}
	return config(t, attrs)
}

// login is the user and password settings.
func login(user, password string) map[string]cty.Value {
	return map[string]cty.Value{"user": cty.StringVal(user), "password": cty.StringVal(password)}
}

// createAdmin makes a user that may do over TCP what root does through the
// socket, including restoring routines whose definer is root.
func createAdmin(t testing.TB, m *testenv.MariaDB, user, password string) {
	m.SQL(t, fmt.Sprintf("CREATE USER %[1]s@'%%' IDENTIFIED BY %[2]s; GRANT ALL PRIVILEGES ON *.* TO %[1]s@'%%' WITH GRANT OPTION;",
		testenv.QuoteString(user), testenv.QuoteString(password)))
}

// TestTCPRoundTrip dumps a server through host + port with the clients on
// this host, restores into another server the same way, and compares every
// table and stored program; then the same with the clients in a container.
func TestTCPRoundTrip(t *testing.T) {
	t.Parallel()
	src := testenv.StartMariaDBPublished(t)
	dst := testenv.StartMariaDBPublished(t)
	src.SQL(t, roundTripSchema())
	const password = "tcp admin $pw"
	createAdmin(t, src, "admin", password)
	createAdmin(t, dst, "admin", password)
	p := newPlugin(t)
	srcCfg := tcpConfig(t, "127.0.0.1", src.Port, "moodle", login("admin", password))
	dstCfg := tcpConfig(t, "127.0.0.1", dst.Port, "moodle", login("admin", password))

	if ds := p.Preflight(testContext(t), srcCfg); len(ds) != 0 {
		t.Fatalf("preflight: %+v", ds)
	}
	res, dump := backup(t, p, srcCfg, "moodle")
	d, ok, err := detailsFrom(res.Details)
	if err != nil || !ok {
		t.Fatalf("details: ok=%v err=%v (%v)", ok, err, res.Details)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", src.Port)
	if !maps.Equal(d.Rows, roundTripRows) || d.Address != addr || d.Container != "" || d.ClientContainer != "" ||
		d.Client != "mariadb-dump" || d.Routines != 2 || d.Triggers != 1 || d.Events != 1 || d.Views != 1 {
		t.Errorf("details: %+v", d)
	}
	if !strings.Contains(res.InfoText, "at "+addr) || !strings.Contains(res.InfoText, fmt.Sprintf("--port=%d --protocol=TCP", src.Port)) {
		t.Errorf("the info file does not say where the server was:\n%s", res.InfoText)
	}
	if !bytes.Contains(dump, []byte("-- Dump completed")) {
		t.Fatal("the dump lacks its trailer")
	}
	t.Logf("DB_INFO.txt:\n%s", res.InfoText)

	restore := func(cfg sdk.Config, target string, res sdk.BackupResult, dump []byte) {
		t.Helper()
		rr, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: cfg, Artifact: "moodle",
			Options: ropts(t, map[string]string{optTarget: target}), Details: res.Details}, bytes.NewReader(dump))
		if err != nil {
			t.Fatalf("restore into %q: %v", target, err)
		}
		if !strings.Contains(rr.Summary, "verified 6 tables and 22 rows") {
			t.Errorf("summary %q does not say what was verified", rr.Summary)
		}
		for table := range roundTripRows {
			q := "CHECKSUM TABLE %s.%s EXTENDED;"
			if got, want := checksum(t, dst, fmt.Sprintf(q, target, quoteIdent(table))), checksum(t, src, fmt.Sprintf(q, "moodle", quoteIdent(table))); got != want {
				t.Errorf("table %q: checksum %s after restore into %q, %s before", table, got, target, want)
			}
		}
		for _, o := range objects {
			if got, want := showCreate(t, dst, target, o.kind, o.name), showCreate(t, src, "moodle", o.kind, o.name); got != want {
				t.Errorf("%s %s differs after restore into %q:\n got: %s\nwant: %s", o.kind, o.name, target, got, want)
			}
		}
	}
	restore(dstCfg, "copy", res, dump)

	t.Run("clients in a container", func(t *testing.T) {
		// The server's own container has the clients; 127.0.0.1:3306 is the
		// server as that container sees it.
		via := func(m *testenv.MariaDB) sdk.Config {
			more := login("admin", password)
			more["client_container"] = cty.StringVal(m.Container)
			return tcpConfig(t, "127.0.0.1", 3306, "moodle", more)
		}
		res, dump := backup(t, p, via(src), "moodle")
		d, _, _ := detailsFrom(res.Details)
		if !maps.Equal(d.Rows, roundTripRows) || d.Address != "127.0.0.1:3306" || d.ClientContainer != src.Container {
			t.Errorf("details: %+v", d)
		}
		if !strings.Contains(res.InfoText, fmt.Sprintf("docker exec -i %s mariadb --host=127.0.0.1 --port=3306", src.Container)) {
			t.Errorf("info file:\n%s", res.InfoText)
		}
		restore(via(dst), "copy_from_container", res, dump)
	})
	t.Run("all databases", func(t *testing.T) {
		cfg := config(t, map[string]cty.Value{"host": cty.StringVal("127.0.0.1"), "port": cty.NumberIntVal(int64(dst.Port)),
			"all_databases": cty.True, "user": cty.StringVal("admin"), "password": cty.StringVal(password)})
		arts, err := p.Plan(testContext(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range arts {
			names = append(names, a.Name)
		}
		if !slices.Equal(names, []string{"copy", "copy_from_container"}) {
			t.Fatalf("plan = %v", names)
		}
	})
}

// TestTCPErrors: the failures particular to a server reached over TCP, a
// cancelled dump, and a password that must show on no command line.
func TestTCPErrors(t *testing.T) {
	t.Parallel()
	const password = `p@ss $HOME w'o"rd; #no-comment \n \ ñandú`
	m := testenv.StartMariaDBPublished(t)
	m.CreateUser(t, "moodle", "moodle", password)
	m.SQL(t, "GRANT ALL PRIVILEGES ON moodle_copy.* TO 'moodle'@'%';")
	addBigTable(t, m, "moodle")
	p := newPlugin(t)
	good := login("moodle", password)
	with := func(more map[string]cty.Value) map[string]cty.Value {
		out := maps.Clone(good)
		maps.Copy(out, more)
		return out
	}
	free := freePort(t)

	tests := []struct {
		name string
		cfg  sdk.Config
		db   string
		want []string // in the error and in the preflight diagnostic
		attr string   // of the preflight diagnostic
	}{
		{"wrong password", tcpConfig(t, "127.0.0.1", m.Port, "moodle", login("moodle", "wrong-password")), "moodle",
			[]string{"Access denied for user 'moodle'"}, "password"},
		{"nothing listening", tcpConfig(t, "127.0.0.1", free, "moodle", good), "moodle",
			[]string{fmt.Sprintf("at 127.0.0.1:%d", free), "Can't connect"}, "host"},
		{"unknown database", tcpConfig(t, "127.0.0.1", m.Port, "nope", good), "nope",
			[]string{`no database "nope"`}, "database"},
		{"missing dump client", tcpConfig(t, "127.0.0.1", m.Port, "moodle", with(map[string]cty.Value{"client": cty.StringVal("nonexistent-dump")})), "moodle",
			[]string{`dump client "nonexistent-dump" not found in this host's PATH`}, "client"},
		{"unknown client container", tcpConfig(t, "127.0.0.1", 3306, "moodle", with(map[string]cty.Value{"client_container": cty.StringVal(testenv.UniqueName(t, "mbktest-none"))})), "moodle",
			[]string{"does not exist"}, "client_container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Backup(testContext(t), sdk.BackupRequest{Config: tt.cfg, Artifact: tt.db}, &bytes.Buffer{})
			if err == nil || !strings.HasPrefix(err.Error(), `dump database "`+tt.db+`"`) || strings.Contains(err.Error(), password) {
				t.Fatalf("backup error %v does not say what failed, or shows the password", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("backup error %q lacks %q", err, w)
				}
			}
			t.Logf("backup: %v", err)
			ds := p.Preflight(testContext(t), tt.cfg)
			for _, d := range ds {
				if d.Error && d.Attribute == tt.attr && strings.Contains(d.Summary, tt.want[len(tt.want)-1]) {
					return
				}
			}
			t.Fatalf("preflight gave no error on %q containing %q: %+v", tt.attr, tt.want, ds)
		})
	}

	t.Run("password on no command line", func(t *testing.T) {
		cfg := tcpConfig(t, "127.0.0.1", m.Port, "moodle", good)
		var dump *proc
		var leaks []string
		w := &hookWriter{onFirst: func() error {
			for _, pr := range hostProcs(t) {
				if strings.Contains(pr.cmdline, password) || strings.Contains(pr.cmdline, "no-comment") || strings.Contains(pr.cmdline, "MYSQL_PWD") {
					leaks = append(leaks, pr.cmdline)
				}
				if isOurDump(pr, m.Port) {
					dump = &pr
				}
			}
			return nil
		}}
		res, err := p.Backup(testContext(t), sdk.BackupRequest{Config: cfg, Artifact: "moodle"}, w)
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		switch {
		case dump == nil:
			t.Fatal("no mariadb-dump to this server was seen on the host while the dump ran, so the scan proves nothing")
		case len(leaks) > 0:
			t.Fatalf("the password is on command lines: %q", leaks)
		case !slices.Contains(dump.environ, "MYSQL_PWD="+password):
			t.Fatal("the dump's environment lacks MYSQL_PWD: how did it log in?")
		case dump.pgid != dump.pid:
			t.Fatalf("the dump runs in process group %d, not in its own (%d)", dump.pgid, dump.pid)
		}
		details, _ := json.Marshal(res.Details)
		if bytes.Contains(details, []byte(password)) || strings.Contains(res.InfoText, password) {
			t.Fatal("the password is in the details or the info text")
		}
		// The SQL client gets it the same way: restore next to the original.
		rr, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: cfg, Artifact: "moodle",
			Options: ropts(t, map[string]string{optTarget: "moodle_copy"}), Details: res.Details}, bytes.NewReader(w.buf.Bytes()))
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if !strings.Contains(rr.Summary, "verified 1 tables and 400000 rows") {
			t.Fatalf("summary: %s", rr.Summary)
		}
	})
	t.Run("cancelled midway", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		pgid := 0
		w := &hookWriter{onFirst: func() error {
			for _, pr := range hostProcs(t) {
				if isOurDump(pr, m.Port) {
					pgid = pr.pgid
				}
			}
			cancel()
			return nil
		}}
		_, err := p.Backup(ctx, sdk.BackupRequest{Config: tcpConfig(t, "127.0.0.1", m.Port, "moodle", good), Artifact: "moodle"}, w)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("backup error %v, want context.Canceled", err)
		}
		if bytes.Contains(w.buf.Bytes(), []byte("-- Dump completed")) {
			t.Fatal("the dump finished before the cancellation reached it: make the big table bigger")
		}
		if pgid == 0 {
			t.Fatal("the dump was not seen on the host")
		}
		requireNoHostDump(t, m.Port, pgid)
	})
	t.Run("writer fails", func(t *testing.T) {
		w := &hookWriter{onFirst: func() error { return errors.New("disk full") }}
		_, err := p.Backup(testContext(t), sdk.BackupRequest{Config: tcpConfig(t, "127.0.0.1", m.Port, "moodle", good), Artifact: "moodle"}, w)
		if err == nil || !strings.Contains(err.Error(), "write the dump: disk full") {
			t.Fatalf("backup error %v, want the writer's", err)
		}
		requireNoHostDump(t, m.Port, 0)
	})
}

// isOurDump tells the host's mariadb-dump to the server at port from the
// other tests' dumps (whose processes the host's /proc shows too).
func isOurDump(p proc, port int) bool {
	return strings.Contains(p.cmdline, "mariadb-dump") && strings.Contains(p.cmdline, fmt.Sprintf("--port=%d ", port))
}

// requireNoHostDump fails when a dump to the server at port still runs on
// the host, or anything of process group pgid (0: not known) is left.
func requireNoHostDump(t *testing.T, port, pgid int) {
	t.Helper()
	for _, p := range hostProcs(t) {
		if isOurDump(p, port) || pgid != 0 && p.pgid == pgid {
			t.Fatalf("process %d (%q) still runs after Backup returned", p.pid, p.cmdline)
		}
	}
}

// freePort is a port on 127.0.0.1 that nothing listens on (it did a moment
// ago, for the kernel to pick it).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

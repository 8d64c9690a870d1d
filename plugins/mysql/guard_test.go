package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestDumpGuard pins what the check lets through (every line mariadb-dump
// and mysqldump write, and client-command look-alikes inside strings and
// comments) and what it refuses, with the line.
func TestDumpGuard(t *testing.T) {
	check := func(dump string) error {
		return newDumpGuard().check(strings.NewReader(dump), nil)
	}
	if err := check(sampleDump); err != nil {
		t.Fatalf("the sample dump: %v", err)
	}
	for _, ok := range []string{
		"INSERT INTO `t` VALUES ('\\\\! touch x; system touch y;'),('\\'; \\\\! x');\n",
		"INSERT INTO `t` VALUES ('a\nsystem touch y\n\\\\! z');\n", // a string over lines
		"CREATE TABLE `a\\` (`use` int, `system` int);\n",          // a backslash is plain in a name
		"/* \\! touch x */ SELECT 1;\n/*\nsystem touch x\n\\! y\n*/\n",
		"SELECT 1; -- \\! touch x\n# system touch x\nSELECT 2 # \\! x\n;\n",
		"SELECT \\N;\n",
		"DELIMITER ;;\nCREATE TRIGGER t BEFORE INSERT ON t FOR EACH ROW\nBEGIN\nSET @x = 'use db;';\nEND ;;\nDELIMITER ;\n",
		"/*!50003 SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO' */ ;\n",
		"SELECT 'abc' AS `source`; SELECT 1 AS status;\n",
	} {
		if err := check(ok); err != nil {
			t.Errorf("refused %q: %v", ok, err)
		}
	}
	for dump, line := range map[string]int{
		"SELECT 1;\n\\! touch /tmp/x\n":                       2,
		"SELECT 1;\nsystem touch /tmp/x\n":                    2,
		"SELECT 1;\n  SYSTEM touch /tmp/x\n":                  2,
		"SELECT 1; system touch /tmp/x;\n":                    1,
		"SELECT 1; \\! touch /tmp/x\n":                        1,
		"INSERT INTO `t` VALUES (1);\\! touch /tmp/x\n":       1,
		"INSERT INTO `t` VALUES ('a'),\n('b');system x\n":     2,
		"/*!50000 \\! touch /tmp/x */;\n":                     1,
		"/* c */ system touch x\n":                            1,
		"--/*\n\\! touch x\n*/\n":                             2, // the client skips line 1 whole
		"SELECT 1;\n\\. /etc/passwd\n":                        2,
		"source /etc/passwd\n":                                1,
		"SELECT 1;\nUSE `mysql`;\n":                           2,
		"use mysql\n":                                         1,
		"tee /tmp/out\n":                                      1,
		"SELECT 1 \\T /tmp/out\n":                             1,
		"pager sh -c 'touch x'\n":                             1,
		"SELECT 1;\n\\P cat\n":                                2,
		"connect other\n":                                     1,
		"SELECT 1; \\r other\n":                               1,
		"\\C latin1\n":                                        1,
		"charset latin1\n":                                    1,
		"warnings\n":                                          1,
		"SELECT 1 \\W;\n":                                     1,
		"nowarning;\n":                                        1,
		"SELECT 1 \\G\n":                                      1,
		"DELIMITER //\n":                                      1,
		"DELIMITER ;;\nSELECT 1;;\nDELIMITER ;\n\\! x\n":      4,
		"SELECT 'a''b'; \\! x\n":                              1,
		"INSERT INTO `t` VALUES ('a\\\\'); system x;\n":       1,
		"SELECT 1;\n-- MariaDB dump\nSELECT 2;\nquit\n":       4,
		"SELECT `a\\`; \\! x\n":                               1,
		"SELECT 1;/* x */\\! y\n":                             1,
		"SELECT 1;\n/*M!999999\\- sandbox */\n/*!\\! x */;\n": 3,
	} {
		err := check(dump)
		if !errors.Is(err, errClientCommand) || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", line)) {
			t.Errorf("%q: %v, want a refusal at line %d", dump, err, line)
		}
	}
}

// TestTamperedDump restores dumps into which client commands were put, on
// the clients of both kinds (in the database container through the Docker
// exec API, and on this host over TCP), into a new database and over an
// existing one with replace, over one connection and several: each is
// refused naming the line, nothing of it runs (the marker files appear
// neither here nor in the container), and the target is as it was.
func TestTamperedDump(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDBPublished(t)
	m.SQL(t, roundTripSchema())
	const password = "guard pw"
	createAdmin(t, m, "admin", password)
	p := newPlugin(t)
	ways := []struct {
		name string
		cfg  func(more map[string]cty.Value) sdk.Config
	}{
		{"in the container", func(more map[string]cty.Value) sdk.Config { return dbConfig(t, m.Container, "moodle", more) }},
		{"on this host", func(more map[string]cty.Value) sdk.Config {
			for k, v := range login("admin", password) {
				more[k] = v
			}
			return tcpConfig(t, "127.0.0.1", m.Port, "moodle", more)
		}},
	}
	res, dump := backup(t, p, ways[0].cfg(nil), "moodle")
	lines := strings.SplitAfter(string(dump), "\n")
	// After the first row of a table, where a splitter passing lines on
	// would have sent DDL and data already.
	at := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "INSERT INTO `mdl_text`") {
			at = i + 1
			break
		}
	}
	for at < len(lines) && !strings.HasSuffix(strings.TrimSpace(lines[at-1]), ";") {
		at++
	}
	if at == 0 || at >= len(lines)-5 {
		t.Fatalf("no INSERT into mdl_text in the dump")
	}
	marker := func() string {
		b := make([]byte, 6)
		rand.Read(b)
		return "/tmp/mbk-marker-" + hex.EncodeToString(b)
	}
	before := tableSums(t, m, "moodle")

	for _, w := range ways {
		for _, jobs := range []int64{1, 2} {
			for _, tamper := range []string{"\\! touch %s", "system touch %s", "SELECT 1; system touch %s;", "SELECT 1;\\! touch %s"} {
				name := fmt.Sprintf("%s, %d connections, %s", w.name, jobs, strings.Fields(tamper)[0])
				t.Run(name, func(t *testing.T) {
					mk := marker()
					bad := strings.Join(lines[:at], "") + fmt.Sprintf(tamper, mk) + "\n" + strings.Join(lines[at:], "")
					// Twice: into a new database, then over moodle itself.
					for _, opts := range []map[string]string{{optTarget: "tampered"}, {optTarget: "moodle", optReplace: "true"}} {
						_, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: w.cfg(map[string]cty.Value{"restore_jobs": cty.NumberIntVal(jobs)}),
							Artifact: "moodle", Options: ropts(t, opts), Details: res.Details}, strings.NewReader(bad))
						if !errors.Is(err, errClientCommand) || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", at+1)) {
							t.Fatalf("restore %v of a dump with %q at line %d: %v", opts, tamper, at+1, err)
						}
						t.Logf("refused: %v", err)
					}
					requireNoFile(t, m, mk)
					if got := strings.TrimSpace(m.SQL(t, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'tampered';")); got != "0" {
						t.Errorf("the refused restore created its target database")
					}
					if after := tableSums(t, m, "moodle"); after != before {
						t.Errorf("the refused restore with replace changed the database:\n%s\nwas\n%s", after, before)
					}
				})
			}
		}
	}

	// The same dump untampered loads, over one connection and several:
	// --binary-mode and --sandbox leave every byte as it was.
	m.SQL(t, "USE moodle; CREATE TABLE mdl_bin (id INT PRIMARY KEY, b LONGBLOB, t TEXT) ENGINE=InnoDB;"+
		"INSERT INTO mdl_bin VALUES (1, 0x00610d0a000d0a62ff, 'a\r\nb'), (2, 0xc328fffe00, '\r\n'), (3, 0x5c215c00, 'x\\\\! y');")
	res, dump = backup(t, p, ways[0].cfg(nil), "moodle")
	for _, w := range ways {
		for _, jobs := range []int64{1, 2} {
			t.Run(fmt.Sprintf("binary data %s, %d connections", w.name, jobs), func(t *testing.T) {
				target := fmt.Sprintf("bin_%d_%d", len(w.name), jobs)
				if _, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: w.cfg(map[string]cty.Value{"restore_jobs": cty.NumberIntVal(jobs)}),
					Artifact: "moodle", Options: ropts(t, map[string]string{optTarget: target}), Details: res.Details}, bytes.NewReader(dump)); err != nil {
					t.Fatal(err)
				}
				q := "SELECT id, HEX(b), HEX(t) FROM %s.mdl_bin ORDER BY id;"
				if got, want := m.SQL(t, fmt.Sprintf(q, target)), m.SQL(t, fmt.Sprintf(q, "moodle")); got != want {
					t.Errorf("binary data after restore:\n%s\nbefore:\n%s", got, want)
				}
				if got, want := tableSums(t, m, target), tableSums(t, m, "moodle"); got != want {
					t.Errorf("tables after restore:\n%s\nbefore:\n%s", got, want)
				}
			})
		}
	}
}

// tableSums lists a database's tables with their checksums.
func tableSums(t *testing.T, m *testenv.MariaDB, db string) string {
	t.Helper()
	tables := strings.Split(strings.TrimSpace(m.SQL(t, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+quoteString(db)+" AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1;")), "\n")
	var b strings.Builder
	for _, tb := range tables {
		b.WriteString(checksum(t, m, fmt.Sprintf("CHECKSUM TABLE %s.%s EXTENDED;", quoteIdent(db), quoteIdent(tb))) + "\n")
	}
	return b.String()
}

// requireNoFile fails when path exists on this host or in the container.
func requireNoFile(t *testing.T, m *testenv.MariaDB, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		os.Remove(path)
		t.Errorf("%s exists on this host: a client command ran (%v)", path, err)
	}
	if _, _, code := testenv.Exec(t, m.Container, nil, "test", "-e", path); code == 0 {
		t.Errorf("%s exists in the container: a client command ran", path)
	}
}

// TestSpoolRewinds: the checked dump reads the same bytes again after
// Rewind, as a load retried over one connection needs.
func TestSpoolRewinds(t *testing.T) {
	dump := strings.Repeat("INSERT INTO `t` VALUES (1,'ñandú');\n", 5000)
	sp, err := checkDump(context.Background(), strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := 0; i < 2; i++ {
		got, err := io.ReadAll(sp)
		if err != nil || string(got) != dump {
			t.Fatalf("read %d: %d bytes, %v", i+1, len(got), err)
		}
		if err := sp.Rewind(); err != nil {
			t.Fatal(err)
		}
	}
}

package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// roundTripSchema exercises what a dump can get wrong: text in every script
// (utf8mb4), every byte value in a BLOB, NULL against empty, numbers at the
// edges of their types, identifiers that need quoting, and the objects a dump
// only carries with the right flags (view, procedure, function, trigger,
// event). The trigger fires on the inserts below, so a restore that ran it
// again would change mdl_log's row count.
func roundTripSchema() string {
	var all [256]byte
	for i := range all {
		all[i] = byte(i)
	}
	allHex := hex.EncodeToString(all[:])
	return `
CREATE DATABASE moodle CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE moodle;
CREATE TABLE mdl_log (id INT AUTO_INCREMENT PRIMARY KEY, action VARCHAR(50) NOT NULL) ENGINE=InnoDB;
CREATE TABLE mdl_text (
  id INT AUTO_INCREMENT PRIMARY KEY,
  s VARCHAR(255) NULL,
  t LONGTEXT NULL
) ENGINE=InnoDB;
DELIMITER ;;
CREATE TRIGGER mdl_text_ai AFTER INSERT ON mdl_text FOR EACH ROW
BEGIN
INSERT INTO mdl_log (action) VALUES (CONCAT('insert ', NEW.id));
END;;
CREATE PROCEDURE mdl_touch(IN x INT)
BEGIN
INSERT INTO ` + "`mdl_log`" + ` VALUES (NULL, CONCAT('touch ', x));
END;;
CREATE FUNCTION mdl_twice(x DECIMAL(65,30)) RETURNS DECIMAL(65,30) DETERMINISTIC
BEGIN
RETURN x * 2;
END;;
DELIMITER ;
INSERT INTO mdl_text (s, t) VALUES
  ('Ñandú, café, pingüino', 'Große Straße — «comillas» ¿sí? ¡no!'),
  ('emoji 😀🎉👍🏽 and 𝄞', '日本語のテキスト 中文 한국어 العربية עברית'),
  ('quotes '' " \\ ; # $ ), (', 'line\nbreak\ttab\rreturn\0nul'),
  (NULL, ''),
  ('', NULL),
  ('INSERT INTO ` + "`mdl_text`" + ` VALUES (1);', REPEAT('x', 100000));
CREATE TABLE mdl_blob (id INT PRIMARY KEY, b LONGBLOB NULL, tb TINYBLOB NULL, vb VARBINARY(300) NULL) ENGINE=InnoDB;
INSERT INTO mdl_blob VALUES
  (1, X'` + allHex + `', X'00', X'` + allHex + `'),
  (2, '', NULL, ''),
  (3, NULL, '', NULL);
CREATE TABLE mdl_num (
  id INT PRIMARY KEY,
  d DECIMAL(65,30), f DOUBLE, fl FLOAT, bi BIGINT, ubi BIGINT UNSIGNED,
  bits BIT(8), dt DATETIME(6), tm TIME(6)
) ENGINE=InnoDB;
INSERT INTO mdl_num VALUES
  (1, 99999999999999999999999999999999999.999999999999999999999999999999, 1.7976931348623157e308, 3.40282e38,
      -9223372036854775808, 18446744073709551615, b'10101010', '9999-12-31 23:59:59.999999', '838:59:59.000000'),
  (2, -99999999999999999999999999999999999.999999999999999999999999999999, -1.7976931348623157e308, -1.17549e-38,
      9223372036854775807, 0, b'00000000', '1000-01-01 00:00:00.000000', '-838:59:59.000000'),
  (3, 0.000000000000000000000000000001, 4.9406564584124654e-324, 0, 0, 1, b'11111111', NULL, NULL),
  (4, 0, 2.2250738585072014e-308, -0, -1, 2, NULL, '2024-02-29 12:34:56.123456', '00:00:00.000001'),
  (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE ` + "`mdl weird``name (x)`" + ` (id INT PRIMARY KEY, ` + "`col;,()`" + ` VARCHAR(20)) ENGINE=InnoDB;
INSERT INTO ` + "`mdl weird``name (x)`" + ` VALUES (1, '),('), (2, ';');
CREATE TABLE mdl_empty (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE VIEW mdl_view AS SELECT t.id, t.s, l.action FROM mdl_text t JOIN mdl_log l ON l.action = CONCAT('insert ', t.id);
CREATE EVENT mdl_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'
  DO DELETE FROM mdl_log WHERE id < 0;
`
}

// roundTripRows are the row counts of roundTripSchema's tables, as a dump
// must record them (mdl_log's six come from the trigger).
var roundTripRows = map[string]int64{"mdl_log": 6, "mdl_text": 6, "mdl_blob": 3, "mdl_num": 5, "mdl weird`name (x)": 2, "mdl_empty": 0}

// objects are the stored programs the test compares by SHOW CREATE.
var objects = []struct{ kind, name string }{
	{"VIEW", "mdl_view"},
	{"PROCEDURE", "mdl_touch"},
	{"FUNCTION", "mdl_twice"},
	{"TRIGGER", "mdl_text_ai"},
	{"EVENT", "mdl_cleanup"},
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	src := testenv.StartMariaDB(t)
	dst := testenv.StartMariaDB(t)
	src.SQL(t, roundTripSchema())
	p := newPlugin(t)

	res, dump := backup(t, p, dbConfig(t, src.Container, "moodle", nil), "moodle")
	if !bytes.Contains(dump, []byte("-- Dump completed")) {
		t.Fatal("the dump lacks its trailer")
	}
	if bytes.Contains(dump, []byte("CREATE DATABASE")) || bytes.Contains(dump, []byte("USE `moodle`")) {
		t.Fatal("the dump names its database, so it could not be restored under another name")
	}
	d, ok, err := detailsFrom(res.Details)
	if err != nil || !ok {
		t.Fatalf("details: ok=%v err=%v (%v)", ok, err, res.Details)
	}
	wantRows := roundTripRows
	if !maps.Equal(d.Rows, wantRows) || d.Tables != len(wantRows) || d.TotalRows != 22 {
		t.Errorf("details rows %v (tables %d, total %d), want %v", d.Rows, d.Tables, d.TotalRows, wantRows)
	}
	if d.Flavour != "MariaDB" || d.Charset != "utf8mb4" || d.Collation != "utf8mb4_unicode_ci" || d.Database != "moodle" ||
		d.Views != 1 || d.Routines != 2 || d.Triggers != 1 || d.Events != 1 || d.Client != "mariadb-dump" || d.DataBytes <= 0 {
		t.Errorf("details: %+v", d)
	}
	if d.Output != "fifo" || !strings.Contains(res.InfoText, "through a FIFO") {
		t.Errorf("the dump came out through %q, want a FIFO; DB_INFO.txt:\n%s", d.Output, res.InfoText)
	}
	if res.InfoFile != "DB_INFO.txt" || strings.Count(res.InfoText, "\n") < 5 || !strings.Contains(res.InfoText, "utf8mb4_unicode_ci") {
		t.Errorf("info file %q:\n%s", res.InfoFile, res.InfoText)
	}
	t.Logf("DB_INFO.txt:\n%s", res.InfoText)

	// Into another server, under another name: the dump must not care.
	dstCfg := dbConfig(t, dst.Container, "moodle", nil)
	restore := func(opts map[string]string) (sdk.RestoreResult, error) {
		return p.Restore(testContext(t), sdk.RestoreRequest{Config: dstCfg, Artifact: "moodle", Options: ropts(t, opts), Details: res.Details}, bytes.NewReader(dump))
	}
	rr, err := restore(map[string]string{optTarget: "copy"})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Logf("restore summary: %s", rr.Summary)
	if !strings.Contains(rr.Summary, "verified 6 tables and 22 rows") {
		t.Errorf("summary %q does not say what was verified", rr.Summary)
	}

	if got := strings.TrimSpace(dst.SQL(t, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='copy';")); got != "utf8mb4\tutf8mb4_unicode_ci" {
		t.Errorf("restored database charset/collation = %q", got)
	}
	for table := range wantRows {
		q := "CHECKSUM TABLE %s.%s EXTENDED;"
		want := checksum(t, src, fmt.Sprintf(q, "moodle", quoteIdent(table)))
		got := checksum(t, dst, fmt.Sprintf(q, "copy", quoteIdent(table)))
		if got != want {
			t.Errorf("table %q: checksum %s after restore, %s before", table, got, want)
		}
	}
	for _, o := range objects {
		want := showCreate(t, src, "moodle", o.kind, o.name)
		got := showCreate(t, dst, "copy", o.kind, o.name)
		if got != want {
			t.Errorf("%s %s differs after restore:\n got: %s\nwant: %s", o.kind, o.name, got, want)
		}
	}

	t.Run("target not empty", func(t *testing.T) {
		_, err := restore(map[string]string{optTarget: "copy"})
		if err == nil || !strings.Contains(err.Error(), "already holds") {
			t.Fatalf("restore over a full database: %v", err)
		}
	})
	t.Run("replace", func(t *testing.T) {
		dst.SQL(t, "CREATE TABLE copy.stray (a INT);")
		rr, err := restore(map[string]string{optTarget: "copy", optReplace: "true"})
		if err != nil {
			t.Fatalf("restore with replace: %v", err)
		}
		if n := strings.TrimSpace(dst.SQL(t, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='copy' AND TABLE_NAME='stray';")); n != "0" {
			t.Fatalf("replace kept a table the dump does not hold")
		}
		t.Logf("summary: %s", rr.Summary)
	})
	// An unknown option or a value of the wrong type never reaches the
	// plugin: the core checks them against restoreOptions (core/engine
	// TestBindRestoreRefuses). What only the plugin knows, it checks.
	t.Run("options are checked", func(t *testing.T) {
		for want, opts := range map[string]map[string]string{
			"server's own": {optTarget: "mysql", optReplace: "true"},
		} {
			if _, err := restore(opts); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("restore with %v: %v, want an error containing %q", opts, err, want)
			}
		}
	})
	t.Run("mismatch is named", func(t *testing.T) {
		bad := maps.Clone(res.Details)
		bad["rows"] = map[string]any{"mdl_log": 6, "mdl_text": 7, "mdl_blob": 3, "mdl_num": 5, "mdl weird`name (x)": 2, "mdl_empty": 0}
		_, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: dstCfg, Artifact: "moodle",
			Options: ropts(t, map[string]string{optTarget: "copy2"}), Details: bad}, bytes.NewReader(dump))
		if err == nil || !strings.Contains(err.Error(), "mdl_text (6 rows, the dump held 7)") {
			t.Fatalf("restore against wrong counts: %v", err)
		}
	})
	t.Run("broken dump", func(t *testing.T) {
		cut := append(bytes.Clone(dump[:len(dump)/2]), []byte("\nTHIS IS NOT SQL;\n")...)
		_, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: dstCfg, Artifact: "moodle",
			Options: ropts(t, map[string]string{optTarget: "copy3"}), Details: res.Details}, bytes.NewReader(cut))
		if err == nil || !strings.Contains(err.Error(), "ERROR 1064") {
			t.Fatalf("restore of a broken dump: %v", err)
		}
		if strings.Contains(err.Error(), strings.Repeat("x", maxLine)) || strings.Contains(err.Error(), "Ñandú") {
			t.Fatalf("the error copies table data: %v", err)
		}
	})
	t.Run("extra args", func(t *testing.T) {
		cfg := dbConfig(t, src.Container, "moodle", map[string]cty.Value{"extra_args": cty.ListVal([]cty.Value{
			cty.StringVal("--ignore-table=moodle.mdl_empty"), cty.StringVal("--skip-triggers"), cty.StringVal("--where=id < 3"),
		})})
		res, dump := backup(t, p, cfg, "moodle")
		d, _, _ := detailsFrom(res.Details)
		if fmt.Sprint(d.Skipped) != "[mdl_empty]" || d.Tables != 5 || d.Rows["mdl_text"] != 2 || d.Rows["mdl_num"] != 2 {
			t.Fatalf("details after --ignore-table and --where: %+v", d)
		}
		rr, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: dstCfg, Artifact: "moodle",
			Options: ropts(t, map[string]string{optTarget: "partial"}), Details: res.Details}, bytes.NewReader(dump))
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if !strings.Contains(rr.Summary, "verified 5 tables and 10 rows") || !strings.Contains(rr.Summary, "0 triggers where the source had 1") {
			t.Fatalf("summary: %s", rr.Summary)
		}
	})
	t.Run("all databases", func(t *testing.T) {
		src.SQL(t, "CREATE DATABASE second; CREATE TABLE second.t (a INT); INSERT INTO second.t VALUES (1),(2);")
		cfg := config(t, map[string]cty.Value{"container": cty.StringVal(src.Container), "all_databases": cty.True})
		arts, err := p.Plan(testContext(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := []sdk.Artifact{{ID: "moodle", Name: "moodle", Format: "sql"}, {ID: "second", Name: "second", Format: "sql"}}
		if fmt.Sprint(arts) != fmt.Sprint(want) {
			t.Fatalf("plan = %v, want %v", arts, want)
		}
		res, _ := backup(t, p, cfg, "second")
		if d, _, _ := detailsFrom(res.Details); d.TotalRows != 2 {
			t.Fatalf("second: %+v", d)
		}
		if _, err := p.Backup(testContext(t), sdk.BackupRequest{Config: cfg, Artifact: "mysql"}, &bytes.Buffer{}); err == nil {
			t.Fatal("all_databases dumped the server's own mysql database")
		}
	})
	// Last: it changes the source container. Where no FIFO can be made
	// (here a /tmp that is a symlink, which the FIFO code refuses to
	// follow), the dump comes through the exec stream, byte for byte the
	// same but for the trailer's date.
	t.Run("without a FIFO", func(t *testing.T) {
		if _, stderr, code := testenv.Exec(t, src.Container, nil, "sh", "-c", "rm -rf /tmp && ln -s /var/tmp /tmp"); code != 0 {
			t.Fatalf("make /tmp a symlink: %s", stderr)
		}
		res, viaExec := backup(t, p, dbConfig(t, src.Container, "moodle", nil), "moodle")
		if d, _, _ := detailsFrom(res.Details); d.Output != "exec" || !strings.Contains(res.InfoText, "exec stream") {
			t.Errorf("output through %q, want exec; DB_INFO.txt:\n%s", d.Output, res.InfoText)
		}
		if a, b := withoutTrailer(dump), withoutTrailer(viaExec); !bytes.Equal(a, b) {
			t.Errorf("the dumps differ: %d bytes through the FIFO, %d through exec", len(a), len(b))
		}
	})
}

// withoutTrailer drops the "-- Dump completed on DATE" line.
func withoutTrailer(dump []byte) []byte {
	i := bytes.LastIndex(dump, []byte("-- Dump completed"))
	if i < 0 {
		return dump
	}
	return dump[:i]
}

func checksum(t *testing.T, m *testenv.MariaDB, sql string) string {
	t.Helper()
	f := strings.Split(strings.TrimSpace(m.SQL(t, sql)), "\t")
	if len(f) != 2 || f[1] == "NULL" {
		t.Fatalf("%s gave %q", sql, f)
	}
	return f[1]
}

// showCreate returns SHOW CREATE's answer without the object's name column.
func showCreate(t *testing.T, m *testenv.MariaDB, db, kind, name string) string {
	t.Helper()
	out := strings.TrimSpace(m.SQL(t, fmt.Sprintf("USE %s; SHOW CREATE %s %s;", quoteIdent(db), kind, quoteIdent(name))))
	f := strings.Split(out, "\t")
	if len(f) < 2 {
		t.Fatalf("SHOW CREATE %s %s gave %q", kind, name, out)
	}
	if kind == "TRIGGER" {
		f = f[:len(f)-1] // its creation time
	}
	return strings.Join(f[1:], "\t")
}

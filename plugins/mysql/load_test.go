package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestParallelLoad restores a dump of many INSERT statements per table
// over several connections and checks that every row is back exactly, that
// the trigger was created only after its table's rows were all in (it would
// otherwise add rows to the log), and that a failing statement stops the
// load with the server's words.
func TestParallelLoad(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t)
	m.SQL(t, `CREATE DATABASE bulk CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE bulk;
CREATE TABLE tlog (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB;
CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(200), k INT, ts TIMESTAMP NULL, KEY k_ix (k)) ENGINE=InnoDB;
INSERT INTO t SELECT seq, CONCAT('row ', seq, ' ñandú 😀 ', REPEAT('x', seq % 100)), seq % 97, FROM_UNIXTIME(1700000000 + seq * 60) FROM seq_1_to_30000;
CREATE TABLE z (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO z VALUES (0), (1);
CREATE TABLE small (a INT) ENGINE=InnoDB;
INSERT INTO small VALUES (1);
CREATE TABLE keyed (id INT AUTO_INCREMENT PRIMARY KEY, u VARCHAR(20), n INT, txt TEXT, UNIQUE KEY u_uix (u), KEY n_ix (n), KEY nu_ix (n, u), FULLTEXT KEY txt_ft (txt)) ENGINE=InnoDB;
INSERT INTO keyed (u, n, txt) SELECT CONCAT('u', seq), seq % 10, CONCAT('word', seq % 50) FROM seq_1_to_5000;
CREATE TABLE emptykeyed (id INT PRIMARY KEY, n INT, KEY n_ix (n)) ENGINE=InnoDB;
CREATE TABLE aisec (a INT PRIMARY KEY, id INT NOT NULL AUTO_INCREMENT, KEY id_ix (id)) ENGINE=InnoDB;
INSERT INTO aisec (a) SELECT seq FROM seq_1_to_100;
CREATE TABLE mi (a INT, KEY a_ix (a)) ENGINE=MyISAM;
INSERT INTO mi SELECT seq FROM seq_1_to_100;
CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO tlog (note) VALUES (CONCAT('t ', NEW.id));
CREATE VIEW v AS SELECT k, COUNT(*) AS n FROM t GROUP BY k;`)
	p := newPlugin(t)
	// Small statements: hundreds of INSERTs for t, to spread.
	cfg := dbConfig(t, m.Container, "bulk", map[string]cty.Value{
		"extra_args": cty.ListVal([]cty.Value{cty.StringVal("--net-buffer-length=8192")})})
	res, dump := backup(t, p, cfg, "bulk")
	if n := bytes.Count(dump, []byte("\nINSERT INTO `t` ")); n < 50 {
		t.Fatalf("the dump has %d INSERT statements for t; the test needs many", n)
	}

	// Sessions that missed the dump's SET TIME_ZONE='+00:00' would now
	// store every TIMESTAMP five hours off.
	m.SQL(t, "SET GLOBAL time_zone = '+05:00';")
	for _, jobs := range []int64{2, 4} {
		t.Run(fmt.Sprintf("%d connections", jobs), func(t *testing.T) {
			target := fmt.Sprintf("bulk%d", jobs)
			rcfg := dbConfig(t, m.Container, "bulk", map[string]cty.Value{"restore_jobs": cty.NumberIntVal(jobs)})
			rr, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: rcfg, Artifact: "bulk",
				Options: ropts(t, map[string]string{optTarget: target}), Details: res.Details}, bytes.NewReader(dump))
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if !strings.Contains(rr.Summary, "verified 8 tables and 35203 rows") {
				t.Errorf("summary: %s", rr.Summary)
			}
			// Every table as it was, keys (put back after the rows where
			// that is safe) and all.
			for _, table := range []string{"t", "tlog", "z", "small", "keyed", "emptykeyed", "aisec", "mi"} {
				if got, want := showCreate(t, m, target, "TABLE", table), showCreate(t, m, "bulk", "TABLE", table); got != want {
					t.Errorf("table %s differs:\n got: %s\nwant: %s", table, got, want)
				}
			}
			for _, table := range []string{"t", "tlog", "z", "small", "keyed", "aisec", "mi"} {
				q := "CHECKSUM TABLE %s.%s EXTENDED;"
				if got, want := checksum(t, m, fmt.Sprintf(q, target, table)), checksum(t, m, fmt.Sprintf(q, "bulk", table)); got != want {
					t.Errorf("table %s: checksum %s after restore, %s before", table, got, want)
				}
			}
			if got := strings.TrimSpace(m.SQL(t, "SELECT COUNT(*) FROM "+target+".tlog;")); got != "0" {
				t.Errorf("the trigger fired during the load: %s rows in tlog", got)
			}
			for _, o := range []struct{ kind, name string }{{"TRIGGER", "t_ai"}, {"VIEW", "v"}} {
				if got, want := showCreate(t, m, target, o.kind, o.name), showCreate(t, m, "bulk", o.kind, o.name); got != strings.ReplaceAll(want, "`bulk`", "`"+target+"`") && got != want {
					t.Errorf("%s %s differs:\n got: %s\nwant: %s", o.kind, o.name, got, want)
				}
			}
		})
	}

	t.Run("a failing statement stops the load", func(t *testing.T) {
		// The 40th INSERT into t names a table that does not exist: it goes
		// to some connection in the middle of the spread.
		i := 0
		bad := regexp.MustCompile("(?m)^INSERT INTO `t` ").ReplaceAllFunc(dump, func(b []byte) []byte {
			if i++; i == 40 {
				return []byte("INSERT INTO `nosuch` ")
			}
			return b
		})
		rcfg := dbConfig(t, m.Container, "bulk", map[string]cty.Value{"restore_jobs": cty.NumberIntVal(3)})
		_, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: rcfg, Artifact: "bulk",
			Options: ropts(t, map[string]string{optTarget: "broken"}), Details: res.Details}, bytes.NewReader(bad))
		if err == nil || !strings.Contains(err.Error(), "nosuch") || !strings.Contains(err.Error(), "doesn't exist") {
			t.Fatalf("restore of a broken dump: %v, want the server's words about table nosuch", err)
		}
		waitNoClient(t, m.Container)
	})

	t.Run("a cancelled load stops every client", func(t *testing.T) {
		// The run is cancelled (Ctrl-C, a timeout, mbk killed) once a
		// third of the dump has been read: every SQL client in the
		// container stops, and the error says why.
		ctx, cancel := context.WithCancelCause(testContext(t))
		defer cancel(nil)
		stop := errors.New("stopped by the test")
		r := &cancelAfter{r: bytes.NewReader(dump), n: len(dump) / 3, cancel: func() { cancel(stop) }}
		rcfg := dbConfig(t, m.Container, "bulk", map[string]cty.Value{"restore_jobs": cty.NumberIntVal(3)})
		_, err := p.Restore(ctx, sdk.RestoreRequest{Config: rcfg, Artifact: "bulk",
			Options: ropts(t, map[string]string{optTarget: "cancelled"}), Details: res.Details}, r)
		if !errors.Is(err, stop) {
			t.Fatalf("restore cancelled midway: %v, want the cause", err)
		}
		waitNoClient(t, m.Container)
	})
}

// waitNoClient fails when a SQL client still runs in the container.
func waitNoClient(t *testing.T, container string) {
	t.Helper()
	for range 80 {
		alive := false
		for _, l := range processes(t, container) {
			if strings.HasPrefix(l, "mariadb ") || strings.HasPrefix(l, "mysql ") {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("a SQL client still runs in %s: %q", container, processes(t, container))
}

// TestSplitRules pins the line rules the loader relies on, with lines as
// mariadb-dump 10.11 writes them.
func TestSplitRules(t *testing.T) {
	for _, l := range []string{
		"/*M!999999\\- enable the sandbox mode */ \n",
		"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n",
		"\n",
		"/*!40101 SET NAMES utf8mb4 */;\n",
		"/*!40103 SET TIME_ZONE='+00:00' */;\n",
		"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n",
	} {
		if !isSessionSetting([]byte(l)) {
			t.Errorf("%q is not taken as a session setting", l)
		}
	}
	for _, l := range []string{"DROP TABLE IF EXISTS `t`;\n", "SET @@GLOBAL.GTID_PURGED='x';\n", "CREATE TABLE `t` (\n"} {
		if isSessionSetting([]byte(l)) {
			t.Errorf("%q is taken as a session setting", l)
		}
	}
	for l, want := range map[string]bool{
		"LOCK TABLES `t` WRITE;\n":                    true,
		"UNLOCK TABLES;\n":                            true,
		"/*!40000 ALTER TABLE `t` DISABLE KEYS */;\n": true,
		"/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n":  true,
		"ALTER TABLE `t` ADD KEY k (a);\n":            false,
		"INSERT INTO `t` VALUES (1);\n":               false,
	} {
		if isDropped([]byte(l)) != want {
			t.Errorf("isDropped(%q) = %v", l, !want)
		}
	}
	for l, want := range map[string]bool{
		"INSERT INTO `t` VALUES (1),\n":        false,
		"(2);\n":                               true,
		"(3);\r\n":                             true,
		"('a;'),\n":                            false,
		"INSERT INTO `t` VALUES ('x;y;');\n":   true,
		"/*!40000 ALTER TABLE `t` ENABLE KEYS": false,
	} {
		if endsStatement([]byte(l)) != want {
			t.Errorf("endsStatement(%q) = %v", l, !want)
		}
	}
}

// fakeClients stands for the SQL clients of a load: each reads its stdin
// as the mariadb client would (statements end with ";\n" outside DELIMITER
// blocks are not needed here), answers the markers, and keeps the rest.
type fakeClients struct {
	mu   sync.Mutex
	next int
	got  [][]string // per client, the statements in order
}

func (f *fakeClients) run(ctx context.Context, c command) (int, error) {
	f.mu.Lock()
	id := f.next
	f.next++
	f.got = append(f.got, nil)
	f.mu.Unlock()
	sc := bufio.NewScanner(c.stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "SELECT '"+syncPrefix) {
			fmt.Fprintln(c.stdout, strings.TrimSuffix(strings.TrimPrefix(line, "SELECT '"), "';"))
			continue
		}
		f.mu.Lock()
		f.got[id] = append(f.got[id], line)
		f.mu.Unlock()
		if strings.HasSuffix(line, ";") && strings.HasPrefix(line, "(") {
			// A row takes the server a moment, as it would: a busy
			// connection is what makes the loader turn to another.
			time.Sleep(2 * time.Millisecond)
		}
	}
	return 0, sc.Err()
}
func (f *fakeClients) look(context.Context, []string) (map[string]bool, error) { return nil, nil }
func (f *fakeClients) where() string                                           { return "in a test" }
func (f *fakeClients) Close()                                                  {}

// TestLoadRouting checks where the loader sends each line of a dump:
// settings to every connection, table locks nowhere, rows of a table with
// a unique key it cannot defer to the first connection only, rows of the
// others spread, and each deferred ALTER TABLE after every row of its table.
func TestLoadRouting(t *testing.T) {
	var dump strings.Builder
	dump.WriteString("/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */;\n\n")
	table := func(name, create string, rows int) {
		fmt.Fprintf(&dump, "DROP TABLE IF EXISTS `%s`;\n%s", name, create)
		fmt.Fprintf(&dump, "LOCK TABLES `%s` WRITE;\n/*!40000 ALTER TABLE `%s` DISABLE KEYS */;\n", name, name)
		for i := range rows {
			fmt.Fprintf(&dump, "INSERT INTO `%s` VALUES (%d,1),\n(%d,2);\n", name, 2*i, 2*i+1)
		}
		fmt.Fprintf(&dump, "/*!40000 ALTER TABLE `%s` ENABLE KEYS */;\nUNLOCK TABLES;\n", name)
	}
	table("spread", "CREATE TABLE `spread` (\n  `id` int(11) NOT NULL,\n  `u` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`u`)\n) ENGINE=InnoDB;\n", 40)
	table("fk", "CREATE TABLE `fk` (\n  `id` int(11) NOT NULL,\n  `u` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`u`),\n"+
		"  CONSTRAINT `fk_1` FOREIGN KEY (`u`) REFERENCES `spread` (`id`)\n) ENGINE=InnoDB;\n", 40)
	dump.WriteString("-- Dump completed on 2026-01-01\n")

	f := &fakeClients{}
	p := newPlugin(t)
	ss := &session{run: f, sql: "mariadb", user: "u"}
	if err := p.load(testContext(t), ss, "db", 3, strings.NewReader(dump.String())); err != nil {
		t.Fatal(err)
	}
	// The first connection is the one that got the DDL.
	first := slices.IndexFunc(f.got, func(stmts []string) bool { return slices.Contains(stmts, "DROP TABLE IF EXISTS `spread`;") })
	if first < 0 {
		t.Fatalf("no client got the DDL: %q", f.got)
	}
	where := map[string][]int{} // table -> clients its INSERTs went to
	alterAt := -1
	for id, stmts := range f.got {
		if len(stmts) == 0 || !strings.Contains(stmts[0], "sandbox") || !slices.Contains(stmts, "/*!40101 SET NAMES utf8mb4 */;") {
			t.Errorf("client %d did not get the session settings first: %q", id, stmts[:min(3, len(stmts))])
		}
		for _, s := range stmts {
			switch {
			case strings.HasPrefix(s, "LOCK TABLES") || strings.HasPrefix(s, "UNLOCK") || strings.Contains(s, "DISABLE KEYS"):
				t.Errorf("client %d got %q", id, s)
			case strings.HasPrefix(s, "INSERT INTO `spread`"):
				where["spread"] = append(where["spread"], id)
			case strings.HasPrefix(s, "INSERT INTO `fk`"):
				where["fk"] = append(where["fk"], id)
			case strings.HasPrefix(s, "ALTER TABLE `spread` ADD UNIQUE KEY `u` (`u`);"):
				alterAt = id
			}
		}
	}
	if got := len(where["spread"]); got != 40 || !slices.ContainsFunc(where["spread"], func(i int) bool { return i != first }) {
		t.Errorf("rows of `spread` (keys deferred) went to clients %v", where["spread"])
	}
	if got := len(where["fk"]); got != 40 || slices.ContainsFunc(where["fk"], func(i int) bool { return i != first }) {
		t.Errorf("rows of `fk` (a unique key kept) went to clients %v, want the first only", where["fk"])
	}
	if alterAt < 0 {
		t.Fatal("the deferred keys of `spread` never came back")
	}
	if strings.Contains(strings.Join(f.got[first], "\n"), "UNIQUE KEY `u` (`u`)\n) ENGINE") {
		t.Error("`spread` was created with its unique key")
	}
}

// cancelAfter reads r and calls cancel once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.n -= k; c.n <= 0 && c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	return k, err
}

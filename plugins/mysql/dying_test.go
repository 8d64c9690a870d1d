package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestDyingClientFailsLoad gives the loader itself (past the check, as if
// it had missed a line) a dump whose \! line a client refuses: the
// restore fails at once with the client's words and the dump's line, the
// other connections stopped, on both kinds of client.
func TestDyingClientFailsLoad(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDBPublished(t)
	const password = "load pw"
	createAdmin(t, m, "admin", password)
	p := newPlugin(t)
	var dump strings.Builder
	dump.WriteString("/*!40101 SET NAMES utf8mb4 */;\n\nDROP TABLE IF EXISTS `t`;\nCREATE TABLE `t` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;\n")
	for i := range 200 {
		fmt.Fprintf(&dump, "INSERT INTO `t` VALUES (%d);\n", i)
	}
	mk := "/tmp/mbk-marker-dying-" + hex.EncodeToString([]byte(t.Name()))[:8]
	line := strings.Count(dump.String(), "\n") + 2
	fmt.Fprintf(&dump, "CREATE TABLE `u` (`a` int);\n\\! touch %s\n", mk)
	for i := range 200 {
		fmt.Fprintf(&dump, "INSERT INTO `u` VALUES (%d);\n", i)
	}
	for _, w := range []struct {
		name string
		cfg  sdk.Config
	}{
		{"in the container", dbConfig(t, m.Container, "x", nil)},
		{"on this host", tcpConfig(t, "127.0.0.1", m.Port, "x", login("admin", password))},
	} {
		t.Run(w.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(testContext(t), 2*time.Minute)
			defer cancel()
			s, err := decodeSettings(w.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ss, err := open(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Close()
			if ss.sandbox = ss.hasSandbox(ctx); !ss.sandbox {
				t.Fatalf("%s does not take --sandbox", ss.sql)
			}
			db := "dying" + fmt.Sprint(len(w.name))
			m.SQL(t, "CREATE DATABASE "+db+";")
			t0 := time.Now()
			err = p.load(ctx, ss, db, 2, strings.NewReader(dump.String()))
			t.Logf("after %s: %v", time.Since(t0).Round(time.Millisecond), err)
			if ctx.Err() != nil {
				t.Fatalf("the load hung until its timeout: %v", err)
			}
			if err == nil || !strings.Contains(err.Error(), `Unknown command '\!'`) && !strings.Contains(err.Error(), "sandbox") ||
				!strings.Contains(err.Error(), fmt.Sprintf("line %d", line)) {
				t.Fatalf("load: %v, want the client's words and dump line %d", err, line)
			}
			requireNoFile(t, m, mk)
			waitNoClient(t, m.Container)
		})
	}
}

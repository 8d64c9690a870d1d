package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk/sdktest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestConformance runs the SDK's source kit against a real MariaDB
// container: a database dumped as a user with a password, restored under
// another name on the same server, and a dump and a restore cancelled
// midway (the table is large enough for that).
func TestConformance(t *testing.T) {
	t.Parallel()
	const user, password = "mbkkit", "K1t-pa55-9d2f"
	db := testenv.StartMariaDB(t)
	db.SQL(t, `
CREATE DATABASE moodle CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE moodle;
CREATE TABLE mdl_user (id INT PRIMARY KEY, name VARCHAR(100)) ENGINE=InnoDB;
INSERT INTO mdl_user VALUES (1, 'Ñandú'), (2, 'emoji 😀'), (3, NULL);
CREATE TABLE mdl_log (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB;
INSERT INTO mdl_log SELECT seq, REPEAT(MD5(seq), 6) FROM seq_1_to_60000;
CREATE USER '`+user+`'@'localhost' IDENTIFIED BY '`+password+`';
GRANT ALL PRIVILEGES ON *.* TO '`+user+`'@'localhost';
`)
	tables := []string{"mdl_user", "mdl_log"}
	sdktest.Source(t, newPlugin(t), sdktest.SourceCase{
		Settings: map[string]cty.Value{
			"container": cty.StringVal(db.Container), "database": cty.StringVal("moodle"),
			"user": cty.StringVal(user), "password": cty.StringVal(password),
		},
		RestoreOptions: map[string]cty.Value{optTarget: cty.StringVal("moodle_copy")},
		// The cancelled restore replaces what the first one made.
		CancelRestoreOptions: map[string]cty.Value{optTarget: cty.StringVal("moodle_copy"), optReplace: cty.True},
		Verify: func(tb testing.TB) {
			for _, table := range tables {
				q := "CHECKSUM TABLE %s.%s EXTENDED;"
				want := db.SQL(tb, fmt.Sprintf(q, "moodle", table))
				got := db.SQL(tb, fmt.Sprintf(q, "moodle_copy", table))
				if strings.Fields(got)[1] != strings.Fields(want)[1] {
					tb.Errorf("table %s: checksum %q after restore, %q before", table, got, want)
				}
			}
		},
	})
}

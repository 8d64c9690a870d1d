package main

import (
	"errors"
	"testing"
)

// TestDefaultTarget: without target_database a restore goes to the database
// the stage names now (production's set into testing's stage goes to
// testing's database), or with databases/all_databases to the dumped one.
func TestDefaultTarget(t *testing.T) {
	d := details{Database: "moodle"}
	if got := defaultTarget(settings{Database: "moodle_test"}, d); got != "moodle_test" {
		t.Errorf("database set: %q", got)
	}
	if got := defaultTarget(settings{Databases: []string{"moodle", "other"}}, d); got != "moodle" {
		t.Errorf("databases set: %q", got)
	}
	if got := defaultTarget(settings{AllDatabases: true}, d); got != "moodle" {
		t.Errorf("all_databases: %q", got)
	}
}

// TestLockConflict: a deadlock or a lock wait timeout between the load's
// own connections is retried over one; any other error is the dump's or the
// server's and fails the restore.
func TestLockConflict(t *testing.T) {
	for msg, want := range map[string]bool{
		"mariadb: ERROR 1213 (40001) at line 1654: Deadlock found when trying to get lock; try restarting transaction [connection 1, line 5383 of the dump]": true,
		"mysql: ERROR 1205 (HY000) at line 12: Lock wait timeout exceeded; try restarting transaction":                                                       true,
		"mariadb: ERROR 1146 (42S02) at line 3664: Table 'broken.nosuch' doesn't exist":                                                                      false,
		"mariadb: ERROR 1114 (HY000) at line 9: The table 'mdl_big' is full":                                                                                 false,
	} {
		if got := lockConflict(errors.New(msg)); got != want {
			t.Errorf("lockConflict(%q) = %v", msg, got)
		}
	}
}

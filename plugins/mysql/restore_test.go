package main

import "testing"

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

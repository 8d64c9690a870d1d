package main

import (
	"slices"
	"testing"
)

// TestDumpedObjects: the objects a backup records are those its dump
// carries, as extra_args shape it.
func TestDumpedObjects(t *testing.T) {
	db := database{Name: "moodle", Views: []string{"v1", "v2"}, Programs: []program{
		{Kind: "PROCEDURE", Name: "p"}, {Kind: "FUNCTION", Name: "f"},
		{Kind: "TRIGGER", Name: "t1", Table: "a"}, {Kind: "TRIGGER", Name: "t2", Table: "b"},
		{Kind: "EVENT", Name: "e"},
	}}
	all := []string{"EVENT e", "FUNCTION f", "PROCEDURE p", "TRIGGER t1", "TRIGGER t2", "VIEW v1", "VIEW v2"}
	for _, c := range []struct {
		name    string
		skipped []string
		extra   []string
		want    []string
	}{
		{"everything", nil, nil, all},
		{"table left out", []string{"b"}, []string{"--ignore-table=moodle.b"}, []string{"EVENT e", "FUNCTION f", "PROCEDURE p", "TRIGGER t1", "VIEW v1", "VIEW v2"}},
		{"view left out, two words", nil, []string{"--ignore-table", "moodle.v2", "--ignore-table=other.v1"}, []string{"EVENT e", "FUNCTION f", "PROCEDURE p", "TRIGGER t1", "TRIGGER t2", "VIEW v1"}},
		{"no triggers", nil, []string{"--skip-triggers"}, []string{"EVENT e", "FUNCTION f", "PROCEDURE p", "VIEW v1", "VIEW v2"}},
		{"no routines, no events", nil, []string{"--routines=0", "--loose_skip_events"}, []string{"TRIGGER t1", "TRIGGER t2", "VIEW v1", "VIEW v2"}},
		{"off, then on again", nil, []string{"--skip-events", "--events"}, all},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := dumpedObjects(db, c.skipped, c.extra); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

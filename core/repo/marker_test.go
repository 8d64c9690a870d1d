package repo

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRestoreMarker(t *testing.T) {
	root := t.TempDir()
	if m, err := ReadRestoreMarker(root); m != nil || err != nil {
		t.Fatalf("empty root: %+v, %v", m, err)
	}
	want := RestoreMarker{Pipeline: "prod", Set: "2026-12-01_03-00-00", Safety: "2026-12-03_09-12-00",
		Started: time.Date(2026, 12, 3, 9, 12, 0, 0, time.UTC), Host: "moodle1", PID: 42, Args: []string{"--clean"}}
	if err := WriteRestoreMarker(root, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, RestoreMarkerFile))
	if err != nil || st.Mode().Perm() != FileMode {
		t.Fatalf("marker file: %v, %v", st, err)
	}
	got, err := ReadRestoreMarker(root)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// The marker is no set: listing the root ignores it.
	if sets, err := List(root, time.UTC); err != nil || len(sets) != 0 {
		t.Errorf("List sees %v, %v", sets, err)
	}
	want.Error = "disk full"
	if err := WriteRestoreMarker(root, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadRestoreMarker(root); got.Error != "disk full" {
		t.Errorf("rewritten marker: %+v", got)
	}
	if err := ClearRestoreMarker(root); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadRestoreMarker(root); m != nil || err != nil {
		t.Fatalf("after clearing: %+v, %v", m, err)
	}
	if err := ClearRestoreMarker(root); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, RestoreMarkerFile), []byte("{"), FileMode); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRestoreMarker(root); err == nil {
		t.Error("a broken marker was read as none")
	}
}

package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// RestoreMarkerFile is left in a root while a restore runs, and stays when
// one fails or is killed: the site then holds part of a set, and no backup
// may take it for good data until a restore completes or is abandoned.
const RestoreMarkerFile = ".mbk-restore-unfinished.json"

// RestoreMarker says which restore is unfinished and how to undo it.
type RestoreMarker struct {
	Pipeline string `json:"pipeline"`
	Set      string `json:"set"`                  // the set being restored
	Safety   string `json:"safety_set,omitempty"` // the safety copy taken first
	// Args are the restore's own flags (--clean, --only, targets): a
	// restore that puts the site back or tries again needs the same.
	Args    []string  `json:"args,omitempty"`
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	// Error is why the restore failed; empty while it runs (or after a kill).
	Error string `json:"error,omitempty"`
}

// WriteRestoreMarker records a restore in the root, atomically and durably.
func WriteRestoreMarker(root string, m RestoreMarker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileSync(filepath.Join(root, RestoreMarkerFile), append(b, '\n')); err != nil {
		return fmt.Errorf("restore marker: %w", err)
	}
	return SyncDir(root)
}

// ReadRestoreMarker returns the root's unfinished restore, or nil.
func ReadRestoreMarker(root string) (*RestoreMarker, error) {
	b, err := os.ReadFile(filepath.Join(root, RestoreMarkerFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m RestoreMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid (%v): remove it once the site is known to be whole", filepath.Join(root, RestoreMarkerFile), err)
	}
	return &m, nil
}

// ClearRestoreMarker removes the marker: the restore completed, or the
// administrator abandoned it.
func ClearRestoreMarker(root string) error {
	err := os.Remove(filepath.Join(root, RestoreMarkerFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return SyncDir(root)
}

package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/mbk-backup/mbk/core/spec"
)

// Drills keep their own files in a root, beside the sets and never inside
// them (a set's files are what its checksums and signature cover):
const (
	// DrillLockFile is held for the whole of a drill: one drill at a time,
	// and a marker whose lock is free belongs to a drill that died.
	DrillLockFile = ".mbk-drill.lock"
	// DrillMarkerFile names what a running drill made, so that the next
	// drill or run removes it if the drill is killed.
	DrillMarkerFile = ".mbk-drill-unfinished.json"
	// DrillDir holds one record per drilled set (<set>.json, the newest
	// drill of it) and the drill counter that rotates the sample.
	DrillDir = ".mbk-drills"
)

// DrillLock is a held drill lock.
type DrillLock struct{ fl *flock.Flock }

// AcquireDrill takes the root's drill lock without waiting.
func AcquireDrill(root string) (*DrillLock, error) {
	fl, pid, err := tryLock(filepath.Join(root, DrillLockFile))
	if err != nil {
		return nil, err
	}
	if fl == nil {
		return nil, fmt.Errorf("another drill (pid %d) is running on %s", pid, root)
	}
	return &DrillLock{fl: fl}, nil
}

// Release lets go of the lock.
func (l *DrillLock) Release() error { return l.fl.Unlock() }

// DrillRunning reports whether a live process holds the root's drill lock.
func DrillRunning(root string) bool {
	path := filepath.Join(root, DrillLockFile)
	if _, err := os.Stat(path); err != nil {
		return false
	}
	fl := flock.New(path, flock.SetFlag(os.O_RDWR))
	ok, err := fl.TryLock()
	if err != nil {
		return false
	}
	if ok {
		fl.Unlock()
		return false
	}
	return true
}

// DrillMarker says what a drill has made and must remove.
type DrillMarker struct {
	Pipeline string    `json:"pipeline"`
	Set      string    `json:"set"`
	Label    string    `json:"label"`
	Stages   []string  `json:"stages"` // "kind/name" of each stage that made a sandbox
	Started  time.Time `json:"started"`
	PID      int       `json:"pid"`
}

// WriteDrillMarker records a drill's sandboxes, durably, before they exist.
func WriteDrillMarker(root string, m DrillMarker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileSync(filepath.Join(root, DrillMarkerFile), append(b, '\n')); err != nil {
		return fmt.Errorf("drill marker: %w", err)
	}
	return SyncDir(root)
}

// ReadDrillMarker returns the marker a drill left, or nil.
func ReadDrillMarker(root string) (*DrillMarker, error) {
	b, err := os.ReadFile(filepath.Join(root, DrillMarkerFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m DrillMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid (%v): remove containers and volumes labelled mbk.drill by hand, then the file", filepath.Join(root, DrillMarkerFile), err)
	}
	return &m, nil
}

// ClearDrillMarker removes the marker once everything it names is gone.
func ClearDrillMarker(root string) error {
	err := os.Remove(filepath.Join(root, DrillMarkerFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// WriteDrillRecord keeps a drill's result as the newest record of its set.
func WriteDrillRecord(root string, r spec.DrillReport) error {
	dir := filepath.Join(root, DrillDir)
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileSync(filepath.Join(dir, r.Set+".json"), append(b, '\n'))
}

// ReadDrillRecord returns the newest drill of a set, or nil when it was
// never drilled.
func ReadDrillRecord(root, set string) (*spec.DrillReport, error) {
	b, err := os.ReadFile(filepath.Join(root, DrillDir, set+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r spec.DrillReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("drill record of set %s: %w", set, err)
	}
	return &r, nil
}

// DeleteDrillRecord forgets a set's drills (the set is gone).
func DeleteDrillRecord(root, set string) error {
	err := os.Remove(filepath.Join(root, DrillDir, set+".json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// NextDrill counts a drill and returns how many came before it: the sample's
// rotation turns with it.
func NextDrill(root string) (int, error) {
	return nextCount(filepath.Join(root, DrillDir), "count")
}

// VerifyDir holds, per store, the count of the verifies that read part of
// it (<store>.count): the part read turns with it, as a drill's sample does.
const VerifyDir = ".mbk-verify"

// NextVerify counts a verify of part of a store and returns how many came
// before it.
func NextVerify(root, store string) (int, error) {
	return nextCount(filepath.Join(root, VerifyDir), url.PathEscape(store)+".count")
}

// nextCount increments the counter kept in dir/name and returns its value
// before: a missing or unreadable counter starts at 0.
func nextCount(dir, name string) (int, error) {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return 0, err
	}
	path := filepath.Join(dir, name)
	n := 0
	if b, err := os.ReadFile(path); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return n, WriteFileSync(path, []byte(strconv.Itoa(n+1)+"\n"))
}

// LastDrill returns the newest drill of any set of the root (by when it
// started), or nil when none is recorded.
func LastDrill(root string) (*spec.DrillReport, error) {
	files, err := filepath.Glob(filepath.Join(root, DrillDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var newest *spec.DrillReport
	for _, f := range files {
		r, err := ReadDrillRecord(root, strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			return nil, err
		}
		if r != nil && (newest == nil || r.Started.After(newest.Started)) {
			newest = r
		}
	}
	return newest, nil
}

package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// LockFile guards a root: one run at a time, whether started by cron, the
// daemon or a person.
const LockFile = ".mbk.lock"

// Lock is a held lock on a root.
type Lock struct {
	fl *flock.Flock
}

// ErrLocked says another process holds the lock.
var ErrLocked = errors.New("locked")

// LockedError names the holder.
type LockedError struct {
	Root string
	PID  int
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another mbk run (pid %d) holds the lock on %s", e.PID, e.Root)
	}
	return fmt.Sprintf("another mbk run holds the lock on %s", e.Root)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Acquire takes the root's lock without waiting. The kernel releases a flock
// when its holder dies, so a lock left by a killed run is taken over at once;
// the PID written inside only serves to name a live holder.
func Acquire(root string) (*Lock, error) {
	path := filepath.Join(root, LockFile)
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(FileMode))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		pid := 0
		if b, err := os.ReadFile(path); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return nil, &LockedError{Root: root, PID: pid}
	}
	// Written through a second descriptor: the flock stays on the first.
	_ = os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), FileMode)
	return &Lock{fl: fl}, nil
}

// Release gives the lock up.
func (l *Lock) Release() error { return l.fl.Unlock() }

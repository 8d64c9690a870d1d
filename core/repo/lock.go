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
	fl, pid, err := tryLock(filepath.Join(root, LockFile))
	if err != nil {
		return nil, err
	}
	if fl == nil {
		return nil, &LockedError{Root: root, PID: pid}
	}
	return &Lock{fl: fl}, nil
}

// tryLock takes the flock on path without waiting and writes our PID in the
// file; when another process holds it, it returns nil and the PID written
// there (0 when unreadable).
func tryLock(path string) (*flock.Flock, int, error) {
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(FileMode))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, 0, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		pid := 0
		if b, err := os.ReadFile(path); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return nil, pid, nil
	}
	// Written through a second descriptor: the flock stays on the first.
	_ = os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), FileMode)
	return fl, 0, nil
}

// Release gives the lock up.
func (l *Lock) Release() error { return l.fl.Unlock() }

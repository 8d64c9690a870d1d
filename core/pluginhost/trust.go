package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// UntrustedError says why a plugin binary is refused: when mbk runs as root,
// the binary and every directory above it must be owned by root and
// writable by no one else, as OpenSSH asks of its key files. Otherwise
// whoever may write there decides what runs as root at the next backup.
type UntrustedError struct {
	Plugin string
	Binary string // the binary found on the search path
	Path   string // the file or directory at fault
	Dir    bool   // Path is a directory
	Reason string // "is writable by its group (mode 0775)"
	Fix    string // the command that makes it trusted
}

func (e *UntrustedError) Error() string {
	what := e.Path
	if e.Dir {
		what = "directory " + e.Path
	}
	return fmt.Sprintf("refusing plugin %q at %s: %s %s: mbk runs as root, so a plugin binary and every directory above it must be owned by root and writable by no one else. Run: %s",
		e.Plugin, e.Binary, what, e.Reason, e.Fix)
}

// checkTrusted refuses binary (plugin name's) unless it and every
// directory above it, up to /, are owned by root and not writable by group
// or others. The binary is checked where it lies and, when it is a link,
// where the link leads. A directory writable by others but sticky and owned
// by root (/tmp) passes: only an entry's owner may rename or remove it
// there, so no one else can swap a root-owned directory under it.
func checkTrusted(name, binary string) error {
	abs, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	fail := func(path string, dir bool, reason, fix string) error {
		return &UntrustedError{Plugin: name, Binary: binary, Path: path, Dir: dir, Reason: reason, Fix: fix}
	}
	st, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fail(real, false, "is not a regular file", "rm "+real)
	}
	if err := trusted(real, st, false, fail); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, start := range []string{filepath.Dir(real), filepath.Dir(abs)} {
		for d := start; !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			st, err := os.Stat(d)
			if err != nil {
				return err
			}
			if err := trusted(d, st, true, fail); err != nil {
				return err
			}
		}
	}
	return nil
}

// trusted checks one file or directory's owner and mode.
func trusted(path string, st os.FileInfo, dir bool, fail func(path string, dir bool, reason, fix string) error) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", path)
	}
	if sys.Uid != 0 {
		return fail(path, dir, fmt.Sprintf("is owned by uid %d, not root", sys.Uid), "chown root "+path)
	}
	mode := st.Mode()
	if dir && mode&os.ModeSticky != 0 {
		return nil
	}
	switch {
	case mode.Perm()&0o002 != 0:
		return fail(path, dir, fmt.Sprintf("is writable by every user (mode %04o)", mode.Perm()), "chmod go-w "+path)
	case mode.Perm()&0o020 != 0:
		return fail(path, dir, fmt.Sprintf("is writable by its group, gid %d (mode %04o)", sys.Gid, mode.Perm()), "chmod go-w "+path)
	}
	return nil
}

// PinError says that a pinned binary is not the one its pin names.
type PinError struct {
	Plugin, Binary string
	Want, Got      string // hex sha256
}

func (e *PinError) Error() string {
	return fmt.Sprintf("refusing plugin %q at %s: its sha256 is %s, but the pipeline file pins %s (plugin %q { sha256 = ... }): the binary changed since it was pinned",
		e.Plugin, e.Binary, e.Got, e.Want, e.Plugin)
}

// fileSHA256 hashes a file, hex.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

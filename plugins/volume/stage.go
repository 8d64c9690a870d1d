package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// A restore into a target that holds files (clean=true) never empties it
// first. It writes the archive into a staging directory inside the target,
//
//	<target>/.mbk-restore-<random>/new
//
// on the same filesystem, so that the swap is a handful of renames: every
// top-level entry of the target moves into .mbk-restore-<random>/old, every
// entry of new moves up, the archive's root metadata goes onto the target
// itself (a volume's _data or a mountpoint cannot be renamed, only its
// contents), and the staging directory is removed. The staging directory is
// owner-only (root's, 0700): a live site's user cannot reach into it while
// the archive is written. Until the swap, a failure (a truncated archive, a
// refused entry, a full disk, a cancelled run) leaves every old file as it
// was, and the staging directory is removed; if the process is killed, the
// next restore into that target removes it (removeLeftovers).
//
// Moodle's climaintenance.html in the target stays where it is: the
// pipeline's maintenance mode relies on it through the restore, so the
// archive's copy, if any (it is excluded by default), does not replace it.
const (
	stagingPrefix   = ".mbk-restore-"
	stageNew        = "new"
	stageOld        = "old"
	maintenanceFile = "climaintenance.html"
)

// newStaging creates <root>/.mbk-restore-<random>/new and returns the
// staging directory's name.
func newStaging(root string) (string, error) {
	name, err := stagingName()
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(filepath.Join(root, name), 0o700); err != nil {
		return "", fmt.Errorf("create the staging directory: %w", err)
	}
	if err := os.Mkdir(filepath.Join(root, name, stageNew), 0o700); err != nil {
		os.RemoveAll(filepath.Join(root, name))
		return "", fmt.Errorf("create the staging directory: %w", err)
	}
	return name, nil
}

func stagingName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("staging directory name: %w", err)
	}
	return stagingPrefix + hex.EncodeToString(b[:]), nil
}

// removeLeftovers removes the staging directories of interrupted restores
// (except keep). os.RemoveAll never follows a symlink below what it removes.
func removeLeftovers(root, keep string, log hclog.Logger) error {
	names, err := readNames(root)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, stagingPrefix) || n == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, n)); err != nil {
			return fmt.Errorf("remove %q left by an interrupted restore: %w", n, err)
		}
		log.Warn("removed a staging directory left by an interrupted restore", "path", filepath.Join(root, n))
	}
	return nil
}

// swapIn replaces the contents of root with those of <stage>/new, keeps
// climaintenance.html, gives root the metadata of <stage>/new when setRoot
// (the archive had a root entry), removes the staging directory and syncs.
// All of it by renames inside root: no data is copied. Every name is
// resolved from a descriptor of root, without following symlinks.
func swapIn(root, stage string, setRoot bool, log hclog.Logger) error {
	rfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", root, err)
	}
	defer unix.Close(rfd)
	newDir, oldDir := stage+"/"+stageNew, stage+"/"+stageOld
	var nst unix.Stat_t
	if err := unix.Fstatat(rfd, newDir, &nst, unix.AT_SYMLINK_NOFOLLOW); err != nil || nst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("the restored files are not in %q (%v): the old files are untouched", filepath.Join(root, newDir), err)
	}
	if err := unix.Mkdirat(rfd, oldDir, 0o700); err != nil && err != unix.EEXIST {
		return fmt.Errorf("swap: %w; the old files are untouched", err)
	}
	olds, err := readNames(root)
	if err != nil {
		return err
	}
	news, err := readNames(filepath.Join(root, newDir))
	if err != nil {
		return err
	}
	keptMaintenance := false
	for _, n := range olds {
		switch {
		case n == stage:
			continue
		case n == maintenanceFile:
			keptMaintenance = true
			continue
		}
		if err := unix.Renameat2(rfd, n, rfd, oldDir+"/"+n, unix.RENAME_NOREPLACE); err != nil {
			return fmt.Errorf("swap: move %q aside: %w; the old files are in %q", n, err, filepath.Join(root, oldDir))
		}
	}
	for _, n := range news {
		if n == maintenanceFile && keptMaintenance {
			log.Info("kept the target's climaintenance.html; the archive's copy is not restored")
			continue
		}
		err := unix.Renameat2(rfd, newDir+"/"+n, rfd, n, unix.RENAME_NOREPLACE)
		if err == unix.EEXIST {
			// Created meanwhile by a live site: it goes with the old files.
			if err = unix.Renameat2(rfd, n, rfd, oldDir+"/"+n, unix.RENAME_NOREPLACE); err == nil {
				err = unix.Renameat2(rfd, newDir+"/"+n, rfd, n, unix.RENAME_NOREPLACE)
			}
		}
		if err != nil {
			return fmt.Errorf("swap: move %q in: %w; the old files are in %q, the restored ones in %q",
				n, err, filepath.Join(root, oldDir), filepath.Join(root, newDir))
		}
	}
	rmErr := os.RemoveAll(filepath.Join(root, stage))
	// After the removal, which changes root's mtime too.
	if setRoot {
		x := &extractor{log: log}
		a := attrs{uid: int(nst.Uid), gid: int(nst.Gid), mode: int64(nst.Mode & 0o7777), mtime: nst.Mtim.Nano()}
		if err := x.metaFd(rfd, ".", a); err != nil {
			return fmt.Errorf("swap: %w", err)
		}
	}
	if rmErr != nil {
		return fmt.Errorf("swapped in, but removing the old files failed (the next restore removes them): %w", rmErr)
	}
	if err := unix.Syncfs(rfd); err != nil {
		return fmt.Errorf("sync %q: %w", root, err)
	}
	log.Info("swapped the restored files in; the old ones are removed", "path", root, "replaced", len(olds)-1)
	return nil
}

// helperArg, as the first argument, runs the plugin binary as its helper
// inside a container on the Engine path (selfhelper.go): to finish a staged
// restore (engine.go), since the Engine's archive API can write files but
// neither rename nor delete them, and to run a drill's checks next to the
// volume (check.go).
const helperArg = "mbk-volume-stage-helper"

// helperMain is the helper's main: "swap ROOT STAGE SETROOT",
// "remove ROOT STAGE" or "check ROOT SPEC". It logs on stderr, writes
// answers on stdout, and returns the exit code.
func helperMain(args []string) int {
	log := hclog.New(&hclog.LoggerOptions{Name: "volume-helper", Output: os.Stderr, Level: hclog.Info})
	err := func() error {
		if len(args) > 0 && args[0] == checkCmd {
			return checkMain(args[1:], log)
		}
		if len(args) > 0 && args[0] == walkCmd {
			return walkMain(args[1:], log)
		}
		if len(args) < 3 || !strings.HasPrefix(args[2], stagingPrefix) || strings.Contains(args[2], "/") {
			return fmt.Errorf("bad arguments %q", args)
		}
		switch {
		case len(args) == 4 && args[0] == "swap":
			if err := removeLeftovers(args[1], args[2], log); err != nil {
				return err
			}
			return swapIn(args[1], args[2], args[3] == "1", log)
		case len(args) == 3 && args[0] == "remove":
			return os.RemoveAll(filepath.Join(args[1], args[2]))
		}
		return errors.New("usage: swap ROOT STAGE 0|1, or remove ROOT STAGE")
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// Command mbk-plugin-volume serves the "archive" stage: it turns Moodle's
// dataroot (moodledata) into one uncompressed tar stream and puts such a
// stream back.
//
// # Sources
//
// Exactly one of:
//   - volume: a named Docker volume;
//   - container + path: a directory inside a running container;
//   - path: a directory on the host.
//
// # Reading a named volume without pulling an image
//
// The Engine's archive API (CopyFromContainer, the call behind `docker cp`)
// reads any path of any container, started or not, volumes included. So the
// plugin reads the volume through a running container that already mounts it
// when there is one; otherwise it creates, and never starts, a helper
// container named mbk-volume-helper-<random> with the volume mounted
// read-only at /data, and removes it afterwards (also on failure or
// cancellation, with a fresh context). A container that is never started
// needs no working image: the helper uses mbk-scratch:latest when present,
// else the smallest image already on the host, else it imports an empty tar
// as mbk-scratch:latest (ImageImport needs no registry). Nothing is pulled.
//
// The Engine prefixes every entry with the base name of the copied path; the
// plugin re-emits the stream as a PAX tar with names relative to the source
// root ("./" is the root itself), numeric owners only, dropping excluded
// entries. The Engine sends excluded directories too (the API cannot filter),
// and it skips files that vanish while it reads, noting that only in the
// daemon's log, and it truncates mtimes to whole seconds. A stream that ends
// without tar's end-of-archive marker is an error: the Engine stopped early.
//
// With filedir = "pool" the archive API would send every file's content
// every night; instead this binary walks the tree in a helper container
// next to the data, as it walks a host directory, and asks back which blobs
// the core lacks (helperwalk.go). The archive API is read only where the
// Engine cannot run the helper.
//
// # Host directories
//
// The plugin walks the directory itself: hard links by (device, inode), symlinks
// as links, numeric owners, nanosecond mtimes. A file that vanishes or changes
// size while it is read is a WARNING (in the log, the details and the info
// file), never a failure: the archive stays valid (a shrunk file is padded with
// zeros, a grown one cut at its first size) and the site was live anyway.
//
// # Exclusions
//
// Patterns are relative to the source root and use path.Match globs per
// component ("*" never crosses "/"). A pattern without a slash matches a
// top-level name ("cache", "*.log"); "lang/*/cache" matches at that depth. A
// match on a directory excludes everything below it, so "cache" is enough
// ("cache/" and "cache/**" mean the same). Extended attributes and ACLs are not
// kept: Moodle does not use them.
//
// # Restore
//
// Options: target_volume (a named volume, created when missing), target_path
// (a host directory), neither (the source itself), clean ("true"/"false") and
// keep_special. A non-empty target is refused unless clean=true. Every entry is
// checked while the stream passes: no absolute name, no ".." after cleaning,
// hard links inside the target, nothing through a symlink the archive itself
// created. The first bad entry aborts the restore. The extraction never
// follows a symlink (extract.go), and devices, FIFOs, setuid/setgid bits and
// root-owned entries are not restored as archived unless keep_special
// (special.go).
//
// An empty target is written directly. With clean=true a target holding
// files is restored into a staging directory inside it and swapped in only
// when the whole archive was written and read to its end: a failure leaves
// the old files as they were, and climaintenance.html stays (stage.go).
//
// Volumes are written with CopyToContainer (numeric owners kept) into a
// created, never started, helper mounting the volume read-write at /data.
// The archive API can neither rename nor delete, so the swap of a clean
// restore runs in a helper container started from an imported image holding
// only this plugin's binary (selfhelper.go); a live site may keep the volume
// mounted. A container path cannot be cleaned (the archive API cannot delete
// there either).
//
// # Drills
//
// `mbk drill` restores a set into throwaway targets and checks what came
// back (drill.go, check.go, treecheck.go). Sandbox creates an empty volume
// <label>-<artifact> labelled mbk.drill=<label> and returns target_volume,
// so the ordinary restore into a new volume fills it, whatever the stage
// reads. Every helper container and image made for such a volume carries
// the same label, and Teardown removes all of it (containers, volumes,
// images), also what a killed drill left.
//
// Check runs three checks on the restored tree, where the restore options
// point (else on the stage's source): references (each sha1 content hash
// an earlier stage names has its blob in filedir or trashdir), blob-hashes
// (the sample's blobs re-hashed with SHA-1 equal their names) and files
// (file count and bytes as the backup recorded them). The tree is read
// from directory descriptors without following symlinks. A directory this
// host can open is checked here; any other volume, and a container path,
// by this binary in a helper container next to the data (selfhelper.go),
// given the references on stdin and answering in JSON on stdout.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/sdk"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == helperArg {
		os.Exit(helperMain(os.Args[2:]))
	}
	sdk.Main("volume", func(log hclog.Logger) sdk.Plugin { return &plugin{log: log} })
}

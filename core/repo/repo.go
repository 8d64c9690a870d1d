// Package repo is the backup set on disk: one directory per run under a
// pipeline's root, staged hidden and renamed into place only when complete,
// with SHA256SUMS and manifest.json (written last, the completion marker).
package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mbk-backup/mbk/core/spec"
)

// SetNameLayout names sets by their start time in the pipeline's timezone
// (the seed's naming, so its operators find what they know).
const SetNameLayout = "2006-01-02_15-04-05"

// Hidden prefixes: a staging set being built, and a set being deleted.
const (
	StagingPrefix  = ".mbk-partial-"
	DeletingPrefix = ".mbk-deleting-"
	DownloadPrefix = ".mbk-download-" // a set fetched from a store for a restore
	ManifestFile   = "manifest.json"
	SumsFile       = "SHA256SUMS"
	LogFile        = "backup.log"
)

// Modes: sets hold a school's data, readable by their owner only.
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
)

// Manifest is manifest.json.
type Manifest struct {
	Format   int       `json:"format"`
	Pipeline string    `json:"pipeline"`
	Set      string    `json:"set"`
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     string    `json:"host"`
	// HostID is MachineID on the machine that made the set: it tells
	// apart a cloned server that kept its host name.
	HostID     string     `json:"host_id,omitempty"`
	MBKVersion string     `json:"mbk_version"`
	Timezone   string     `json:"timezone"`
	Artifacts  []Artifact `json:"artifacts"`
	Stages     []Stage    `json:"stages"`
	// MaintenanceMS is how long mbk held the site in maintenance mode.
	MaintenanceMS int64 `json:"maintenance_ms,omitempty"`
	// Kind is KindPreRestore for the safety copy a restore takes of the
	// site before it overwrites it; empty for a backup.
	Kind string `json:"kind,omitempty"`
	// Restoring names the set whose restore took this safety copy.
	Restoring string `json:"restoring,omitempty"`
	// WWWRoot is the site's URL ($CFG->wwwroot) when the backup was
	// taken, read in the app container: a clone into another site
	// replaces it with that site's.
	WWWRoot string `json:"wwwroot,omitempty"`
	// Alarms are the artifacts that were suspiciously small when the set
	// was made (empty, below min_size, far below the previous set's).
	Alarms []spec.Alarm `json:"alarms,omitempty"`
}

// KindPreRestore marks a safety copy taken before a restore.
const KindPreRestore = "pre-restore"

// PreRestore reports whether the set is a restore's safety copy.
func (s Set) PreRestore() bool { return s.Manifest != nil && s.Manifest.Kind == KindPreRestore }

// StatusComplete marks a set every required stage succeeded for.
const StatusComplete = "complete"

// Artifact is one stored file of a set.
type Artifact struct {
	Stage       string          `json:"stage"`
	Plugin      string          `json:"plugin"`
	Name        string          `json:"name"` // the stage's name
	ArtifactID  string          `json:"artifact_id"`
	File        string          `json:"file"`
	Format      string          `json:"format"`
	Compression string          `json:"compression"`
	Encryption  string          `json:"encryption,omitempty"` // "age" or none
	Size        int64           `json:"size"`
	SHA256      string          `json:"sha256"`
	RawSize     int64           `json:"raw_size"`
	RawXXH64    string          `json:"raw_xxh64,omitempty"`  // XXH64 of the decompressed stream, as xxhsum prints it
	RawSHA256   string          `json:"raw_sha256,omitempty"` // what sets made before raw_xxh64 carry instead
	DurationMS  int64           `json:"duration_ms"`
	Details     json.RawMessage `json:"details,omitempty"`
	// Pool is set for an artifact whose file contents went to the root's
	// pool: the set's POOL_REFS lists the blobs it references.
	Pool *PoolUse `json:"pool,omitempty"`
}

// PoolUse is what a pooled artifact took from and gave to the pool.
type PoolUse struct {
	Blobs       int64 `json:"blobs"`        // blobs referenced
	Bytes       int64 `json:"bytes"`        // their content's bytes
	NewBlobs    int64 `json:"new_blobs"`    // blobs this set added
	NewBytes    int64 `json:"new_bytes"`    // their content's bytes
	StoredBytes int64 `json:"stored_bytes"` // what they take on disk
	// Mismatched counts files whose content did not hash to the name the
	// plugin gave (stored under their real hash).
	Mismatched int64 `json:"mismatched,omitempty"`
}

// Stage is one stage's record in the manifest.
type Stage struct {
	Kind          string `json:"kind"`
	Plugin        string `json:"plugin"`
	Name          string `json:"name"`
	PluginVersion string `json:"plugin_version"`
	PluginPath    string `json:"plugin_path"`
	Status        string `json:"status"`
	DurationMS    int64  `json:"duration_ms"`
	Error         string `json:"error,omitempty"`
}

// Set is a set directory found under a root.
type Set struct {
	Name     string
	Dir      string
	Time     time.Time
	Complete bool
	Manifest *Manifest // nil when unreadable
	Problem  string    // why it is not complete
}

// Size is the bytes of the set's files, as they are now.
func (s Set) Size() int64 {
	var n int64
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			n += info.Size()
		}
	}
	return n
}

// ParseSetName reads a set's time from its name.
func ParseSetName(name string, loc *time.Location) (time.Time, bool) {
	t, err := time.ParseInLocation(SetNameLayout, name, loc)
	return t, err == nil
}

// List returns the sets under root, oldest first. Hidden staging and
// deleting directories are not sets.
func List(root string, loc *time.Location) ([]Set, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Set
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		t, ok := ParseSetName(e.Name(), loc)
		if !ok {
			continue
		}
		s := Set{Name: e.Name(), Dir: filepath.Join(root, e.Name()), Time: t}
		m, err := ReadManifest(s.Dir)
		switch {
		case err != nil:
			s.Problem = err.Error()
		case m.Status != StatusComplete:
			s.Manifest = m
			s.Problem = fmt.Sprintf("manifest status is %q", m.Status)
		case m.Set != s.Name:
			s.Manifest = m
			s.Problem = fmt.Sprintf("manifest names set %q", m.Set)
		default:
			s.Manifest = m
			s.Complete = true
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// ReadManifest reads and checks a set's manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no %s: the run that made it did not finish", ManifestFile)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid: %w", ManifestFile, err)
	}
	return &m, nil
}

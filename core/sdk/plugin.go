package sdk

import (
	"context"
	"io"
	"time"
)

// Plugin is what every plugin implements. It serves the kinds it lists in
// Describe and implements the matching interface for each.
type Plugin interface {
	Describe() Info
	// Schema returns the settings the given kind accepts.
	Schema(kind string) (Schema, error)
}

// Validator is optional: checks of a config beyond types and required
// attributes. It must not touch the outside world.
type Validator interface {
	ValidateConfig(ctx context.Context, cfg Config) Diagnostics
}

// Preflighter is optional: checks of the live world (containers, credentials,
// servers) that change nothing.
type Preflighter interface {
	Preflight(ctx context.Context, cfg Config) Diagnostics
}

// Artifact is one stream a dump or archive stage produces.
type Artifact struct {
	ID     string // opaque to the core, stable for the config
	Name   string // base of the file name: "moodle", "moodledata"
	Format string // "sql", "tar"
}

// BackupRequest asks a Source for one artifact.
type BackupRequest struct {
	Config   Config
	Artifact string // Artifact.ID
	Set      string
}

// BackupResult is what a Source reports about one artifact.
type BackupResult struct {
	Details  map[string]any // goes into manifest.json
	InfoFile string         // e.g. "DB_INFO.txt"
	InfoText string         // appended to InfoFile
}

// RestoreRequest asks a Source to put one artifact back.
type RestoreRequest struct {
	Config   Config
	Artifact string
	Options  map[string]string
	Details  map[string]any // what the backup recorded
}

// RestoreResult is what a Source reports after a restore.
type RestoreResult struct {
	Summary string
}

// Source serves the dump and archive kinds. Backup writes the raw stream
// (uncompressed: the core compresses, hashes and stores it) to w and returns
// only when it is complete; returning nil vouches for every byte. w is also a
// FileSender, for file contents that need not pass through the plugin.
// Restore reads the raw stream from r to its end.
type Source interface {
	Plan(ctx context.Context, cfg Config) ([]Artifact, error)
	Backup(ctx context.Context, req BackupRequest, w io.Writer) (BackupResult, error)
	Restore(ctx context.Context, req RestoreRequest, r io.Reader) (RestoreResult, error)
}

// FileSum is one file's checksum.
type FileSum struct {
	File      string
	Algorithm string
	Hex       string
	Size      int64
}

// Checksummer serves the checksum kind.
type Checksummer interface {
	Sum(ctx context.Context, cfg Config, dir string, files []string) ([]FileSum, error)
}

// SetInfo is one backup set as retention sees it.
type SetInfo struct {
	Name     string
	Time     time.Time
	Complete bool
}

// RetainInput is everything a retention policy decides from.
type RetainInput struct {
	Sets     []SetInfo
	Current  string // the set this run made
	Location *time.Location
}

// Decision is a policy's verdict on one set, with the reasons for it.
type Decision struct {
	Set     string   `json:"set"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
}

// Retainer serves the retain kind. It only decides; the core deletes.
type Retainer interface {
	Decide(ctx context.Context, cfg Config, in RetainInput) ([]Decision, error)
}

// Notifier serves the notify kind.
type Notifier interface {
	// Notify sends the report; event is success, failure, warning or test.
	Notify(ctx context.Context, cfg Config, event string, r Report) (summary string, err error)
}

// Diagnostic is a problem found in a config.
type Diagnostic struct {
	Error     bool
	Summary   string
	Detail    string
	Attribute string
}

// Diagnostics is a list of problems.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if x.Error {
			return true
		}
	}
	return false
}

// Errorf returns an error diagnostic about an attribute ("" for the stage).
func Errorf(attribute, format string, args ...any) Diagnostic {
	return Diagnostic{Error: true, Summary: sprintf(format, args...), Attribute: attribute}
}

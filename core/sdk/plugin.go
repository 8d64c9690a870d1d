package sdk

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/mbk-backup/mbk/core/internal/wire"
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
	// Pool asks the core for its pool during this artifact's backup
	// (BackupRequest.Pool). The artifact must be a tar stream: a pooled
	// file is an entry without data whose PAX records spec.PoolPAXSHA1 and
	// spec.PoolPAXSize name the blob Have or Put answered for it, or a
	// line of a pool listing entry (spec.PoolPAXListing, with directories
	// as lines too; spec.AppendListEntry writes them), and the core puts
	// the content back into the stream before a restore.
	Pool bool
}

// BackupRequest asks a Source for one artifact.
type BackupRequest struct {
	Config   Config
	Artifact string // Artifact.ID
	Set      string
	// Pool is the core's pool when the artifact was planned with Pool;
	// nil otherwise.
	Pool Pool
	// CacheDir, with Pool, is a directory the plugin may keep what it
	// learnt from this artifact's last backup in (the walk of an unchanged
	// tree, say), to make the next one cheaper. It is a cache: anything in
	// it may be gone or stale, and a backup must come out the same without
	// it. "" when there is none.
	CacheDir string
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
	// Options are the restore options the stage's schema declares
	// (Schema.RestoreOptions), as `mbk restore` set them, defaults filled
	// in: decode them like the settings.
	Options Config
	// Details is what the backup recorded. An artifact backed up with
	// Pool arrives whole: the core puts the pooled files' content back
	// into the stream.
	Details map[string]any
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
//
// A Source declares in Schema(kind).RestoreOptions what a restore may ask of
// it (a target database, a target volume, whether to replace what is there):
// the core knows no plugin's option names.
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
	// Notify sends the report; event is one of the Event constants.
	Notify(ctx context.Context, cfg Config, event string, r Report) (summary string, err error)
}

// FileSender is implemented by the writer a Source's Backup gets: SendFile
// writes the next n bytes of f into the stream straight from the page cache
// (sendfile(2) into the side channel's socket), where Write would have the
// plugin copy them into its memory and out again. Bytes written before and
// after keep their order.
//
// It returns how many bytes it sent: fewer than n only when f ended first,
// with a nil error. ErrNoSendFile, with nothing sent, says the file's
// filesystem cannot do it: write the bytes instead.
type FileSender interface {
	SendFile(f *os.File, n int64) (int64, error)
}

// ErrNoSendFile says sendfile(2) refused the file: use Write.
var ErrNoSendFile = wire.ErrNoSendFile

// Blob names a file's content in the core's pool: the SHA-1 of its bytes
// (lower-case hex) and its size.
type Blob = wire.Blob

// Pool is the core's content-addressed store, offered to the backup of an
// artifact planned with Artifact.Pool (BackupRequest.Pool). A pooled file's
// content is stored once across all the sets of a root; the artifact's
// stream records only which blob holds it. Every blob Have answers true
// for, and every blob Put returns, is referenced by the set being made.
type Pool interface {
	// Have says, for each blob, whether the pool holds it: from the
	// blob's name and size alone, no content is read.
	Have(ctx context.Context, blobs []Blob) ([]bool, error)
	// Put reads r to its end into the pool. The core hashes what it reads:
	// the blob returned is named by the content, which differs from expect
	// when a file's content does not match its name.
	Put(ctx context.Context, expect Blob, r io.Reader) (Blob, error)
}

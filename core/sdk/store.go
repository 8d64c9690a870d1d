package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// StoredFile is one file of a set in a store.
type StoredFile struct {
	Name string
	Size int64
}

// StoredSet is one set in a store. Files are sorted by name.
type StoredSet struct {
	Name  string
	Files []StoredFile
}

// Complete reports whether the set's manifest.json is in the store: the core
// uploads it last and Delete removes it first, so only then is the set whole.
func (s StoredSet) Complete() bool {
	for _, f := range s.Files {
		if f.Name == ManifestFile {
			return true
		}
	}
	return false
}

// ManifestFile is the file that makes a set complete, on disk and in a store.
const ManifestFile = "manifest.json"

// Storer serves the store kind: copies of committed sets somewhere else.
// A set's files live under <prefix>/<set>/<file>. A set is complete remotely
// only when its manifest.json is there: the core uploads it last.
//
// Set and file names reaching a Storer through Serve have passed
// CheckStoreName.
type Storer interface {
	// Put reads r to its end (size bytes) and stores it as the set's file. It
	// returns where the file went, for people: s3://bucket/prefix/set/file.
	// A Put that fails or is cancelled must leave no file of that name
	// behind that could pass for complete.
	Put(ctx context.Context, cfg Config, set, file string, size int64, r io.Reader) (location string, err error)
	// Get writes the stored file to w.
	Get(ctx context.Context, cfg Config, set, file string, w io.Writer) error
	// List returns every set in the store, complete or not.
	List(ctx context.Context, cfg Config) ([]StoredSet, error)
	// Delete removes the whole set: manifest.json first, so that a
	// half-deleted set never looks complete. A set that is not there is no
	// error.
	Delete(ctx context.Context, cfg Config, set string) error
}

// FileDeleter is optional for a Storer: DeleteFiles removes some files of a
// set, leaving the rest; a file that is not there is no error. The core
// needs it to sweep the blobs of its pool (PoolSet) that no stored set
// references any more.
type FileDeleter interface {
	DeleteFiles(ctx context.Context, cfg Config, set string, files []string) error
}

// FileLister is optional for a Storer, and what a store of a large pool
// needs: ListFiles calls fn for each file of one set as the store lists
// them, so that neither the plugin nor the core ever holds millions of
// names at once. fn's error stops the listing and is returned. A Storer
// that is a FileLister leaves PoolSet's files out of List (it may list
// PoolSet with no file); the core lists the pool with ListFiles. A set
// that is not there has no files, and is no error. Names that
// CheckStoreName refuses (a store's own bookkeeping, deeper keys) never
// reach the core: Serve leaves them out.
type FileLister interface {
	ListFiles(ctx context.Context, cfg Config, set string, fn func(StoredFile) error) error
}

// PoolSet is the name under which the core keeps a root's pool in a store:
// <prefix>/mbk-pool/<sha1>-<size>, one file per blob, as the blob is stored
// on disk (compressed, encrypted). It is no backup set (its name is no
// set's time), and retention never deletes it whole.
const PoolSet = "mbk-pool"

// CheckStoreName says why a set or file name cannot be stored, or returns
// nil. A name is one path element, and names starting with a dot are left
// to the stores for their own bookkeeping (an upload in progress).
func CheckStoreName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("name %q starts with a dot", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("name %q is not a single path element", name)
	}
	return nil
}

// sizedReader gives a Storer exactly the bytes the core announced: a stream
// that ends early is an error, never a clean end of file that would let a
// short copy pass for the whole file.
type sizedReader struct {
	r    io.Reader
	size int64
	left int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err == io.EOF {
		if s.left > 0 {
			return n, fmt.Errorf("the core's stream ended after %d of %d bytes: %w", s.size-s.left, s.size, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

func (s *sizedReader) read() int64 { return s.size - s.left }

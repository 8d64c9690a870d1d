package repo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteFileSync writes a small file completely and durably: temp file,
// fsync, rename. A crash leaves the old content or the new, never half.
func WriteFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(FileMode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// SyncDir flushes a directory's entries (new names, renames) to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteManifest writes manifest.json.
func WriteManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileSync(filepath.Join(dir, ManifestFile), append(b, '\n'))
}

// Sum is one line of SHA256SUMS.
type Sum struct {
	File string
	Hex  string
}

// WriteSums writes SHA256SUMS in the format `sha256sum -c` reads.
func WriteSums(dir string, sums []Sum) error {
	var b strings.Builder
	for _, s := range sums {
		if strings.ContainsAny(s.File, "\n\\") {
			return fmt.Errorf("file name %q cannot be listed in %s", s.File, SumsFile)
		}
		fmt.Fprintf(&b, "%s  %s\n", s.Hex, s.File)
	}
	return WriteFileSync(filepath.Join(dir, SumsFile), []byte(b.String()))
}

// Commit moves a finished staging directory into place under its final name.
// The rename is the moment the set exists.
func Commit(staging, final string) error {
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%s already exists: refusing to overwrite a set", final)
	}
	if err := SyncDir(staging); err != nil {
		return err
	}
	if err := os.Rename(staging, final); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(final))
}

// Delete removes a set: first renamed to a hidden name (a crash mid-way
// leaves a hidden leftover, never a half set that looks like a set), then
// removed.
func Delete(root, name string) error {
	hidden := filepath.Join(root, DeletingPrefix+name)
	if err := os.Rename(filepath.Join(root, name), hidden); err != nil {
		return err
	}
	if err := SyncDir(root); err != nil {
		return err
	}
	return os.RemoveAll(hidden)
}

// Leftover is a hidden directory a killed or failed run left behind.
type Leftover struct {
	Name string
	Dir  string
}

// Leftovers lists staging, deleting and download directories under root.
func Leftovers(root string) ([]Leftover, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []Leftover
	for _, e := range entries {
		if e.IsDir() && (strings.HasPrefix(e.Name(), StagingPrefix) || strings.HasPrefix(e.Name(), DeletingPrefix) || strings.HasPrefix(e.Name(), DownloadPrefix)) {
			out = append(out, Leftover{Name: e.Name(), Dir: filepath.Join(root, e.Name())})
		}
	}
	return out, nil
}

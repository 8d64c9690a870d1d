// Package checksum is the built-in checksum plugin "sha256": it reads each
// stored artifact back from disk and hashes it, so the set's SHA256SUMS is
// checked against what actually landed, not only what was sent.
package checksum

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Plugin is the sha256 checksum plugin.
type Plugin struct {
	Version string
	Log     hclog.Logger
}

var _ sdk.Checksummer = (*Plugin)(nil)

// Describe implements sdk.Plugin.
func (p *Plugin) Describe() sdk.Info {
	return sdk.Info{Name: "sha256", Version: p.Version, Kinds: []string{sdk.KindChecksum},
		Description: "Re-reads each artifact from disk and hashes it with SHA-256."}
}

// Schema implements sdk.Plugin: no settings.
func (p *Plugin) Schema(string) (sdk.Schema, error) { return sdk.Schema{}, nil }

// Sum implements sdk.Checksummer.
func (p *Plugin) Sum(ctx context.Context, _ sdk.Config, dir string, files []string) ([]sdk.FileSum, error) {
	var out []sdk.FileSum
	for _, name := range files {
		if filepath.IsAbs(name) || strings.Contains(filepath.ToSlash(name), "..") {
			return nil, fmt.Errorf("refusing to hash %q: not a plain file name inside the set", name)
		}
		hex, n, err := FileSHA256(ctx, filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, sdk.FileSum{File: name, Algorithm: "sha256", Hex: hex, Size: n})
	}
	return out, nil
}

// FileSHA256 hashes a file, stopping when ctx ends.
func FileSHA256(ctx context.Context, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, sdk.ContextReader(ctx, f))
	if err != nil {
		return "", n, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

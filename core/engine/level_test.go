package engine_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbk-backup/mbk/core/stream"
)

// TestDefaultLevelPerFormat: a stage that sets no compression_level is
// written at the level the codec's table gives its artifact's format (a
// dump, "sql", or anything else), and one that sets a level at that level:
// each stored file is, byte for byte, its raw stream compressed at that
// level, and not at the other default.
func TestDefaultLevelPerFormat(t *testing.T) {
	for _, codec := range []string{"zstd", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			root := newRoot(t)
			pl := prepare(t, root, `
  stage "dump" "faulty" "sql" {
    mode        = "ok"
    text        = true
    format      = "sql"
    compression = "`+codec+`"
  }
  stage "dump" "faulty" "bin" {
    mode        = "ok"
    text        = true
    compression = "`+codec+`"
  }
  stage "dump" "faulty" "set" {
    mode              = "ok"
    text              = true
    format            = "set"
    compression       = "`+codec+`"
    compression_level = 3
  }`)
			res := pl.backup(t)
			c, _ := stream.Lookup(codec)
			for format, level := range map[string]int{
				"sql": stream.DefaultLevel(codec, stream.DumpFormat),
				"bin": stream.DefaultLevel(codec, "bin"),
				"set": 3,
			} {
				files, _ := filepath.Glob(filepath.Join(res.SetDir, "faulty_*."+format+c.Ext))
				if len(files) != 1 {
					t.Fatalf("%s artifacts: %q", format, files)
				}
				stored, err := os.ReadFile(files[0])
				if err != nil {
					t.Fatal(err)
				}
				r, err := stream.NewReader(bytes.NewReader(stored), codec, false, nil)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				at := func(l int) []byte {
					var b bytes.Buffer
					w, err := stream.NewWriter(&b, codec, l)
					if err != nil {
						t.Fatal(err)
					}
					w.Write(raw)
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					return b.Bytes()
				}
				if !bytes.Equal(stored, at(level)) {
					t.Errorf("%s: the artifact is not %s level %d's output", format, codec, level)
				}
				for l := c.MinLevel; l <= c.MaxLevel; l++ {
					if l != level && bytes.Equal(stored, at(l)) {
						t.Errorf("%s: the artifact is also level %d's output: the content cannot tell the levels apart", format, l)
					}
				}
			}
		})
	}
}

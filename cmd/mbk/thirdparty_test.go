package main

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

// The notes plugin (testdata/thirdparty) is a dump plugin written as a third
// party would: outside plugins/, with only core/sdk. Its restore options are
// its own: target_path answers --target-path, max_bytes only --restore-opt.

const notesPipeline = `pipeline "notes" {
  root = %q

  stage "dump" "notes" {
    path = %q
  }
}
`

// flat joins the words of s with single spaces: diagnostics are wrapped at
// 100 columns, wherever a word happens to fall.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestThirdPartyDumpPluginRestores(t *testing.T) {
	t.Run("it imports nothing of mbk but core/sdk", func(t *testing.T) {
		f, err := parser.ParseFile(token.NewFileSet(), "testdata/thirdparty/main.go", nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/mbk-backup/mbk/") && path != "github.com/mbk-backup/mbk/core/sdk" {
				t.Errorf("the third-party plugin imports %s", path)
			}
		}
	})

	env := []string{"MBK_PLUGIN_DIR=" + filepath.Join(binDir, "extra")}
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	original := "Notas del curso: Álgebra 🦤\nline two\n\x00binary too\n" + strings.Repeat("x", 5000) + "\n"
	src := writeFile(t, dir, "notes.txt", original)
	file := writeFile(t, dir, "notes.hcl", fmt.Sprintf(notesPipeline, root, src))

	v := mbk(t, runOpts{env: env}, "validate", file)
	if v.code != 0 || !strings.Contains(v.stdout, `pipeline "notes": 1 stage(s)`) || !strings.Contains(v.stdout, "1 file(s) valid") {
		t.Fatalf("validate: %s", v)
	}
	r := mbk(t, runOpts{env: env}, "run", file)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	got := sets(t, root)
	if len(got) != 1 {
		t.Fatalf("want one set, got %v\n%s", got, r)
	}
	set := got[0]
	m, err := repo.ReadManifest(filepath.Join(root, set))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Artifacts) != 1 || m.Artifacts[0].Plugin != "notes" || m.Artifacts[0].Stage != "dump" {
		t.Fatalf("artifacts: %+v", m.Artifacts)
	}
	// The source changes after the backup: a restore that wrote to it
	// instead of the target would show.
	const changed = "changed since the backup\n"
	if err := os.WriteFile(src, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("refused options restore nothing", func(t *testing.T) {
		target := filepath.Join(dir, "refused.txt")
		for _, c := range []struct {
			name string
			args []string
			want []string
		}{
			{"a misspelt option", []string{"--target-path", target, "--restore-opt", "notes.max_byte=100"},
				[]string{`"notes.max_byte=100"`, `stage dump "notes" declares no restore option "max_byte"`, `max_bytes`}},
			{"a word for a whole number", []string{"--target-path", target, "--restore-opt", "notes.max_bytes=abc"},
				[]string{`dump "notes": restore option "max_bytes" is a whole number, not "abc"`, file + " line 4"}},
			{"a fraction for a whole number", []string{"--target-path", target, "--restore-opt", "notes.max_bytes=1.5"},
				[]string{`dump "notes": restore option "max_bytes" is a whole number, not "1.5"`, file + " line 4"}},
			{"a flag no stage answers", []string{"--target-path", target, "--target-database", "moodle_copy"},
				[]string{`--target-database: no stage of this restore declares an option for it`, `dump "notes" declares target_path (--target-path), max_bytes`}},
			{"--clean, which no stage answers", []string{"--target-path", target, "--clean"},
				[]string{`--clean: no stage of this restore declares an option for it`, `dump "notes" declares target_path (--target-path), max_bytes`}},
			{"an unknown stage", []string{"--target-path", target, "--restore-opt", "mysql.max_bytes=100"},
				[]string{`"mysql.max_bytes=100": no stage of this restore is named "mysql" (they are notes)`}},
			{"a setting, not a restore option", []string{"--target-path", target, "--restore-opt", "notes.path=/etc/passwd"},
				[]string{`"path" is a setting of stage dump "notes", not a restore option`}},
		} {
			t.Run(c.name, func(t *testing.T) {
				args := append([]string{"restore", file, set, "--yes"}, c.args...)
				r := mbk(t, runOpts{env: env}, args...)
				out := flat(r.stderr)
				if r.code != 2 || !strings.Contains(out, "the restore options are not valid: nothing was restored") {
					t.Fatalf("want exit 2, nothing restored: %s", r)
				}
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Errorf("stderr lacks %q\n%s", w, r)
					}
				}
				if strings.Contains(r.stdout, "Verifying set") {
					t.Errorf("the set was read and hashed before the options were judged:\n%s", r)
				}
				if strings.Contains(r.stdout, "will OVERWRITE") {
					t.Errorf("the refused restore got as far as the confirmation:\n%s", r)
				}
				if _, err := os.Stat(target); !os.IsNotExist(err) {
					t.Fatalf("a refused restore wrote %s (%v)", target, err)
				}
				if b := readFile(t, src); b != changed {
					t.Fatalf("a refused restore wrote the source: %q", b)
				}
			})
		}
	})

	t.Run("--target-path and --restore-opt restore the same bytes", func(t *testing.T) {
		target := filepath.Join(dir, "restored.txt")
		limit := strconv.Itoa(len(original))
		r := mbk(t, runOpts{env: env}, "restore", file, set, "--yes", "--target-path", target, "--restore-opt", "notes.max_bytes="+limit)
		if r.code != 0 {
			t.Fatalf("restore: %s", r)
		}
		if want := fmt.Sprintf(`stage dump "notes" (max_bytes=%s, target_path=%s)`, limit, target); !strings.Contains(r.stdout, want) {
			t.Errorf("the confirmation lacks %q\n%s", want, r)
		}
		if got := readFile(t, target); got != original {
			t.Fatalf("restored %d bytes that differ from the %d backed up", len(got), len(original))
		}
		if b := readFile(t, src); b != changed {
			t.Fatalf("a restore to --target-path wrote the source: %q", b)
		}
	})

	t.Run("the plugin receives the --restore-opt value", func(t *testing.T) {
		// One byte less than the notes: the plugin itself refuses.
		target := filepath.Join(dir, "too-small.txt")
		limit := strconv.Itoa(len(original) - 1)
		r := mbk(t, runOpts{env: env}, "restore", file, set, "--yes", "--target-path", target, "--restore-opt", "notes.max_bytes="+limit)
		if r.code != 1 || !strings.Contains(r.stderr, "the notes are longer than max_bytes = "+limit) {
			t.Fatalf("want the plugin's refusal, exit 1: %s", r)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Fatalf("a refused restore wrote %s (%v)", target, err)
		}
	})

	t.Run("without --target-path the notes go back where they came from", func(t *testing.T) {
		r := mbk(t, runOpts{env: env}, "restore", file, set, "--yes")
		if r.code != 0 {
			t.Fatalf("restore: %s", r)
		}
		if !strings.Contains(r.stdout, `stage dump "notes" (where it was backed up from)`) {
			t.Errorf("the confirmation does not say where:\n%s", r)
		}
		if got := readFile(t, src); got != original {
			t.Fatalf("the source holds %q after the restore", got)
		}
	})
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeNotifier returns the Go code block of README.md's "Write your own
// notifier" section: the README shows what this test builds.
func readmeNotifier(t *testing.T) string {
	t.Helper()
	readme := readFile(t, "../../README.md")
	_, section, ok := strings.Cut(readme, "\n### Write your own notifier\n")
	if !ok {
		t.Fatal(`README.md has no "### Write your own notifier" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, code, ok := strings.Cut(section, "\n```go\n")
	if !ok {
		t.Fatal("the notifier section of README.md has no ```go block")
	}
	code, _, ok = strings.Cut(code, "\n```\n")
	if !ok {
		t.Fatal("the ```go block of README.md's notifier section is not closed")
	}
	return code + "\n"
}

// buildOutsideModule builds main.go as the main package of a module of its
// own, as someone outside this repository would: it requires
// github.com/mbk-backup/mbk, replaced by this checkout, with this
// repository's go.sum. Packages under core/internal are out of its reach.
func buildOutsideModule(t *testing.T, module, main, out string) {
	t.Helper()
	repoRoot, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go [0-9.]+$`).FindString(readFile(t, filepath.Join(repoRoot, "go.mod")))
	if goLine == "" {
		t.Fatal("no go line in go.mod")
	}
	dir := t.TempDir()
	writeFile(t, dir, "main.go", main)
	writeFile(t, dir, "go.mod", fmt.Sprintf("module %s\n\n%s\n\nrequire github.com/mbk-backup/mbk v0.0.0\n\nreplace github.com/mbk-backup/mbk => %s\n", module, goLine, repoRoot))
	writeFile(t, dir, "go.sum", readFile(t, filepath.Join(repoRoot, "go.sum")))
	cmd := exec.Command("go", "build", "-mod=mod", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the README's notifier as module %s: %v\n%s", module, err, b)
	}
	for _, f := range []string{"go.mod"} {
		t.Logf("%s:\n%s", f, readFile(t, filepath.Join(dir, f)))
	}
}

const journalPipeline = `plugin_dir = %q

pipeline "readme" {
  root = %q

  stage "dump" "faulty" {
    mode = "ok"
    size = 4096
  }
  stage "notify" "journal" {
    on   = ["success", "failure"]
    file = %q
    tags = ["nightly", "moodle"]
    utc  = true
  }
}
`

// TestREADMENotifier: the notifier README.md shows, built outside this
// module from the README's own text, is found, validated, called by a run
// and by mbk notify test.
func TestREADMENotifier(t *testing.T) {
	code := readmeNotifier(t)
	for _, imp := range regexp.MustCompile(`"(github\.com/mbk-backup/mbk/[^"]*)"`).FindAllStringSubmatch(code, -1) {
		if imp[1] != "github.com/mbk-backup/mbk/core/sdk" {
			t.Errorf("the README's notifier imports %s: only core/sdk is public", imp[1])
		}
	}
	pluginDir := t.TempDir()
	bin := filepath.Join(pluginDir, "mbk-plugin-journal")
	buildOutsideModule(t, "example.com/mbk-plugin-journal", code, bin)

	// faulty (the dump) comes from MBK_PLUGIN_DIR; journal from the file's plugin_dir.
	env := []string{"MBK_PLUGIN_DIR=" + filepath.Join(binDir, "extra")}
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal.log")
	pipeline := func(t *testing.T, file string) (string, string) {
		d := t.TempDir()
		root := filepath.Join(d, "backups")
		return writeFile(t, d, "readme.hcl", fmt.Sprintf(journalPipeline, pluginDir, root, file)), root
	}

	t.Run("mbk plugins lists it", func(t *testing.T) {
		r := mbk(t, runOpts{}, "plugins", "--plugin-dir", pluginDir)
		if r.code != 0 || !regexp.MustCompile(`(?m)^journal +1\.0\.0 +notify +`+regexp.QuoteMeta(bin)+` +no$`).MatchString(r.stdout) {
			t.Fatalf("want a journal row with its path: %s", r)
		}
	})

	t.Run("validate accepts it", func(t *testing.T) {
		file, _ := pipeline(t, journal)
		r := mbk(t, runOpts{env: env}, "validate", file)
		if r.code != 0 || !strings.Contains(r.stdout, `pipeline "readme": 2 stage(s)`) {
			t.Fatalf("validate: %s", r)
		}
	})

	// Each bad setting replaces from by to; the error must name the line
	// holding at, and say want.
	for _, c := range []struct{ name, from, to, at, want string }{
		{"the plugin's own check", "file = %q", "file = \"journal.log\" # %q", `file = "journal.log"`, `notify "journal" file: must be an absolute path, not "journal.log"`},
		{"a wrong type", `tags = ["nightly", "moodle"]`, `tags = { nightly = true }`, `tags = {`, `Inappropriate value for attribute "tags": list of string required`},
		{"an unknown setting", `utc  = true`, "utc  = true\n    colour = \"red\"", `colour = "red"`, `An argument named "colour" is not expected here`},
	} {
		t.Run("a bad setting: "+c.name, func(t *testing.T) {
			d := t.TempDir()
			body := strings.Replace(journalPipeline, c.from, c.to, 1)
			if body == journalPipeline {
				t.Fatalf("the pipeline has no %q", c.from)
			}
			root := filepath.Join(d, "backups")
			file := writeFile(t, d, "bad.hcl", fmt.Sprintf(body, pluginDir, root, journal))
			at := fmt.Sprintf("%s line %d", file, lineOf(t, file, c.at))
			v := mbk(t, runOpts{env: env}, "validate", file)
			if v.code != 1 || !strings.Contains(v.stderr, at) || !strings.Contains(flat(v.stderr), c.want) {
				t.Fatalf("validate: want exit 1 naming %s and %s\n%s", at, c.want, v)
			}
			r := mbk(t, runOpts{env: env}, "run", file)
			if r.code != 2 || !strings.Contains(r.stderr, at) || !strings.Contains(flat(r.stderr), c.want) {
				t.Fatalf("run: want exit 2 naming %s and %s\n%s", at, c.want, r)
			}
			if got := sets(t, root); len(got) != 0 {
				t.Fatalf("a run with a bad setting made %v", got)
			}
			if _, err := os.Stat(journal); !os.IsNotExist(err) {
				t.Fatalf("the journal was written (%v)", err)
			}
		})
	}

	t.Run("a run calls it with the report", func(t *testing.T) {
		file, root := pipeline(t, journal)
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		got := sets(t, root)
		if len(got) != 1 {
			t.Fatalf("want one set, got %v", got)
		}
		lines := journalLines(t, journal)
		want := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ success pipeline=readme set=` + regexp.QuoteMeta(got[0]) + ` nightly moodle$`)
		if len(lines) != 1 || !want.MatchString(lines[0]) {
			t.Fatalf("journal %q, want one line matching %s", lines, want)
		}
	})

	t.Run("mbk notify test reaches it", func(t *testing.T) {
		file, _ := pipeline(t, journal)
		r := mbk(t, runOpts{env: env}, "notify", "test", file)
		if r.code != 0 || !strings.Contains(r.stdout, `readme: notify "journal": ok: appended to `+journal) {
			t.Fatalf("notify test: %s", r)
		}
		lines := journalLines(t, journal)
		if len(lines) != 2 || !regexp.MustCompile(`Z test pipeline=readme set=- nightly moodle$`).MatchString(lines[1]) {
			t.Fatalf("journal %q, want a second line for the test event", lines)
		}
	})
}

func journalLines(t *testing.T, path string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(readFile(t, path), "\n"), "\n")
}

// lineOf is the number of the first line of file holding s.
func lineOf(t *testing.T, file, s string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), s) {
			return n
		}
	}
	t.Fatalf("%s has no line holding %q", file, s)
	return 0
}

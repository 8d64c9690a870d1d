package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The pipelines the project ships must always validate: the README tells
// users to start from them.
func TestShippedPipelinesValidate(t *testing.T) {
	dir, err := filepath.Abs("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"MYSQL_PASSWORD=x", "SMTP_USER=backups@example.com", "SMTP_PASSWORD=y"}
	r := mbk(t, runOpts{env: env}, "validate", dir)
	if r.code != 0 {
		t.Fatalf("validate pipelines/: %s", r)
	}
	for _, want := range []string{`pipeline "testing"`, `pipeline "production"`, `pipeline "demo"`, `schedule "0 2 * * *"`, `schedule "0 3 * * *"`, "3 file(s) valid"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("validate output lacks %q\n%s", want, r)
		}
	}
	// Without the secrets, the error names the variable and the file.
	r = mbk(t, runOpts{}, "validate", filepath.Join(dir, "production.hcl"))
	if r.code != 1 || !strings.Contains(r.stderr, "MYSQL_PASSWORD is not set") {
		t.Fatalf("want an error naming MYSQL_PASSWORD: %s", r)
	}
}

func TestPluginsVersionAndHelp(t *testing.T) {
	r := mbk(t, runOpts{}, "plugins")
	if r.code != 0 {
		t.Fatalf("plugins: %s", r)
	}
	for _, want := range []string{"mysql", "volume", "smtp", "sha256", "policy", "built-in", "dump", "archive", "notify"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mbk plugins lacks %q\n%s", want, r)
		}
	}
	// --version and version: mbk's version, commit, Go, and each plugin's
	// version as the plugin itself reports it (so each was started).
	for _, args := range [][]string{{"--version"}, {"version"}} {
		v := mbk(t, runOpts{}, args...)
		for _, want := range []string{"mbk dev", "commit: ", "go: go1.", "plugin protocol: 2", "mysql", "0.1.0", binDir + "/mbk-plugin-volume", "sha256", "built-in"} {
			if v.code != 0 || !strings.Contains(v.stdout, want) {
				t.Errorf("mbk %s lacks %q: %s", args[0], want, v)
			}
		}
	}
	for _, cmd := range []string{"validate", "run", "list", "info", "verify", "restore", "prune", "notify", "plugins"} {
		if h := mbk(t, runOpts{}, cmd, "--help"); h.code != 0 || !strings.Contains(h.stdout, "Usage:") {
			t.Errorf("%s --help: %s", cmd, h)
		}
	}
	if c := mbk(t, runOpts{}, "completion", "bash"); c.code != 0 || !strings.Contains(c.stdout, "bash completion") {
		t.Errorf("completion: %s", c)
	}
	if u := mbk(t, runOpts{}, "run"); u.code != 2 {
		t.Errorf("a usage mistake should exit 2: %s", u)
	}
}

// TestPluginsListsRestoreOptions: `mbk plugins` shows what each dump and
// archive plugin lets a restore ask (name, type, the flag that sets it,
// what it does), the shipped ones and a third party's alike.
func TestPluginsListsRestoreOptions(t *testing.T) {
	r := mbk(t, runOpts{env: []string{"MBK_PLUGIN_DIR=" + filepath.Join(binDir, "extra")}}, "plugins")
	if r.code != 0 {
		t.Fatalf("plugins: %s", r)
	}
	_, opts, ok := strings.Cut(r.stdout, "Restore options:")
	if !ok {
		t.Fatalf("mbk plugins lists no restore options\n%s", r)
	}
	sections := map[string][]string{}
	var cur string
	for _, line := range strings.Split(opts, "\n") {
		if strings.HasSuffix(line, "):") && !strings.HasPrefix(line, " ") {
			cur = line
			continue
		}
		if cur != "" && strings.HasPrefix(line, "  ") {
			sections[cur] = append(sections[cur], flat(line))
		}
	}
	for section, rows := range map[string][]string{
		"mysql (dump):": {
			"target_database string --target-database Database to restore into; default: the stage's database setting,",
			"replace bool --clean Drop and recreate",
			"sandbox_container string - Set by `mbk drill`",
		},
		"volume (archive):": {
			"target_volume string --target-volume Docker volume to restore into;",
			"target_path string --target-path Absolute host directory to restore into.",
			"clean bool --clean Replace the contents of a target that holds files;",
			"keep_special bool --keep-special Restore devices, FIFOs, setuid/setgid bits",
		},
		"notes (dump):": {
			"target_path string --target-path Write the notes to this file; default: the file they were backed up from.",
			"max_bytes whole number - Refuse to restore notes longer than this (0: no limit).",
		},
	} {
		got, ok := sections[section]
		if !ok {
			t.Errorf("no section %q\n%s", section, r)
			continue
		}
		if len(got) != len(rows)+1 || got[0] != "OPTION TYPE FLAG DESCRIPTION" {
			t.Errorf("%s: want a header and %d rows, got %q", section, len(rows), got)
			continue
		}
		for i, want := range rows {
			if !strings.HasPrefix(got[i+1], want) {
				t.Errorf("%s row %d: %q, want it to start with %q", section, i+1, got[i+1], want)
			}
		}
	}
	// Plugins that declare none (faulty's dump, notifiers, stores) get no section.
	for section := range sections {
		switch section {
		case "mysql (dump):", "volume (archive):", "notes (dump):":
		default:
			t.Errorf("unexpected section %q\n%s", section, r)
		}
	}
}

package menu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/joho/godotenv"
)

// menuSite is two pipelines, alpha and beta, each in its own file of one
// directory, around the test-only faulty plugin: the menu is driven through
// real runs, lists and restores without Docker.
type menuSite struct {
	dir        string
	file, root map[string]string
	envA       string // alpha's env_file
	crontab    string // the fake crontab's file
	crontabEnv []string
}

func newMenuSite(t *testing.T) *menuSite {
	t.Helper()
	base := t.TempDir()
	s := &menuSite{dir: filepath.Join(base, "pipelines"), file: map[string]string{}, root: map[string]string{}}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.envA = filepath.Join(base, "alpha.env")
	for _, name := range []string{"alpha", "beta"} {
		s.root[name] = filepath.Join(base, "backups", name)
		envLine := ""
		if name == "alpha" {
			envLine = fmt.Sprintf("env_file = %q", s.envA)
		}
		s.file[name] = writeFile(t, s.dir, name+".hcl", fmt.Sprintf(`
plugin_dir = %q
%s

pipeline %q {
  root     = %q
  schedule = "0 2 * * *"
  timeout  = "2m"

  stage "dump" "faulty" {
    mode = "ok"
    size = 1048576
  }
  stage "checksum" "sha256" {}
}
`, filepath.Join(binDir, "extra"), envLine, name, s.root[name]))
	}
	// A crontab(1) stand-in over a file: the real one would change this
	// machine's crontab. mbk cron takes it from MBK_CRONTAB.
	s.crontab = filepath.Join(base, "crontab.txt")
	fake := writeFile(t, base, "crontab", `#!/bin/sh
case "$1" in
-l) if [ -f "$FAKE_CRONTAB" ]; then cat "$FAKE_CRONTAB"; else echo "no crontab for tester" >&2; exit 1; fi ;;
-) cat >"$FAKE_CRONTAB" ;;
*) echo "fake crontab: unexpected arguments: $*" >&2; exit 2 ;;
esac
`)
	if err := os.Chmod(fake, 0o700); err != nil {
		t.Fatal(err)
	}
	s.crontabEnv = []string{"MBK_CRONTAB=" + fake, "FAKE_CRONTAB=" + s.crontab}
	return s
}

// backToMenu leaves an action's output and waits for the main menu.
func backToMenu(tm *term) {
	tm.t.Helper()
	tm.waitFor("Press Enter to go back to the menu.")
	tm.send(keyEnter)
	tm.waitFor("0  Quit")
}

func TestMenuListCreateDetailsRestore(t *testing.T) {
	s := newMenuSite(t)
	tm := startTerm(t, nil, "menu", s.dir)
	tm.waitFor("2 pipelines in " + s.dir)
	tm.waitFor("0  Quit")

	// Going back (0 or Esc) from a list returns to the menu at once.
	for _, back := range []string{"0", keyEsc} {
		tm.send("1")
		tm.waitFor("Create a backup: which pipeline?")
		tm.waitFor("0  Back")
		from := tm.seen
		tm.send(back)
		tm.waitFor("0  Quit")
		if between := tm.screen()[from:tm.seen]; strings.Contains(between, "Press Enter") || strings.Contains(between, "$ mbk") {
			t.Fatalf("going back with %q ran something:\n%s", back, between)
		}
	}

	// List backups, by number keys: beta has none yet.
	tm.send("2")
	tm.waitFor("List backups: which pipeline?")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitFor("$ mbk list " + s.file["beta"])
	tm.waitFor("no sets in " + s.root["beta"])
	backToMenu(tm)

	// Create a backup, by arrow keys and Enter.
	tm.send(keyDown)
	tm.waitShown("› 2  List backups")
	tm.send(keyUp)
	tm.waitShown("› 1  Create a backup")
	tm.send(keyEnter)
	tm.waitFor("Create a backup: which pipeline?")
	tm.waitFor("0  Back")
	tm.send(keyDown)
	tm.waitShown("› 2  beta")
	tm.send(keyEnter)
	tm.waitFor("$ mbk run " + s.file["beta"])
	set := tm.waitMatch(regexp.MustCompile(`beta: set (\S+) committed`))[1]
	if got := sets(t, s.root["beta"]); len(got) != 1 || got[0] != set {
		t.Fatalf("the screen says set %s was committed; on disk: %v", set, got)
	}
	if got := sets(t, s.root["alpha"]); len(got) != 0 {
		t.Fatalf("alpha was not chosen, yet it has sets %v", got)
	}
	backToMenu(tm)

	// The list shows the new set: a backup, complete.
	tm.send("2")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitMatch(regexp.MustCompile(regexp.QuoteMeta(set) + `\s+backup\s+complete`))
	backToMenu(tm)

	// Its details.
	tm.send("9")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitFor("Which set of beta?")
	tm.waitFor("1  " + set)
	tm.send("1")
	tm.waitFor("$ mbk info " + s.file["beta"] + " " + set)
	tm.waitFor("Set:       " + set)
	backToMenu(tm)

	// Restore it, up to the confirmation screen, and cancel: nothing is
	// restored, no safety copy taken. (Restores over a real site:
	// restore_test.go. The faulty plugin has no --clean to answer.) Its
	// dump is no database: the screen says its size.
	tm.send("3")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitShown("› 1  " + set + "  backup · complete")
	tm.send("1")
	tm.waitFor("Restore what?")
	tm.waitFor("0  Back")
	tm.send("1")
	tm.waitShown("› Type the pipeline's name (beta) to restore")
	tm.waitShown("Comes back: what set " + set + " holds, as its manifest describes it:")
	tm.waitShown(`(stage dump "faulty", plugin faulty): 1.0 MiB`)
	tm.waitShown("A safety copy of the site is taken first; it is kept 7 days (a set of kind pre-restore in " + s.root["beta"] + ").")
	tm.send(keyEsc)
	tm.waitFor("Nothing was restored: the site is as it was.")
	backToMenu(tm)
	if got := sets(t, s.root["beta"]); len(got) != 1 {
		t.Fatalf("a cancelled restore left sets %v", got)
	}
	if strings.Contains(tm.screen(), "$ mbk restore") {
		t.Fatal("a cancelled restore ran mbk restore")
	}

	tm.send("0")
	tm.waitFor("Bye.")
	if code := tm.wait(); code != 0 {
		t.Fatalf("quit: exit %d", code)
	}
}

func TestMenuSchedules(t *testing.T) {
	s := newMenuSite(t)
	other := "30 4 * * * /usr/local/bin/something-else"
	writeFile(t, filepath.Dir(s.crontab), filepath.Base(s.crontab), other+"\n")
	tm := startTerm(t, s.crontabEnv, "menu", s.dir)
	tm.waitFor("0  Quit")

	// Esc in a form goes back to the menu, nothing changed.
	tm.send("4")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitShown("› When should beta run?")
	tm.send(keyEsc)
	tm.waitFor("Cancelled: nothing was changed.")
	backToMenu(tm)
	if tab := readFile(t, s.crontab); strings.TrimSpace(tab) != other {
		t.Fatalf("crontab after a cancelled form, want only the other line:\n%s", tab)
	}

	tm.send("4")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitFor("When should beta run?")
	tm.send(keyKill + "61 2 * * *" + keyEnter)
	tm.waitFor("not a cron schedule")
	tm.send(keyKill + "0 3 * * 0" + keyEnter)
	tm.waitFor("$ mbk cron install " + s.file["beta"] + " --pipeline beta --schedule '0 3 * * 0'")
	tm.waitFor("installed: 0 3 * * 0")
	backToMenu(tm)
	tab := readFile(t, s.crontab)
	if !strings.Contains(tab, other) || !strings.Contains(tab, "run "+s.file["beta"]+" --pipeline beta") || strings.Count(tab, "# mbk:") != 1 {
		t.Fatalf("crontab after install:\n%s", tab)
	}

	tm.send("5")
	tm.waitFor("$ mbk cron list")
	tm.waitFor("beta (" + s.file["beta"] + ")")
	tm.waitFor("0 3 * * 0")
	backToMenu(tm)

	tm.send("6")
	tm.waitFor("0  Back")
	tm.send("2")
	tm.waitFor("removed: 0 3 * * 0")
	backToMenu(tm)
	if tab := readFile(t, s.crontab); strings.TrimSpace(tab) != other {
		t.Fatalf("crontab after remove, want only the other line:\n%s", tab)
	}

	// Ctrl+C in a list leaves the menu.
	tm.send("\x03")
	if code := tm.wait(); code != 0 {
		t.Fatalf("leave with Ctrl+C: exit %d", code)
	}
}

func TestMenuConfiguresEmail(t *testing.T) {
	s := newMenuSite(t)
	writeFile(t, filepath.Dir(s.envA), filepath.Base(s.envA), "# Moodle backup settings\nMYSQL_PASSWORD='db secret'\nSMTP_SERVER='old.example.com'\nSMTP_PASSWORD='old-pass'\nexport OTHER=1\n")
	if err := os.Chmod(s.envA, 0o644); err != nil {
		t.Fatal(err)
	}
	const password = `n3w'pa$$ word`
	tm := startTerm(t, nil, "menu", s.dir)
	tm.waitFor("0  Quit")
	tm.send("7")
	tm.waitFor("0  Back")
	tm.send("1")
	tm.waitFor("live in " + s.envA)
	masked := regexp.MustCompile(`(?m)SMTP_PASSWORD +` + regexp.QuoteMeta(strings.Repeat("*", utf8.RuneCountInString(password))) + `$`)
	for _, f := range []struct{ field, keys string }{
		{"SMTP_SERVER", keyKill + "smtp.example.org"},
		{"SMTP_PORT", keyKill + "587"},
		{"SMTP_USER", "backup@example.org"},
		{"SMTP_PASSWORD", password},
		{"SMTP_FROM_NAME", "Moodle Backups"},
		{"BACKUP_EMAIL_TO", "admin@example.org, ops@example.org"},
	} {
		// The focused field's title is marked; typing before the focus
		// moved would fill the previous field.
		tm.waitShown("› " + f.field)
		if f.field == "SMTP_FROM_NAME" {
			// The password typed into the field before shows masked.
			if shown := tm.shown(); !masked.MatchString(shown) {
				t.Errorf("the password field does not show %d stars:\n%s", utf8.RuneCountInString(password), shown)
			}
		}
		tm.send(f.keys + keyEnter)
	}
	tm.waitFor("Write these settings to " + s.envA)
	tm.send(keyEnter)
	tm.waitFor("Saved to " + s.envA)
	backToMenu(tm)
	tm.send("0")
	if code := tm.wait(); code != 0 {
		t.Fatalf("quit: exit %d", code)
	}

	if screen := tm.screen(); strings.Contains(screen, password) || !strings.Contains(screen, "SMTP_PASSWORD (typed, not shown)") {
		t.Errorf("the password was not masked on the screen:\n%s", screen)
	}
	got, err := godotenv.Read(s.envA)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"MYSQL_PASSWORD": "db secret", "OTHER": "1",
		"SMTP_SERVER": "smtp.example.org", "SMTP_PORT": "587", "SMTP_USER": "backup@example.org", "SMTP_PASSWORD": password,
		"SMTP_FROM_NAME": "Moodle Backups", "BACKUP_EMAIL_TO": "admin@example.org,ops@example.org",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("env file reads\n%v\nwant\n%v", got, want)
	}
	text := readFile(t, s.envA)
	if !strings.HasPrefix(text, "# Moodle backup settings\n") || !strings.Contains(text, "export OTHER=1\n") {
		t.Errorf("comments and other lines were not kept:\n%s", text)
	}
	if st, _ := os.Stat(s.envA); st.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestMenuRefuses(t *testing.T) {
	s := newMenuSite(t)
	t.Run("not a terminal", func(t *testing.T) {
		r := mbk(t, "menu", s.dir)
		if r.Code != 2 || !strings.Contains(r.Stderr, "needs a terminal") {
			t.Fatalf("want exit 2 saying a terminal is needed\n%s", r)
		}
	})
	t.Run("no pipelines", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nothing-here")
		tm := startTerm(t, nil, "menu", missing)
		tm.waitFor("no pipelines to show")
		tm.waitFor(missing)
		if code := tm.wait(); code != 2 {
			t.Fatalf("want exit 2, got %d", code)
		}
	})
	t.Run("a terminal it cannot drive", func(t *testing.T) {
		tm := startTerm(t, []string{"TERM=mbk-no-such-terminal"}, "menu", s.dir)
		tm.waitFor(`cannot drive this terminal (TERM="mbk-no-such-terminal")`)
		if code := tm.wait(); code != 2 {
			t.Fatalf("want exit 2, got %d", code)
		}
	})
}

// Linking the menu's terminal library must cost the other commands
// nothing: on a terminal they write no escape sequence (no query of the
// terminal's colours, which one that does not answer makes wait for
// seconds) before doing their work.
func TestMenuLibraryLeavesOtherCommandsAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"version", []string{"version"}, "plugin protocol"},
		{"help", []string{"--help"}, "Usage:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := startTerm(t, nil, tc.args...)
			tm.waitFor(tc.want)
			if code := tm.wait(); code != 0 {
				t.Fatalf("exit %d", code)
			}
			select { // everything it wrote has been read
			case <-tm.done:
			case <-time.After(termDeadline):
				t.Fatalf("the pty did not close within %s after mbk exited", termDeadline)
			}
			tm.mu.Lock()
			raw := append([]byte(nil), tm.raw...)
			tm.mu.Unlock()
			if i := bytes.IndexByte(raw, 0x1b); i >= 0 {
				t.Fatalf("mbk %s wrote an escape sequence to the terminal at byte %d: %q", strings.Join(tc.args, " "), i, raw[i:min(len(raw), i+16)])
			}
		})
	}
}

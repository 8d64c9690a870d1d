package menu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joho/godotenv"
)

// Every value a person may type must read back unchanged through godotenv,
// which is how env_file is read.
func TestMenuEnvFileValuesReadBack(t *testing.T) {
	const before = "# settings of the old installer\nMYSQL_PASSWORD='db secret'\n\nexport SMTP_SERVER=old.example.com # the old one\nSMTP_PORT=25\n"
	values := []string{
		"plain",
		"with spaces",
		"contraseña-de-aplicación",
		"it's",
		"a $HOME and ${PATH}",
		"it's $HOME",
		`back\slash\`,
		`"quoted"`,
		`it's "quoted" inside`,
		`"it's`,
		`it's "`,
		`it's \`,
		"hash # not a comment",
		"=equals=",
		" padded ",
		"",
	}
	for _, v := range values {
		t.Run(v, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "moodle.env", before)
			if err := writeEnvFile(path, map[string]string{"SMTP_PASSWORD": v, "SMTP_SERVER": "smtp.example.org"}, smtpKeys); err != nil {
				t.Fatal(err)
			}
			got, err := godotenv.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"MYSQL_PASSWORD": "db secret", "SMTP_SERVER": "smtp.example.org", "SMTP_PORT": "25", "SMTP_PASSWORD": v}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s reads back %q, want %q", k, got[k], w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("got keys %v", got)
			}
			text := readFile(t, path)
			if !strings.HasPrefix(text, "# settings of the old installer\nMYSQL_PASSWORD='db secret'\n\nexport SMTP_SERVER=") {
				t.Errorf("the lines around were not kept:\n%s", text)
			}
		})
	}
}

func TestMenuEnvFileRefusesWhatCannotReadBack(t *testing.T) {
	const before = "SMTP_PASSWORD='old'\n"
	path := writeFile(t, t.TempDir(), "moodle.env", before)
	// A value holding a single quote and ending in a backslash, which
	// must be quoted (it starts with a quote, or with a space), has no
	// spelling godotenv reads back.
	for _, v := range []string{`'quoted\`, ` it's\`, "two\rlines", "two\nlines"} {
		if err := writeEnvFile(path, map[string]string{"SMTP_PASSWORD": v}, smtpKeys); err == nil {
			t.Errorf("%q was written", v)
		}
	}
	if got := readFile(t, path); got != before {
		t.Fatalf("a refused write changed the file:\n%s", got)
	}
}

func TestMenuEnvFileCreatedPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "mbk", "moodle.env")
	vals := map[string]string{"BACKUP_EMAIL_TO": "a@example.org", "SMTP_SERVER": "smtp.example.org", "SMTP_PORT": "465"}
	if err := writeEnvFile(path, vals, smtpKeys); err != nil {
		t.Fatal(err)
	}
	// Missing keys are appended in the form's order.
	if got, want := readFile(t, path), "SMTP_SERVER='smtp.example.org'\nSMTP_PORT='465'\nBACKUP_EMAIL_TO='a@example.org'\n"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

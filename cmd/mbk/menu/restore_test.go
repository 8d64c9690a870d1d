package menu

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/mbk-backup/mbk/core/i18n"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/mbktest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// restoreSite is a Moodle site in Docker: MariaDB with the moodle
// database, a moodledata volume mounted by an app container that also runs
// the maintenance script.
type restoreSite struct {
	db       *testenv.MariaDB
	password string
	volume   string
	app      string
}

const restoreSchema = `USE moodle;
CREATE TABLE mdl_user (id BIGINT PRIMARY KEY AUTO_INCREMENT, username VARCHAR(100)) ENGINE=InnoDB;
CREATE TABLE mdl_course (id BIGINT PRIMARY KEY AUTO_INCREMENT, fullname VARCHAR(254)) ENGINE=InnoDB;
INSERT INTO mdl_user (username) SELECT CONCAT('user', seq) FROM seq_1_to_300;
INSERT INTO mdl_course (fullname) SELECT CONCAT('Course ', seq) FROM seq_1_to_40;
`

const restoreFiles = `set -e
cd /data
mkdir -p filedir/ab/cd filedir/12/34 lang/es
head -c 200000 /dev/urandom > filedir/ab/cd/abcd0123
printf 'hola mundo\n' > filedir/12/34/12345678
printf '<?php $string["thislanguage"] = "Español";\n' > lang/es/langconfig.php
chown -R 33:33 /data
`

const restorePipeline = `pipeline "school" {
  root             = %q
  timezone         = "UTC"
  timeout          = "10m"
  safety_copy_days = 5

  %s
  stage "dump" "mysql" {
    container = %q
    database  = "moodle"
    user      = "moodle"
    password  = env("MYSQL_PASSWORD")
  }
  stage "archive" "volume" {
    volume  = %q
    exclude = ["climaintenance.html"]
  }
  stage "checksum" "sha256" {}
}
`

func newRestoreSite(t *testing.T) *restoreSite {
	t.Helper()
	s := &restoreSite{password: `Pa$$ w'o"rd;#` + testenv.UniqueName(t, "x")}
	s.db = testenv.StartMariaDB(t)
	s.db.CreateUser(t, "moodle", "moodle", s.password)
	s.db.SQL(t, restoreSchema)
	s.volume = testenv.UniqueName(t, "mbktest-menu-moodledata")
	testenv.CreateVolume(t, s.volume)
	s.app = testenv.StartApp(t, s.volume, "/data")
	s.exec(t, restoreFiles)
	testenv.InstallMaintenance(t, s.app, testenv.MaintenanceScript)
	return s
}

func (s *restoreSite) exec(t *testing.T, script string) string {
	t.Helper()
	out, stderr, code := testenv.Exec(t, s.app, strings.NewReader(script), "sh", "-s")
	if code != 0 {
		t.Fatalf("in the app container: %s", stderr)
	}
	return out
}

// tables is how many tables the moodle database has.
func (s *restoreSite) tables(t *testing.T) string {
	return strings.TrimSpace(s.db.SQL(t, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'moodle';"))
}

// files lists moodledata's files, maintenance's flag aside.
func (s *restoreSite) files(t *testing.T) string {
	return s.exec(t, "cd /data && find . -type f ! -name climaintenance.html | sort")
}

func (s *restoreSite) inMaintenance(t *testing.T) bool { return testenv.InMaintenance(t, s.app) }

// details reads the figures the screen must show from a set's manifest:
// the database's data bytes and the files' bytes.
func details(t *testing.T, root, set string) (dbBytes, fileBytes uint64, started time.Time) {
	t.Helper()
	m, err := repo.ReadManifest(filepath.Join(root, set))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Artifacts {
		var d struct {
			DataBytes *uint64 `json:"data_bytes"`
			Bytes     *uint64 `json:"bytes"`
		}
		if err := json.Unmarshal(a.Details, &d); err != nil {
			t.Fatal(err)
		}
		switch {
		case a.Plugin == "mysql" && d.DataBytes != nil:
			dbBytes = *d.DataBytes
		case a.Plugin == "volume" && d.Bytes != nil:
			fileBytes = *d.Bytes
		default:
			t.Fatalf("set %s: artifact %s has no figures: %s", set, a.File, a.Details)
		}
	}
	return dbBytes, fileBytes, m.Started
}

// TestMenuRestoresInPlace: the menu restores over a real site. Its
// confirmation screen says what is replaced (the newest backup's figures)
// and what comes back (the chosen set's), the set's date and age, and the
// safety copy taken first; it wants the pipeline's name typed. Cancelling
// restores nothing; confirming runs mbk restore FILE SET --yes --clean,
// which takes the safety copy and leaves nothing of the later site behind;
// the safety copy then shows as such, and is not the default; a failed
// restore's advice shows on the screen.
func TestMenuRestoresInPlace(t *testing.T) {
	s := newRestoreSite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "school.hcl", fmt.Sprintf(restorePipeline, root, testenv.MaintenanceBlock(s.app), s.db.Container, s.volume))
	env := []string{"MYSQL_PASSWORD=" + s.password}
	run := func(args ...string) {
		t.Helper()
		if r := mbktest.Run(t, filepath.Join(binDir, "mbk"), append(baseEnv(t), env...), "", args...); r.Code != 0 {
			t.Fatalf("mbk %s: %s", strings.Join(args, " "), r)
		}
	}

	// Last night's backup: two tables, three files.
	run("run", file)
	older := sets(t, root)[0]
	wantOld := s.files(t)
	// The site moves on, and is backed up again: three tables, four files.
	s.db.SQL(t, "CREATE TABLE moodle.mdl_late (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO moodle.mdl_late VALUES (1);")
	s.exec(t, "mkdir -p /data/filedir/zz && echo homework > /data/filedir/zz/late && chown -R 33:33 /data/filedir/zz")
	run("run", file)
	newer := sets(t, root)[1]
	if s.tables(t) != "3" {
		t.Fatalf("the site should have 3 tables, has %s", s.tables(t))
	}
	laterFiles := s.files(t)
	oldDB, oldFiles, oldStarted := details(t, root, older)
	newDB, newFiles, newStarted := details(t, root, newer)

	tm := startTerm(t, env, "menu", file)
	tm.waitFor("0  Quit")

	// To the set list; then, picking a set, database and files, to the
	// confirmation screen.
	toSets := func() {
		t.Helper()
		tm.send("3")
		tm.waitFor("Restore a backup: which pipeline?")
		tm.waitFor("0  Back")
		tm.send("1")
		tm.waitFor("Which set of school?")
		tm.waitFor("0  Back")
		// The cursor, what Enter picks, is on the newest backup.
		tm.waitShown("› 1  " + newer + "  backup · complete")
	}
	toConfirm := func(pick string) {
		t.Helper()
		tm.send(pick)
		tm.waitFor("Restore what?")
		tm.waitFor("0  Back")
		tm.send("1")
		tm.waitShown("› Type the pipeline's name (school) to restore")
		tm.waitShown("Esc cancels: nothing is restored.") // the screen's last line
	}
	toSets()
	toConfirm("2")
	shown := tm.shown()
	when := func(t time.Time) string {
		return regexp.QuoteMeta(t.UTC().Format("2006-01-02 15:04")) + `, (less than a minute|\d+ min) ago`
	}
	for _, want := range []string{
		`Restore set ` + older + ` of pipeline school over the site: the database and the files\.`,
		`The set was taken ` + when(oldStarted) + ` \(a backup\)\.`,
		`Replaced: the site as it is now, as the newest backup's manifest describes it \(set ` + newer + `,`,
		`taken ` + when(newStarted) + `; what changed since then is replaced too\):`,
		`  Database moodle: ` + regexp.QuoteMeta(humanize.IBytes(newDB)) + ` of data in 3 tables, [\d,]+ rows\n` +
			`  Files: 4 files, ` + regexp.QuoteMeta(humanize.IBytes(newFiles)) + `\n` +
			`Comes back: what set ` + older + ` holds, as its manifest describes it:\n` +
			`  Database moodle: ` + regexp.QuoteMeta(humanize.IBytes(oldDB)) + ` of data in 2 tables, [\d,]+ rows\n` +
			`  Files: 3 files, ` + regexp.QuoteMeta(humanize.IBytes(oldFiles)) + `\n`,
		`A safety copy of the site is taken first; it is kept 5 days \(a set of kind pre-restore in ` + regexp.QuoteMeta(root) + `\)\.`,
		`The site is in maintenance mode, closed to its users, until the restore ends\.`,
		`mbk restore ` + regexp.QuoteMeta(file) + ` ` + older + ` --yes --clean`,
	} {
		if !regexp.MustCompile(want).MatchString(shown) {
			t.Errorf("the confirmation screen does not show %q:\n%s", want, shown)
		}
	}

	// Esc: nothing restored, no safety copy taken.
	from := len(tm.screen())
	tm.send(keyEsc)
	tm.waitFor("Nothing was restored: the site is as it was.")
	backToMenu(tm)
	if strings.Contains(tm.screen()[from:], "$ mbk") {
		t.Fatalf("cancelling ran a command:\n%s", tm.screen()[from:])
	}
	if got := sets(t, root); len(got) != 2 {
		t.Fatalf("cancelling left sets %v, want only the two backups", got)
	}
	if s.tables(t) != "3" || s.files(t) != laterFiles {
		t.Fatalf("cancelling changed the site: %s tables, files:\n%s", s.tables(t), s.files(t))
	}

	// Confirmed: a wrong name is refused, the right one restores.
	toSets()
	toConfirm("2")
	tm.send("schoo" + keyEnter)
	tm.waitShown("type the pipeline's name, school, exactly to restore; Esc cancels")
	if got := sets(t, root); len(got) != 2 {
		t.Fatalf("a wrong name started the restore: sets %v", got)
	}
	tm.send(keyKill + "school" + keyEnter)
	tm.waitFor("$ mbk restore " + file + " " + older + " --yes --clean")
	tm.waitFor("Set " + older + " restored.")
	safety := tm.waitMatch(regexp.MustCompile(`The site as it was before is kept in set (\S+) \(pre-restore\)`))[1]
	backToMenu(tm)
	if got := sets(t, root); len(got) != 3 || got[2] != safety {
		t.Fatalf("after the restore, sets %v; want the two backups and the safety copy %s", got, safety)
	}
	if m, err := repo.ReadManifest(filepath.Join(root, safety)); err != nil || m.Kind != repo.KindPreRestore || m.Restoring != older {
		t.Fatalf("the safety copy's manifest: %+v, %v", m, err)
	}
	// --clean: the database was dropped and the volume emptied, so
	// nothing made after the backup is left mixed in.
	if got := s.tables(t); got != "2" {
		t.Errorf("after restoring %s the database has %s tables, want 2 (the later one dropped)", older, got)
	}
	if got := s.files(t); got != wantOld {
		t.Errorf("after restoring %s the files are\n%s\nwant\n%s", older, got, wantOld)
	}
	if s.inMaintenance(t) {
		t.Error("the site is still in maintenance mode after the restore")
	}

	// The safety copy shows as such and is not the default; the screen
	// says the site was restored since the newest backup. The restore of
	// that backup fails (no DROP privilege): its advice shows.
	toSets()
	tm.waitShown("  3  " + safety + "  SAFETY COPY (pre-restore): the site before set " + older + " was restored")
	toConfirm("1")
	tm.waitShown("Since that backup, set " + older + " was restored over the site (")
	tm.waitShown("Comes back: what set " + newer + " holds")
	s.db.SQL(t, "REVOKE DROP ON moodle.* FROM 'moodle'@'%'; REVOKE DROP ON moodle.* FROM 'moodle'@'localhost'; FLUSH PRIVILEGES;")
	tm.send("school" + keyEnter)
	tm.waitFor("$ mbk restore " + file + " " + newer + " --yes --clean")
	second := tm.waitMatch(regexp.MustCompile(`To put the site back as it was before: +mbk restore ` + regexp.QuoteMeta(file) + ` (\S+) --yes`))[1]
	tm.waitFor("(exit code 1)")
	tm.waitFor("The restore did not complete")
	backToMenu(tm)
	if m, err := repo.ReadManifest(filepath.Join(root, second)); err != nil || m.Kind != repo.KindPreRestore || m.Restoring != newer {
		t.Fatalf("the failed restore's safety copy %s: %+v, %v", second, m, err)
	}
	if !s.inMaintenance(t) {
		t.Error("a failed restore took the site out of maintenance mode")
	}
	tm.send("0")
	if code := tm.wait(); code != 0 {
		t.Fatalf("quit: exit %d", code)
	}
}

func TestMenuRestoreWords(t *testing.T) {
	en, es := i18n.New(i18n.English), i18n.New(i18n.Spanish)
	for d, want := range map[time.Duration]string{
		30 * time.Second:              "less than a minute ago",
		5 * time.Minute:               "5 min ago",
		3*time.Hour + 7*time.Minute:   "3 h 7 min ago",
		2 * time.Hour:                 "2 h ago",
		30 * time.Hour:                "1 day 6 h ago",
		48*time.Hour + 59*time.Minute: "2 days ago",
		-time.Minute:                  "in the future (check this machine's clock)",
	} {
		if got := age(en, d); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		30 * time.Second:              "hace menos de un minuto",
		5 * time.Minute:               "hace 5 min",
		3*time.Hour + 7*time.Minute:   "hace 3 h 7 min",
		30 * time.Hour:                "hace 1 día y 6 h",
		54 * time.Hour:                "hace 2 días y 6 h",
		48*time.Hour + 59*time.Minute: "hace 2 días",
		-time.Minute:                  "en el futuro (compruebe el reloj de esta máquina)",
	} {
		if got := age(es, d); got != want {
			t.Errorf("Spanish age(%s) = %q, want %q", d, got, want)
		}
	}
	for _, tc := range []struct {
		a    repo.Artifact
		want string
	}{
		{repo.Artifact{Details: json.RawMessage(`{"database":"moodle","tables":4,"data_bytes":2654208,"total_rows":5352}`)}, "Database moodle: 2.5 MiB of data in 4 tables, 5,352 rows"},
		{repo.Artifact{Details: json.RawMessage(`{"files":332,"bytes":9858665,"directories":515}`)}, "Files: 332 files, 9.4 MiB"},
		{repo.Artifact{File: "notes.txt", Stage: "dump", Name: "notes", Plugin: "notes", RawSize: 2048}, `notes.txt (stage dump "notes", plugin notes): 2.0 KiB`},
		{repo.Artifact{Details: json.RawMessage(`{"files":1,"bytes":9}`)}, "Files: 1 file, 9 B"},
	} {
		if got := describeArtifact(en, tc.a); got != tc.want {
			t.Errorf("describeArtifact(%s) = %q, want %q", tc.a.Details, got, tc.want)
		}
	}
	// Spanish: decimal comma, thousands point, plurals.
	for _, tc := range []struct {
		a    repo.Artifact
		want string
	}{
		{repo.Artifact{Details: json.RawMessage(`{"database":"moodle","tables":4,"data_bytes":2654208,"total_rows":5352}`)}, "Base de datos moodle: 2,5 MiB de datos en 4 tablas, 5.352 filas"},
		{repo.Artifact{Details: json.RawMessage(`{"database":"moodle","tables":1,"data_bytes":2654208,"total_rows":1}`)}, "Base de datos moodle: 2,5 MiB de datos en 1 tabla, 1 fila"},
		{repo.Artifact{Details: json.RawMessage(`{"files":1332,"bytes":9858665,"directories":515}`)}, "Archivos: 1.332 archivos, 9,4 MiB"},
		{repo.Artifact{File: "notes.txt", Stage: "dump", Name: "notes", Plugin: "notes", RawSize: 2048}, `notes.txt (etapa dump "notes", plugin notes): 2,0 KiB`},
	} {
		if got := describeArtifact(es, tc.a); got != tc.want {
			t.Errorf("Spanish describeArtifact(%s) = %q, want %q", tc.a.Details, got, tc.want)
		}
	}
}

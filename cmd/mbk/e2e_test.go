package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// site is a small Moodle site on the real Docker engine: a MariaDB container
// with a moodle database, and a moodledata volume mounted by an app container.
type site struct {
	db       *testenv.MariaDB
	password string
	volume   string
	app      string
}

const moodleSchema = `
USE moodle;
CREATE TABLE mdl_user (id BIGINT PRIMARY KEY AUTO_INCREMENT, username VARCHAR(100), firstname VARCHAR(100)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE mdl_course (id BIGINT PRIMARY KEY AUTO_INCREMENT, fullname VARCHAR(254), summary LONGTEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE mdl_logstore_standard_log (id BIGINT PRIMARY KEY AUTO_INCREMENT, eventname VARCHAR(255), userid BIGINT, timecreated BIGINT, other LONGTEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO mdl_user (username, firstname) SELECT CONCAT('user', seq), CONCAT('Ñandú 🦤 学生 ', seq) FROM seq_1_to_300;
INSERT INTO mdl_course (fullname, summary) SELECT CONCAT('Curso de matemáticas ', seq), REPEAT('Álgebra y geometría. ', 20) FROM seq_1_to_40;
INSERT INTO mdl_logstore_standard_log (eventname, userid, timecreated, other) SELECT '\\core\\event\\course_viewed', seq % 300, 1700000000 + seq, MD5(seq) FROM seq_1_to_5000;
`

// moodledataScript fills the volume in Moodle's shape, owned by www-data.
const moodledataScript = `set -e
cd /data
mkdir -p filedir/ab/cd filedir/12/34 trashdir/ef/01 lang/es muc cache/core localcache temp/backup sessions
head -c 300000 /dev/urandom > filedir/ab/cd/abcd0123456789abcdef0123456789abcdef0123
printf 'hola mundo\n' > filedir/12/34/1234567890abcdef1234567890abcdef12345678
printf 'gone but kept\n' > trashdir/ef/01/ef01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
printf '<?php $string["thislanguage"] = "Español";\n' > lang/es/langconfig.php
printf '<?php $configuration = array();\n' > muc/config.php
printf 'cached\n' > cache/core/x.cache
printf 'sess\n' > sessions/sess_abc
printf 'tmp\n' > temp/backup/t.tmp
chown -R 33:33 /data
chmod 0750 filedir trashdir lang muc
chmod 0640 filedir/ab/cd/* muc/config.php
`

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{password: `Pa$$ w'o"rd;#ñ\` + testenv.UniqueName(t, "x")}
	s.db = testenv.StartMariaDB(t)
	s.db.CreateUser(t, "moodle", "moodle", s.password)
	s.db.SQL(t, moodleSchema)
	s.volume = testenv.UniqueName(t, "mbktest-moodledata")
	testenv.CreateVolume(t, s.volume)
	s.app = testenv.StartApp(t, s.volume, "/data")
	if _, stderr, code := testenv.Exec(t, s.app, strings.NewReader(moodledataScript), "sh", "-s"); code != 0 {
		t.Fatalf("fill moodledata: %s", stderr)
	}
	return s
}

func (s *site) env(extra ...string) []string {
	return append([]string{"MYSQL_PASSWORD=" + s.password}, extra...)
}

const sitePipeline = `
variable "retention_days" {
  type    = number
  default = 7
}

pipeline "e2e" {
  root     = %q
  schedule = "0 3 * * *"
  timezone = "UTC"
  timeout  = "10m"

  stage "dump" "mysql" {
    container   = %q
    database    = "moodle"
    user        = "moodle"
    password    = env("MYSQL_PASSWORD")
    compression = "gzip"
  }
  stage "archive" "volume" {
    volume  = %q
    exclude = ["cache", "localcache", "temp", "sessions", "climaintenance.html"]
  }
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_days = var.retention_days
    keep_last = 3
  }
%s
}
`

func TestRunEndToEnd(t *testing.T) {
	s := newSite(t)
	smtpPassword := "smtp-" + testenv.UniqueName(t, "secret")
	mail := smtptest.Start(t, smtptest.Options{TLS: "starttls", Username: "backups@example.com", Password: smtpPassword, RequireAuth: true})
	host, port := mail.Addr()
	notify := fmt.Sprintf(`
  stage "notify" "smtp" {
    on       = ["success", "failure"]
    host     = %q
    port     = %d
    tls      = "starttls"
    ca_file  = %q
    username = "backups@example.com"
    password = env("SMTP_PASSWORD")
    from     = "Moodle Backup System <backups@example.com>"
    to       = ["admin@example.com", "second@example.com"]
  }`, host, port, mail.CAFile())
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "site.hcl", fmt.Sprintf(sitePipeline, root, s.db.Container, s.volume, notify))
	env := s.env("SMTP_PASSWORD=" + smtpPassword)

	v := mbk(t, runOpts{env: env}, "validate", file)
	if v.code != 0 || !strings.Contains(v.stdout, "next runs") {
		t.Fatalf("validate: %s", v)
	}
	r := mbk(t, runOpts{env: env}, "--log-level", "debug", "run", file)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	// Each of the five plugins (mysql, volume, sha256, policy, smtp) was
	// started once, for the validation, the planning and its stages.
	if !strings.Contains(r.stderr, "plugins started: count=5 plugins=5") {
		t.Errorf("want one process per plugin for the whole run:\n%s", r.stderr)
	}
	got := sets(t, root)
	if len(got) != 1 {
		t.Fatalf("want one set, got %v\n%s", got, r)
	}
	set := got[0]
	setDir := filepath.Join(root, set)

	t.Run("layout and manifest", func(t *testing.T) {
		for _, f := range []string{"moodle_" + set + ".sql.gz", "moodledata_" + set + ".tar.gz", "backup.log", "DB_INFO.txt", "MOODLEDATA_INFO.txt", "SHA256SUMS", "manifest.json"} {
			if _, err := os.Stat(filepath.Join(setDir, f)); err != nil {
				t.Errorf("missing %s: %v", f, err)
			}
		}
		m, err := repo.ReadManifest(setDir)
		if err != nil {
			t.Fatal(err)
		}
		if m.Pipeline != "e2e" || m.Set != set || m.Status != "complete" || m.Started.IsZero() || m.Finished.Before(m.Started) {
			t.Fatalf("manifest header: %+v", m)
		}
		if len(m.Artifacts) != 2 || m.Artifacts[0].Stage != "dump" || m.Artifacts[1].Stage != "archive" {
			t.Fatalf("artifacts: %+v", m.Artifacts)
		}
		if len(m.Stages) != 3 || m.Stages[0].Kind != "dump" || m.Stages[1].Kind != "archive" || m.Stages[2].Kind != "checksum" {
			t.Fatalf("stages, want the pipeline's order: %+v", m.Stages)
		}
		// The dump and the archive ran side by side (parallel is the
		// default): the archive started before the dump was done.
		blog, _ := os.ReadFile(filepath.Join(setDir, "backup.log"))
		archiveStarted := strings.Index(string(blog), `stage started: stage="archive`)
		dumpFinished := strings.Index(string(blog), `stage finished: stage="dump`)
		if archiveStarted < 0 || dumpFinished < 0 || archiveStarted > dumpFinished {
			t.Errorf("the archive did not start while the dump ran (at %d, dump finished at %d):\n%s", archiveStarted, dumpFinished, blog)
		}
		for _, a := range m.Artifacts {
			if a.Size <= 0 || len(a.SHA256) != 64 || a.Plugin == "" || a.File == "" {
				t.Errorf("artifact record: %+v", a)
			}
		}
		var raw map[string]any
		b, _ := os.ReadFile(filepath.Join(setDir, "manifest.json"))
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"pipeline", "set", "status", "started", "finished", "artifacts"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("manifest.json lacks %q", k)
			}
		}
		cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
		cmd.Dir = setDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum -c: %v\n%s", err, out)
		}
	})

	t.Run("the dump loads into an empty MariaDB", func(t *testing.T) {
		fresh := testenv.StartMariaDB(t)
		fresh.SQL(t, "CREATE DATABASE restored CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")
		f, err := os.Open(filepath.Join(setDir, "moodle_"+set+".sql.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := testenv.Exec(t, fresh.Container, zr, "mariadb", "-uroot", "--default-character-set=utf8mb4", "restored"); code != 0 {
			t.Fatalf("load dump: %s", stderr)
		}
		for _, table := range []string{"mdl_user", "mdl_course", "mdl_logstore_standard_log"} {
			want := s.db.SQL(t, "CHECKSUM TABLE moodle."+table+";")
			gotSum := fresh.SQL(t, "CHECKSUM TABLE restored."+table+";")
			if strings.Fields(want)[1] != strings.Fields(gotSum)[1] {
				t.Errorf("%s: checksum %q, want %q", table, gotSum, want)
			}
		}
	})

	t.Run("the archive holds moodledata without the excluded paths", func(t *testing.T) {
		f, err := os.Open(filepath.Join(setDir, "moodledata_"+set+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		entries := map[string]*tar.Header{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			entries[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = h
		}
		for _, want := range []string{"filedir/ab/cd/abcd0123456789abcdef0123456789abcdef0123", "trashdir/ef/01/ef01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "muc/config.php", "lang/es/langconfig.php"} {
			h, ok := entries[want]
			if !ok {
				t.Errorf("archive lacks %s (has %d entries)", want, len(entries))
				continue
			}
			if h.Uid != 33 || h.Gid != 33 {
				t.Errorf("%s owned by %d:%d, want 33:33", want, h.Uid, h.Gid)
			}
		}
		if h := entries["filedir/ab/cd/abcd0123456789abcdef0123456789abcdef0123"]; h != nil && (h.Size != 300000 || h.Mode&0o777 != 0o640) {
			t.Errorf("big file: size %d mode %o", h.Size, h.Mode)
		}
		for name := range entries {
			for _, ex := range []string{"cache", "localcache", "temp", "sessions"} {
				if name == ex || strings.HasPrefix(name, ex+"/") {
					t.Errorf("excluded path %s is in the archive", name)
				}
			}
		}
	})

	t.Run("the e-mail tells the outcome", func(t *testing.T) {
		msgs := mail.WaitMessages(t, 1, 30*time.Second)
		m := msgs[0]
		if len(m.Rcpt) != 2 || m.AuthUser != "backups@example.com" || !m.TLS {
			t.Fatalf("envelope: rcpt %v, auth %q, tls %v", m.Rcpt, m.AuthUser, m.TLS)
		}
		body := string(m.Data)
		for _, want := range []string{"Subject: [mbk] e2e OK " + set, "moodle_" + set + ".sql.gz"} {
			if !strings.Contains(body, want) {
				t.Errorf("message lacks %q", want)
			}
		}
	})

	t.Run("list, info and verify", func(t *testing.T) {
		l := mbk(t, runOpts{env: env}, "list", file, "--json")
		var listed []struct{ Set, Status string }
		if l.code != 0 || json.Unmarshal([]byte(l.stdout), &listed) != nil || len(listed) != 1 || listed[0].Set != set || listed[0].Status != "complete" {
			t.Fatalf("list: %s", l)
		}
		if i := mbk(t, runOpts{env: env}, "info", file, set); i.code != 0 || !strings.Contains(i.stdout, "moodle_"+set+".sql.gz") || !strings.Contains(i.stdout, "DB_INFO.txt") {
			t.Fatalf("info: %s", i)
		}
		if v := mbk(t, runOpts{env: env}, "verify", file, set); v.code != 0 || !strings.Contains(v.stdout, set+": OK") {
			t.Fatalf("verify: %s", v)
		}
	})

	t.Run("restore refuses without confirmation", func(t *testing.T) {
		r := mbk(t, runOpts{env: env}, "restore", file, set, "--target-database", "never")
		if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
			t.Fatalf("want a refusal naming --yes: %s", r)
		}
		if out := s.db.SQL(t, "SHOW DATABASES LIKE 'never';"); strings.TrimSpace(out) != "" {
			t.Fatalf("a refused restore created the database")
		}
	})

	t.Run("restore into fresh targets gives back the same data", func(t *testing.T) {
		target := testenv.UniqueName(t, "mbktest-restored")
		// The pipeline's own user restores: give it the new database too.
		s.db.SQL(t, "GRANT ALL ON restored.* TO 'moodle'@'%'; GRANT ALL ON restored.* TO 'moodle'@'localhost';")
		r := mbk(t, runOpts{env: env}, "restore", file, set, "--yes", "--target-database", "restored", "--target-volume", target)
		if r.code != 0 {
			t.Fatalf("restore: %s", r)
		}
		t.Cleanup(func() { removeVolume(t, target) })
		// The database and the files were restored side by side.
		filesStarted := regexp.MustCompile(`restore started: file=moodledata_`).FindStringIndex(r.stderr)
		dbFinished := regexp.MustCompile(`restore finished: file=moodle_`).FindStringIndex(r.stderr)
		if filesStarted == nil || dbFinished == nil || filesStarted[0] > dbFinished[0] {
			t.Errorf("the files were not restored while the database was:\n%s", r.stderr)
		}
		for _, table := range []string{"mdl_user", "mdl_course", "mdl_logstore_standard_log"} {
			want := strings.Fields(s.db.SQL(t, "CHECKSUM TABLE moodle."+table+";"))[1]
			got := strings.Fields(s.db.SQL(t, "CHECKSUM TABLE restored."+table+";"))[1]
			if got != want {
				t.Errorf("%s: checksum %s after restore, want %s", table, got, want)
			}
		}
		checker := testenv.StartApp(t, target, "/data")
		fp := "cd /data && find . -path ./cache -prune -o -path ./localcache -prune -o -path ./temp -prune -o -path ./sessions -prune -o -printf '%p %y %m %U:%G %s\\n' | sort"
		want, _, _ := testenv.Exec(t, s.app, nil, "sh", "-c", fp)
		got, _, _ := testenv.Exec(t, checker, nil, "sh", "-c", fp)
		if got != want {
			t.Errorf("restored volume differs:\n--- source\n%s\n--- restored\n%s", want, got)
		}
		sums := "cd /data && find filedir trashdir muc lang -type f -exec sha256sum {} + | sort"
		want, _, _ = testenv.Exec(t, s.app, nil, "sh", "-c", sums)
		got, _, _ = testenv.Exec(t, checker, nil, "sh", "-c", sums)
		if got != want || want == "" {
			t.Errorf("restored file contents differ")
		}
	})

	t.Run("no secret anywhere", func(t *testing.T) {
		places := map[string]string{"stdout": r.stdout, "stderr": r.stderr}
		files, _ := filepath.Glob(filepath.Join(setDir, "*"))
		for _, f := range files {
			if strings.HasSuffix(f, ".gz") {
				continue
			}
			b, _ := os.ReadFile(f)
			places[filepath.Base(f)] = string(b)
		}
		for _, m := range mail.Messages() {
			places["e-mail"] += string(m.Data)
		}
		for where, text := range places {
			for _, secret := range []string{s.password, smtpPassword} {
				if strings.Contains(text, secret) {
					t.Errorf("a password appears in %s", where)
				}
			}
		}
	})
}

// TestVerifyAndRestoreRefuseCorruptSets: one flipped byte in each kind of
// artifact, or a truncated file, fails verify naming the file, and restore
// refuses the set.
func TestVerifyAndRestoreRefuseCorruptSets(t *testing.T) {
	s := newSite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "site.hcl", fmt.Sprintf(sitePipeline, root, s.db.Container, s.volume, ""))
	if r := mbk(t, runOpts{env: s.env()}, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	set := sets(t, root)[0]
	setDir := filepath.Join(root, set)
	pristine := filepath.Join(dir, "pristine")
	if out, err := exec.Command("cp", "-a", setDir, pristine).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	damage := map[string]func(path string){
		"flipped byte": func(path string) {
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0x01
			os.WriteFile(path, b, 0o600)
		},
		"truncated": func(path string) {
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()*2/3)
		},
	}
	for _, victim := range []string{"moodle_" + set + ".sql.gz", "moodledata_" + set + ".tar.gz"} {
		for how, fn := range damage {
			t.Run(how+" in "+victim, func(t *testing.T) {
				os.RemoveAll(setDir)
				if out, err := exec.Command("cp", "-a", pristine, setDir).CombinedOutput(); err != nil {
					t.Fatalf("copy: %v %s", err, out)
				}
				fn(filepath.Join(setDir, victim))
				v := mbk(t, runOpts{env: s.env()}, "verify", file, set)
				if v.code != 1 || !strings.Contains(v.stdout, "BAD: "+victim) {
					t.Fatalf("verify should fail naming %s: %s", victim, v)
				}
				r := mbk(t, runOpts{env: s.env()}, "restore", file, set, "--yes", "--target-database", "never_restored")
				if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "refusing to restore") {
					t.Fatalf("restore should refuse: %s", r)
				}
				if out := s.db.SQL(t, "SHOW DATABASES LIKE 'never_restored';"); strings.TrimSpace(out) != "" {
					t.Fatalf("a refused restore touched the server")
				}
			})
		}
	}
	t.Run("garbage SHA256SUMS is reported, not trusted", func(t *testing.T) {
		os.RemoveAll(setDir)
		exec.Command("cp", "-a", pristine, setDir).Run()
		os.WriteFile(filepath.Join(setDir, "SHA256SUMS"), []byte("this is not a checksum list\n"), 0o600)
		v := mbk(t, runOpts{env: s.env()}, "verify", file, set)
		if v.code != 1 || !strings.Contains(v.stdout, "SHA256SUMS") {
			t.Fatalf("verify: %s", v)
		}
	})
}

func TestValidateReportsEveryMistake(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "bad.hcl", `pipeline "bad" {
  root     = "/tmp/never-used"
  schedule = "61 * * * *"

  stage "dump" "mysql" {
    container = "db"
    databse   = "moodle"
  }
  stage "retain" "policy" {
    keep_days = "seven"
  }
}
`)
	r := mbk(t, runOpts{}, "validate", file)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	for _, want := range []string{
		file + " line 3",       // the bad cron expression
		file + " line 7",       // the unknown attribute
		`"databse"`,            // named
		file + " line 10",      // the wrong type
		"a number is required", // explained
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate output lacks %q\n%s", want, r)
		}
	}
}

// TestKillDuringDump: SIGKILL in the middle of the dump leaves nothing that
// looks like a set, stops the dump inside the container, and the next run
// cleans up and succeeds.
func TestKillDuringDump(t *testing.T) {
	s := newSite(t)
	// Enough rows that the dump lasts well beyond the moment we kill.
	s.db.SQL(t, `USE moodle; CREATE TABLE mdl_big (id BIGINT PRIMARY KEY, a CHAR(32), b CHAR(32), c CHAR(32)) ENGINE=InnoDB;
INSERT INTO mdl_big SELECT seq, MD5(seq), MD5(seq+1), MD5(seq+2) FROM seq_1_to_3000000;`)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "site.hcl", fmt.Sprintf(sitePipeline, root, s.db.Container, s.volume, ""))

	cmd := exec.Command(filepath.Join(binDir, "mbk"), "run", file)
	cmd.Env = append(baseEnv(t), s.env()...)
	logf, err := os.Create(filepath.Join(dir, "killed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the dump file in the staging directory has grown.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		matches, _ := filepath.Glob(filepath.Join(root, repo.StagingPrefix+"*", "moodle_*.sql.gz"))
		if len(matches) == 1 {
			if st, err := os.Stat(matches[0]); err == nil && st.Size() > 1<<20 {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("the dump never got going\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if got := sets(t, root); len(got) != 0 {
		t.Fatalf("a killed run left what looks like a set: %v", got)
	}
	// The dump inside the container must stop: an orphan would hold the
	// snapshot open.
	deadline = time.Now().Add(20 * time.Second)
	for {
		out, _, _ := testenv.Exec(t, s.db.Container, nil, "sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done")
		if !strings.Contains(out, "mariadb-dump") && !strings.Contains(out, "mysqldump") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dump still runs in the container 20 s after mbk was killed:\n%s", out)
		}
		time.Sleep(250 * time.Millisecond)
	}

	r := mbk(t, runOpts{env: s.env()}, "run", file)
	if r.code != 0 {
		t.Fatalf("the next run: %s", r)
	}
	if !strings.Contains(r.stderr, "left by an interrupted run") {
		t.Errorf("the next run did not report the leftover\n%s", r)
	}
	if left, _ := repo.Leftovers(root); len(left) != 0 {
		t.Errorf("leftovers remain: %v", left)
	}
	if got := sets(t, root); len(got) != 1 {
		t.Fatalf("want one set after the rerun, got %v", got)
	}
}

// TestParallelFailureStopsTheOtherSide: when the archive fails while the
// dump runs beside it, the dump is stopped (inside the container too), the
// error names the cause, and nothing is committed.
func TestParallelFailureStopsTheOtherSide(t *testing.T) {
	s := newSite(t)
	s.db.SQL(t, `USE moodle; CREATE TABLE mdl_big (id BIGINT PRIMARY KEY, a CHAR(32), b CHAR(32), c CHAR(32)) ENGINE=InnoDB;
INSERT INTO mdl_big SELECT seq, MD5(seq), MD5(seq+1), MD5(seq+2) FROM seq_1_to_1000000;`)
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	missing := testenv.UniqueName(t, "mbktest-novolume")
	file := writeFile(t, dir, "site.hcl", fmt.Sprintf(sitePipeline, root, s.db.Container, missing, ""))
	r := mbk(t, runOpts{env: s.env()}, "run", file)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	if !strings.Contains(r.stdout+r.stderr, missing) || !strings.Contains(r.stdout+r.stderr, `archive "volume"`) {
		t.Errorf("the output does not name the archive stage and the volume\n%s", r)
	}
	logs, _ := filepath.Glob(filepath.Join(root, "*.failed.log"))
	if len(logs) != 1 {
		t.Fatalf("want the failed run's log, got %v", logs)
	}
	blog, _ := os.ReadFile(logs[0])
	if !regexp.MustCompile(`stage failed: stage=.*dump.*cancelled: the archive stages failed`).Match(blog) {
		t.Errorf("the log does not show the dump stopped because the archive failed:\n%s", blog)
	}
	if got := sets(t, root); len(got) != 0 {
		t.Fatalf("a failed run left sets %v", got)
	}
	if left, _ := repo.Leftovers(root); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	waitNoneIn(t, s.db.Container, "mariadb-dump")
}

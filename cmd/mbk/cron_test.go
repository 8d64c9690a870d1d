package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/schedule"
	"github.com/mbk-backup/mbk/core/testing/crontabtest"
)

// The cron tests drive the real crontab(1) on the crontab of a throwaway
// user (crontabtest.User), through mbk cron --user: the crontab of the user
// running the tests is never touched.

// cronFile writes a file with one faulty pipeline per name; schedule ""
// means none.
func cronFile(t *testing.T, dir, timezone string, pipelines map[string]string) string {
	t.Helper()
	var blocks []string
	for name, sched := range pipelines {
		b := pipelineBlock(name, filepath.Join(dir, "backups-"+name), sched, okDump)
		if timezone != "" {
			b = strings.Replace(b, `timeout = "5m"`, fmt.Sprintf("timeout = \"5m\"\n  timezone = %q", timezone), 1)
		}
		blocks = append(blocks, b)
	}
	path := filepath.Join(dir, "pipelines.hcl")
	daemonFile(t, path, blocks...)
	return path
}

func readCrontab(t *testing.T, user string) []string {
	t.Helper()
	lines, err := schedule.Crontab{User: user}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// cronEnv pins the system timezone cron is compared with.
var cronEnv = runOpts{env: []string{"TZ=UTC"}}

func TestCronInstallListRemove(t *testing.T) {
	user := crontabtest.User(t)
	others := []string{
		"# the administrator's own entries",
		"MAILTO=admin@example.com",
		"",
		"15 1 * * * /usr/local/bin/other-job --flag",
		"# 0 2 * * * a comment that mentions # mbk:testing:/somewhere.hcl",
	}
	if err := (schedule.Crontab{User: user}).Write(context.Background(), others); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := cronFile(t, dir, "UTC", map[string]string{"testing": "0 2 * * *"})
	self := filepath.Join(binDir, "mbk")
	line := func(sched string) string {
		return fmt.Sprintf("%s %s run %s --pipeline testing # mbk:testing:%s", sched, self, file, file)
	}

	r := mbk(t, cronEnv, "cron", "install", "--user", user, file)
	if r.code != 0 || !strings.Contains(r.stdout, "installed: "+line("0 2 * * *")) || strings.Contains(r.stderr, "warning") {
		t.Fatalf("install:\n%s", r)
	}
	want := append(slices.Clone(others), line("0 2 * * *"))
	if got := readCrontab(t, user); !slices.Equal(got, want) {
		t.Fatalf("crontab after install:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r = mbk(t, cronEnv, "cron", "install", "--user", user, file)
	if r.code != 0 || !strings.Contains(r.stdout, "already installed") {
		t.Fatalf("second install:\n%s", r)
	}
	if got := readCrontab(t, user); !slices.Equal(got, want) {
		t.Fatalf("a second install changed the crontab:\n%s", strings.Join(got, "\n"))
	}

	r = mbk(t, cronEnv, "cron", "install", "--user", user, "--schedule", "30 4 * * 1-5", file)
	if r.code != 0 || !strings.Contains(r.stdout, "replaced: "+line("30 4 * * 1-5")) {
		t.Fatalf("install --schedule:\n%s", r)
	}
	want = append(slices.Clone(others), line("30 4 * * 1-5"))
	if got := readCrontab(t, user); !slices.Equal(got, want) {
		t.Fatalf("crontab after install --schedule:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Another file's entry, to see list FILE and remove FILE keep to theirs.
	otherDir := t.TempDir()
	otherFile := cronFile(t, otherDir, "UTC", map[string]string{"production": "0 3 * * *"})
	if r := mbk(t, cronEnv, "cron", "install", "--user", user, otherFile); r.code != 0 {
		t.Fatalf("install of a second file:\n%s", r)
	}

	r = mbk(t, cronEnv, "cron", "list", "--user", user)
	for _, w := range []string{"testing (" + file + ")", "30 4 * * 1-5 " + self + " run", "production (" + otherFile + ")",
		"note: the file's schedule is \"0 2 * * *\"", "next runs: "} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("list lacks %q\n%s", w, r)
		}
	}
	if r.code != 0 || strings.Contains(r.stdout, "other-job") || strings.Contains(r.stdout, "/somewhere.hcl") {
		t.Fatalf("list shows more than mbk's lines:\n%s", r)
	}
	r = mbk(t, cronEnv, "cron", "list", "--user", user, file)
	if r.code != 0 || !strings.Contains(r.stdout, "testing (") || strings.Contains(r.stdout, "production") {
		t.Fatalf("list FILE:\n%s", r)
	}

	// The installed line does what it says, run the way cron runs it.
	cmd := exec.Command("/bin/sh", "-c", strings.SplitN(line("30 4 * * 1-5"), " ", 6)[5])
	cmd.Env = baseEnv(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the crontab line's command: %v\n%s", err, out)
	}
	if got := sets(t, filepath.Join(dir, "backups-testing")); len(got) != 1 {
		t.Fatalf("the crontab line's command made sets %v", got)
	}

	r = mbk(t, cronEnv, "cron", "remove", "--user", user, file)
	if r.code != 0 || !strings.Contains(r.stdout, "removed: "+line("30 4 * * 1-5")) {
		t.Fatalf("remove:\n%s", r)
	}
	if got, want := readCrontab(t, user), readCrontabWithout(others, otherFile, user, t); !slices.Equal(got, want) {
		t.Fatalf("crontab after remove:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r = mbk(t, cronEnv, "cron", "remove", "--user", user, file)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to remove") {
		t.Fatalf("second remove:\n%s", r)
	}
	if r := mbk(t, cronEnv, "cron", "remove", "--user", user, otherFile); r.code != 0 {
		t.Fatalf("remove of the second file:\n%s", r)
	}
	if got := readCrontab(t, user); !slices.Equal(got, others) {
		t.Fatalf("the other entries did not survive, untouched:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(others, "\n"))
	}
}

// readCrontabWithout is what the crontab should hold once the first file's
// line is gone: the others, then the second file's line.
func readCrontabWithout(others []string, otherFile, user string, t *testing.T) []string {
	var out = slices.Clone(others)
	for _, e := range schedule.Entries(readCrontab(t, user)) {
		if e.File == otherFile {
			out = append(out, e.Line)
		}
	}
	return out
}

func TestCronWarnsWhenThePipelineTimezoneIsNotCrons(t *testing.T) {
	user := crontabtest.User(t)
	file := cronFile(t, t.TempDir(), "Asia/Tokyo", map[string]string{"testing": "0 2 * * *"})
	for _, args := range [][]string{{"install", file}, {"list"}} {
		r := mbk(t, cronEnv, append(append([]string{"cron"}, args...), "--user", user)...)
		if r.code != 0 {
			t.Fatalf("cron %v:\n%s", args, r)
		}
		for _, w := range []string{"timezone Asia/Tokyo", "cron reads the schedule in the system timezone (UTC)"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("cron %v: stderr lacks %q\n%s", args, w, r)
			}
		}
		// 02:00 UTC, when cron starts it, is 11:00 in Tokyo.
		if !strings.Contains(r.stdout, "02:00 UTC (11:00 JST pipeline time)") {
			t.Errorf("cron %v: the next runs are not shown in both timezones\n%s", args, r)
		}
	}
}

func TestCronRefusesWhatCronCannotRun(t *testing.T) {
	user := crontabtest.User(t)
	dir := t.TempDir()
	one := cronFile(t, dir, "", map[string]string{"testing": "0 2 * * *"})
	unscheduled := cronFile(t, t.TempDir(), "", map[string]string{"manual": ""})
	two := cronFile(t, t.TempDir(), "", map[string]string{"a": "0 2 * * *", "b": "0 3 * * *"})
	tests := []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"bad schedule", []string{"install", one, "--schedule", "61 * * * *"}, nil, 2, "--schedule \"61 * * * *\""},
		{"@every", []string{"install", one, "--schedule", "@every 5m"}, nil, 2, "cron has no @every"},
		{"TZ prefix", []string{"install", one, "--schedule", "TZ=UTC 0 2 * * *"}, nil, 2, "TZ= prefix is not allowed"},
		{"no schedule", []string{"install", unscheduled}, nil, 2, "pipeline \"manual\" has no schedule: give one with --schedule"},
		{"--schedule for two pipelines", []string{"install", two, "--schedule", "0 4 * * *"}, nil, 2, "say which one --schedule is for with --pipeline"},
		{"unknown pipeline", []string{"install", one, "--pipeline", "nope"}, nil, 2, "nope"},
		{"no crontab command", []string{"install", one}, []string{"MBK_CRONTAB=/nonexistent/crontab"}, 1, "apt-get install cron"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mbk(t, runOpts{env: append([]string{"TZ=UTC"}, tc.env...)}, append(append([]string{"cron"}, tc.args...), "--user", user)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want exit %d and %q\n%s", tc.code, tc.want, r)
			}
			if got := readCrontab(t, user); len(got) != 0 {
				t.Fatalf("a refused install wrote the crontab: %q", got)
			}
		})
	}
	// --pipeline picks one of two; --schedule then applies to it alone.
	r := mbk(t, cronEnv, "cron", "install", "--user", user, two, "--pipeline", "b", "--schedule", "0 4 * * *")
	if got := schedule.Entries(readCrontab(t, user)); r.code != 0 || len(got) != 1 || got[0].Pipeline != "b" || got[0].Schedule != "0 4 * * *" {
		t.Fatalf("install --pipeline b --schedule: %+v\n%s", got, r)
	}
}

// TestCronInstallsTheDrillAndVerify: a pipeline's drill and verify blocks
// each get a crontab line of their own (mbk drill, tagged # mbk-drill:;
// mbk verify --scheduled, tagged # mbk-verify:), beside the backup's; list
// names them, and remove takes all away.
func TestCronInstallsTheDrillAndVerify(t *testing.T) {
	user := crontabtest.User(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "p.hcl")
	daemonFile(t, file, strings.Replace(pipelineBlock("school", filepath.Join(dir, "backups"), "0 2 * * *", okDump),
		`stage "checksum" "sha256" {}`, `stage "checksum" "sha256" {}
  stage "store" "sftp" {
    host        = "127.0.0.1"
    user        = "backup"
    key_file    = "/nonexistent/key"
    known_hosts = "/nonexistent/known_hosts"
    path        = "/sets"
  }
  drill {
    schedule = "0 5 * * 0"
  }
  verify {
    schedule    = "30 4 * * *"
    read_subset = "1/7"
  }`, 1))
	self := filepath.Join(binDir, "mbk")
	run := fmt.Sprintf("0 2 * * * %s run %s --pipeline school # mbk:school:%s", self, file, file)
	drill := fmt.Sprintf("0 5 * * 0 %s drill %s --pipeline school # mbk-drill:school:%s", self, file, file)
	verify := fmt.Sprintf("30 4 * * * %s verify %s --pipeline school --scheduled # mbk-verify:school:%s", self, file, file)

	r := mbk(t, cronEnv, "cron", "install", "--user", user, file)
	if r.code != 0 || !strings.Contains(r.stdout, "installed: "+drill) || !strings.Contains(r.stdout, "installed: "+verify) {
		t.Fatalf("install:\n%s", r)
	}
	if got := readCrontab(t, user); !slices.Equal(got, []string{run, drill, verify}) {
		t.Fatalf("crontab:\n%s", strings.Join(got, "\n"))
	}
	if r := mbk(t, cronEnv, "cron", "install", "--user", user, file); r.code != 0 || !strings.Contains(r.stdout, "already installed: "+verify) {
		t.Fatalf("install again:\n%s", r)
	}
	if got := readCrontab(t, user); !slices.Equal(got, []string{run, drill, verify}) {
		t.Fatalf("crontab after a second install:\n%s", strings.Join(got, "\n"))
	}
	if r := mbk(t, cronEnv, "cron", "list", "--user", user); r.code != 0 || !strings.Contains(r.stdout, "school (drill) ("+file+")") || !strings.Contains(r.stdout, "school (verify) ("+file+")") {
		t.Fatalf("list:\n%s", r)
	}
	if r := mbk(t, cronEnv, "cron", "remove", "--user", user, file); r.code != 0 || len(readCrontab(t, user)) != 0 {
		t.Fatalf("remove left %q:\n%s", readCrontab(t, user), r)
	}
}

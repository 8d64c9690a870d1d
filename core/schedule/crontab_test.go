package schedule

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/crontabtest"
)

func TestCrontabLine(t *testing.T) {
	tests := []struct {
		name, schedule, pipeline, file string
		argv                           []string
		want                           string
	}{
		{name: "plain", schedule: "0 2 * * *", pipeline: "testing", file: "/etc/mbk/testing.hcl",
			argv: []string{"/usr/local/bin/mbk", "run", "/etc/mbk/testing.hcl", "--pipeline", "testing"},
			want: "0 2 * * * /usr/local/bin/mbk run /etc/mbk/testing.hcl --pipeline testing # mbk:testing:/etc/mbk/testing.hcl"},
		{name: "quoted and percent", schedule: "@daily", pipeline: "a b", file: "/srv/my 100%.hcl",
			argv: []string{"/opt/mbk", "run", "/srv/my 100%.hcl", "--pipeline", "a b"},
			want: `@daily /opt/mbk run '/srv/my 100\%.hcl' --pipeline 'a b' # mbk:a b:/srv/my 100\%.hcl`},
		{name: "single quote", schedule: "0 3 * * 0", pipeline: "p", file: "/x/it's.hcl",
			argv: []string{"/opt/mbk", "run", "/x/it's.hcl"},
			want: `0 3 * * 0 /opt/mbk run '/x/it'\''s.hcl' # mbk:p:/x/it's.hcl`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Line(tc.schedule, tc.argv, tc.pipeline, tc.file, KindBackup)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Line =\n%s\nwant\n%s", got, tc.want)
			}
			e := Entries([]string{got})
			if len(e) != 1 || e[0].Pipeline != tc.pipeline || e[0].File != tc.file || e[0].Schedule != tc.schedule {
				t.Fatalf("the line does not parse back: %+v", e)
			}
		})
	}
	if _, err := Line("0 2 * * *", []string{"/opt/mbk"}, "p", "/a\nb.hcl", KindBackup); err == nil {
		t.Error("a line break was accepted")
	}
}

var others = []string{
	"# m h dom mon dow command",
	"MAILTO=admin@example.com",
	"",
	"15 1 * * * /usr/local/bin/other-job --flag",
	"# 0 2 * * * /opt/mbk run /a.hcl # mbk:old:/a.hcl",
	"@reboot /usr/bin/something",
}

func TestCrontabUpsertAndRemoveTouchOnlyTheirOwnLines(t *testing.T) {
	a1 := "0 2 * * * /opt/mbk run /a.hcl --pipeline p # mbk:p:/a.hcl"
	a2 := "30 4 * * * /opt/mbk run /a.hcl --pipeline p # mbk:p:/a.hcl"
	q := "0 3 * * * /opt/mbk run /a.hcl --pipeline q # mbk:q:/a.hcl"
	b := "0 5 * * * /opt/mbk run /b.hcl --pipeline p # mbk:p:/b.hcl"

	lines, replaced := Upsert(others, "p", "/a.hcl", KindBackup, a1)
	if replaced || !slices.Equal(lines, append(slices.Clone(others), a1)) {
		t.Fatalf("first upsert: %q", lines)
	}
	lines, replaced = Upsert(lines, "p", "/a.hcl", KindBackup, a2)
	if !replaced || !slices.Equal(lines, append(slices.Clone(others), a2)) {
		t.Fatalf("second upsert: %q", lines)
	}
	lines, _ = Upsert(lines, "q", "/a.hcl", KindBackup, q)
	lines, _ = Upsert(lines, "p", "/b.hcl", KindBackup, b)
	// A duplicate left by hand collapses into the one entry.
	lines = append(lines, a1)
	lines, _ = Upsert(lines, "p", "/a.hcl", KindBackup, a1)
	if want := append(slices.Clone(others), a1, q, b); !slices.Equal(lines, want) {
		t.Fatalf("after upserts:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if got := Entries(lines); len(got) != 3 {
		t.Fatalf("Entries found %d lines, want 3 (comments are not entries): %+v", len(got), got)
	}

	kept, removed := Remove(lines, "p", "/a.hcl")
	if len(removed) != 1 || removed[0].Line != a1 || !slices.Equal(kept, append(slices.Clone(others), q, b)) {
		t.Fatalf("remove one pipeline: kept %q removed %+v", kept, removed)
	}
	kept, removed = Remove(kept, "", "/a.hcl")
	if len(removed) != 1 || !slices.Equal(kept, append(slices.Clone(others), b)) {
		t.Fatalf("remove a file's lines: kept %q removed %+v", kept, removed)
	}
	kept, _ = Remove(kept, "", "/b.hcl")
	if !slices.Equal(kept, others) {
		t.Fatalf("after removing every mbk line:\n%s\nwant\n%s", strings.Join(kept, "\n"), strings.Join(others, "\n"))
	}
}

func TestCrontabAgainstTheRealCrontab(t *testing.T) {
	ctx := context.Background()
	ct := Crontab{User: crontabtest.User(t)}

	lines, err := ct.Read(ctx)
	if err != nil || len(lines) != 0 {
		t.Fatalf("a user without a crontab: %q, %v", lines, err)
	}
	want := append(slices.Clone(others), "0 2 * * * /opt/mbk run /a.hcl --pipeline p # mbk:p:/a.hcl")
	if err := ct.Write(ctx, want); err != nil {
		t.Fatal(err)
	}
	if lines, err = ct.Read(ctx); err != nil || !slices.Equal(lines, want) {
		t.Fatalf("read back:\n%s\nwant\n%s\n(%v)", strings.Join(lines, "\n"), strings.Join(want, "\n"), err)
	}

	// crontab(1) refuses a bad line and keeps the crontab it had.
	err = ct.Write(ctx, []string{"61 * * * * /bin/true"})
	if err == nil || !strings.Contains(err.Error(), "bad minute") {
		t.Fatalf("a bad line: err = %v", err)
	}
	if lines, _ = ct.Read(ctx); !slices.Equal(lines, want) {
		t.Fatalf("a refused write changed the crontab: %q", lines)
	}

	// Failing to read is not an empty crontab: writing that back would
	// wipe every entry.
	if _, err := (Crontab{User: "mbk-no-such-user"}).Read(ctx); err == nil {
		t.Fatal("reading an unknown user's crontab did not fail")
	}
	if _, err := (Crontab{Program: "/nonexistent/crontab"}).Read(ctx); !errors.Is(err, ErrNoCrontabProgram) || !strings.Contains(err.Error(), "apt-get install cron") {
		t.Fatalf("missing program: %v", err)
	}

	if err := ct.Write(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if lines, err = ct.Read(ctx); err != nil || len(lines) != 0 {
		t.Fatalf("after writing nothing: %q, %v", lines, err)
	}
}

// A crontab line takes what both the pipeline grammar and cron(8) read.
func TestParseCrontabSchedule(t *testing.T) {
	for _, ok := range []string{"0 2 * * *", "*/30 * * * *", "@daily", "0 2,14 * * 1-5"} {
		if _, err := ParseCrontabSchedule(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for spec, want := range map[string]string{
		"@every 5m":   "cron has no @every",
		"0 2 ? * *":   `cron has no "?"`,
		"0 2 * *":     "",
		"not a sched": "",
	} {
		_, err := ParseCrontabSchedule(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error saying %q", spec, err, want)
		}
	}
}

// A pipeline's drill and verify have lines of their own: installing them
// leaves the backup's line alone, and removing the pipeline removes all.
func TestCrontabBlockLinesAreTheirOwnEntries(t *testing.T) {
	run, err := Line("0 2 * * *", []string{"/opt/mbk", "run", "/a.hcl", "--pipeline", "p"}, "p", "/a.hcl", KindBackup)
	if err != nil {
		t.Fatal(err)
	}
	drill, err := Line("0 5 * * 0", []string{"/opt/mbk", "drill", "/a.hcl", "--pipeline", "p"}, "p", "/a.hcl", KindDrill)
	if err != nil {
		t.Fatal(err)
	}
	verify, err := Line("30 4 * * *", []string{"/opt/mbk", "verify", "/a.hcl", "--pipeline", "p", "--scheduled"}, "p", "/a.hcl", KindVerify)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(drill, " # mbk-drill:p:/a.hcl") || !strings.HasSuffix(verify, " # mbk-verify:p:/a.hcl") {
		t.Fatalf("lines %q, %q lack their tags", drill, verify)
	}
	lines, _ := Upsert(others, "p", "/a.hcl", KindBackup, run)
	lines, replacedDrill := Upsert(lines, "p", "/a.hcl", KindDrill, drill)
	lines, replacedVerify := Upsert(lines, "p", "/a.hcl", KindVerify, verify)
	if replacedDrill || replacedVerify || !slices.Equal(lines, append(slices.Clone(others), run, drill, verify)) {
		t.Fatalf("a block's line replaced another: %q", lines)
	}
	es := Entries(lines)
	if len(es) != 3 || es[0].Kind != KindBackup || es[1].Kind != KindDrill || es[2].Kind != KindVerify ||
		es[2].Pipeline != "p" || es[2].File != "/a.hcl" || es[2].Schedule != "30 4 * * *" {
		t.Fatalf("entries: %+v", es)
	}
	kept, removed := Remove(lines, "p", "/a.hcl")
	if len(removed) != 3 || !slices.Equal(kept, others) {
		t.Fatalf("remove: kept %q removed %+v", kept, removed)
	}
}

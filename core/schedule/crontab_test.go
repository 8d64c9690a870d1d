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
			got, err := Line(tc.schedule, tc.argv, tc.pipeline, tc.file, false)
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
	if _, err := Line("0 2 * * *", []string{"/opt/mbk"}, "p", "/a\nb.hcl", false); err == nil {
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

	lines, replaced := Upsert(others, "p", "/a.hcl", false, a1)
	if replaced || !slices.Equal(lines, append(slices.Clone(others), a1)) {
		t.Fatalf("first upsert: %q", lines)
	}
	lines, replaced = Upsert(lines, "p", "/a.hcl", false, a2)
	if !replaced || !slices.Equal(lines, append(slices.Clone(others), a2)) {
		t.Fatalf("second upsert: %q", lines)
	}
	lines, _ = Upsert(lines, "q", "/a.hcl", false, q)
	lines, _ = Upsert(lines, "p", "/b.hcl", false, b)
	// A duplicate left by hand collapses into the one entry.
	lines = append(lines, a1)
	lines, _ = Upsert(lines, "p", "/a.hcl", false, a1)
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

// A pipeline's drill has a line of its own: installing it leaves the backup's
// line alone, and removing the pipeline removes both.
func TestCrontabDrillLineIsItsOwnEntry(t *testing.T) {
	run, err := Line("0 2 * * *", []string{"/opt/mbk", "run", "/a.hcl", "--pipeline", "p"}, "p", "/a.hcl", false)
	if err != nil {
		t.Fatal(err)
	}
	drill, err := Line("0 5 * * 0", []string{"/opt/mbk", "drill", "/a.hcl", "--pipeline", "p"}, "p", "/a.hcl", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(drill, " # mbk-drill:p:/a.hcl") {
		t.Fatalf("drill line %q lacks its tag", drill)
	}
	lines, _ := Upsert(others, "p", "/a.hcl", false, run)
	lines, replaced := Upsert(lines, "p", "/a.hcl", true, drill)
	if replaced || !slices.Equal(lines, append(slices.Clone(others), run, drill)) {
		t.Fatalf("the drill's line replaced the run's: %q", lines)
	}
	es := Entries(lines)
	if len(es) != 2 || es[0].Drill || !es[1].Drill || es[1].Pipeline != "p" || es[1].File != "/a.hcl" || es[1].Schedule != "0 5 * * 0" {
		t.Fatalf("entries: %+v", es)
	}
	kept, removed := Remove(lines, "p", "/a.hcl")
	if len(removed) != 2 || !slices.Equal(kept, others) {
		t.Fatalf("remove: kept %q removed %+v", kept, removed)
	}
}

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// verdicts renders decisions as "SET keep|delete" lines, oldest first.
func verdicts(ds []sdk.Decision) []string {
	var out []string
	for _, d := range ds {
		v := "keep"
		if !d.Keep {
			v = "delete"
		}
		out = append(out, d.Set+" "+v)
	}
	return out
}

func TestPrune(t *testing.T) {
	root := newRoot(t)
	makeSets(t, root, []string{"2020-01-01_02-00-00", "2020-01-02_02-00-00", "2020-01-03_02-00-00", "2020-01-04_02-00-00"},
		"2020-01-01_12-00-00")
	pl := prepare(t, root, okDump+`
  stage "retain" "policy" {
    keep_last = 2
  }`)
	want := []string{
		"2020-01-01_02-00-00 delete",
		"2020-01-01_12-00-00 keep", // incomplete: never subject to retention
		"2020-01-02_02-00-00 delete",
		"2020-01-03_02-00-00 keep",
		"2020-01-04_02-00-00 keep",
	}

	t.Run("a dry run decides and deletes nothing", func(t *testing.T) {
		before := setsIn(t, root)
		pruned, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(pruned) != 1 || pruned[0].Stage != pl.stage(t, sdk.KindRetain, "policy") {
			t.Fatalf("want one retain stage's outcome, got %+v", pruned)
		}
		if got := verdicts(pruned[0].Decisions); !slices.Equal(got, want) {
			t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(pruned[0].Deleted) != 0 || !slices.Equal(setsIn(t, root), before) {
			t.Errorf("a dry run deleted %v: %v -> %v", pruned[0].Deleted, before, setsIn(t, root))
		}
	})

	t.Run("a prune deletes what the verdict says, and says so", func(t *testing.T) {
		pruned, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := verdicts(pruned[0].Decisions); !slices.Equal(got, want) {
			t.Errorf("verdicts: %v, want %v", got, want)
		}
		gone := []string{"2020-01-01_02-00-00", "2020-01-02_02-00-00"}
		if !slices.Equal(pruned[0].Deleted, gone) {
			t.Errorf("deleted %v, want %v", pruned[0].Deleted, gone)
		}
		left := []string{"2020-01-01_12-00-00", "2020-01-03_02-00-00", "2020-01-04_02-00-00"}
		if got := setsIn(t, root); !slices.Equal(got, left) {
			t.Errorf("left %v, want %v", got, left)
		}
	})

	t.Run("not while another process holds the root", func(t *testing.T) {
		lock, err := repo.Acquire(root)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Release()
		before := setsIn(t, root)
		if _, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), false); !errors.Is(err, repo.ErrLocked) {
			t.Fatalf("want the lock refused, got %v", err)
		}
		if !slices.Equal(setsIn(t, root), before) {
			t.Errorf("sets deleted under another's lock")
		}
	})
}

// A retention plugin's verdict is held to the engine's guarantees, whoever
// asks: mbk prune and a run alike.
func TestPruneHoldsTheVerdictToTheGuarantees(t *testing.T) {
	sets := []string{"2019-06-01_02-00-00", "2020-06-01_02-00-00", "2021-06-01_02-00-00"}
	for _, tc := range []struct {
		mode    string
		wantErr string
		left    []string
		reason  string
	}{
		{mode: "delete-all", wantErr: "refusing the policy's verdict", left: append(sets[:3:3], "2022-01-01_00-00-00")},
		{mode: "delete-all-but-newest", left: []string{"2021-06-01_02-00-00", "2022-01-01_00-00-00"},
			reason: "not deleted: only complete sets are subject to retention"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			root := newRoot(t)
			makeSets(t, root, sets, "2022-01-01_00-00-00")
			pl := prepare(t, root, okDump+`
  stage "retain" "faulty" {
    mode = "`+tc.mode+`"
  }`)
			pruned, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `retain "faulty"`) {
					t.Fatalf("want %q naming the stage, got %v", tc.wantErr, err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(pruned) != 1 || len(pruned[0].Decisions) != 4 {
				t.Fatalf("want the stage's four decisions, also when refused: %+v", pruned)
			}
			if got := setsIn(t, root); !slices.Equal(got, tc.left) {
				t.Errorf("left %v, want %v", got, tc.left)
			}
			if tc.reason != "" {
				last := pruned[0].Decisions[3]
				if !last.Keep || !slices.Contains(last.Reasons, tc.reason) {
					t.Errorf("the incomplete set: %+v, want kept because %q", last, tc.reason)
				}
			}
		})
	}
}

func TestPruneNeedsARetainStage(t *testing.T) {
	pl := prepare(t, newRoot(t), okDump)
	_, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), true)
	var ns *engine.NoStageError
	if !errors.As(err, &ns) || ns.Kind != sdk.KindRetain || err.Error() != `pipeline "test" has no retain stage` {
		t.Fatalf("want a NoStageError for retain, got %v", err)
	}
}

// A run applies retention once its set is committed, through the same
// function as mbk prune: the new set counts as the newest.
func TestRunAppliesRetention(t *testing.T) {
	root := newRoot(t)
	old := []string{"2020-01-01_02-00-00", "2020-01-02_02-00-00"}
	makeSets(t, root, old)
	pl := prepare(t, root, `
  stage "dump" "faulty" {
    mode = "ok"
    size = 4096
  }
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_last = 1
  }`)
	res := pl.backup(t)
	set := filepath.Base(res.SetDir)
	want := []string{old[0] + " delete", old[1] + " delete", set + " keep"}
	if got := verdicts(res.Report.Retention); !slices.Equal(got, want) {
		t.Errorf("the run's retention: %v, want %v", got, want)
	}
	if got := setsIn(t, root); !slices.Equal(got, []string{set}) {
		t.Errorf("left %v, want only the new set %s", got, set)
	}
}

// A restore's safety copies are no backups: the policy never sees them (so
// keep_last = 1 still keeps the newest backup, not a copy), each is kept for
// safety_copy_days counted from the newest set, and deleted after.
func TestPruneKeepsSafetyCopies(t *testing.T) {
	root := newRoot(t)
	makeSets(t, root, []string{"2020-01-01_02-00-00", "2020-01-02_02-00-00", "2020-01-10_02-00-00"})
	for _, name := range []string{"2020-01-02_09-00-00", "2020-01-09_09-00-00", "2020-01-10_09-00-00"} {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, repo.DirMode); err != nil {
			t.Fatal(err)
		}
		if err := repo.WriteManifest(dir, &repo.Manifest{Format: 1, Pipeline: "test", Set: name, Status: repo.StatusComplete,
			Kind: repo.KindPreRestore, Restoring: "2020-01-01_02-00-00"}); err != nil {
			t.Fatal(err)
		}
	}
	pl := prepare(t, root, okDump+`
  stage "retain" "policy" {
    keep_last = 1
  }`)
	pl.p.SafetyCopyDays = 7
	pruned, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2020-01-01_02-00-00 delete",
		"2020-01-02_02-00-00 delete",
		"2020-01-10_02-00-00 keep",   // the newest backup, though two copies are newer
		"2020-01-02_09-00-00 delete", // taken more than 7 days before the newest set
		"2020-01-09_09-00-00 keep",
		"2020-01-10_09-00-00 keep",
	}
	if got := verdicts(pruned[0].Decisions); !slices.Equal(got, want) {
		t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range pruned[0].Decisions {
		if d.Set == "2020-01-09_09-00-00" && !strings.Contains(strings.Join(d.Reasons, " "), "safety copy taken before restoring 2020-01-01_02-00-00: kept until 2020-01-16_09-00-00") {
			t.Errorf("reasons for a kept copy: %q", d.Reasons)
		}
	}
	left := []string{"2020-01-09_09-00-00", "2020-01-10_02-00-00", "2020-01-10_09-00-00"}
	if got := setsIn(t, root); !slices.Equal(got, left) {
		t.Errorf("left %v, want %v", got, left)
	}
}

// TestPruneSparesTheSetADrillRestores: a drill reads its set without the
// root's lock, so retention leaves that set alone while the drill runs (and
// forgets a deleted set's drill record); once the drill is over, the set is
// judged like the others.
func TestPruneSparesTheSetADrillRestores(t *testing.T) {
	root := newRoot(t)
	makeSets(t, root, []string{"2020-01-01_02-00-00", "2020-01-02_02-00-00", "2020-01-03_02-00-00"})
	pl := prepare(t, root, okDump+`
  stage "retain" "policy" {
    keep_last = 1
  }`)
	if err := repo.WriteDrillRecord(root, sdk.DrillReport{Set: "2020-01-02_02-00-00", OK: true}); err != nil {
		t.Fatal(err)
	}
	lock, err := repo.AcquireDrill(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.WriteDrillMarker(root, repo.DrillMarker{Set: "2020-01-01_02-00-00", Label: "mbk-drill-t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if got := setsIn(t, root); !slices.Equal(got, []string{"2020-01-01_02-00-00", "2020-01-03_02-00-00"}) {
		t.Fatalf("with a drill on the oldest set: %v", got)
	}
	if r, _ := repo.ReadDrillRecord(root, "2020-01-02_02-00-00"); r != nil {
		t.Error("the deleted set's drill record stayed")
	}
	lock.Release()
	if _, err := engine.Prune(context.Background(), pl.p, pl.stages, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if got := setsIn(t, root); !slices.Equal(got, []string{"2020-01-03_02-00-00"}) {
		t.Fatalf("after the drill: %v", got)
	}
}

// at is a set's name as a time in the pipeline's timezone (prepare's
// pipelines keep the default, Local), for a fake clock.
func at(t *testing.T, name string) time.Time {
	t.Helper()
	tm, ok := repo.ParseSetName(name, time.Local)
	if !ok {
		t.Fatalf("bad set name %q", name)
	}
	return tm
}

// daysOf names a set at 02:00 on each of days (as "2024-05-01").
func daysOf(days ...string) []string {
	var out []string
	for _, d := range days {
		out = append(out, d+"_02-00-00")
	}
	return out
}

// TestRetentionAndTheClockForward: one set made while the clock ran a year
// ahead. With a fake clock at the real date, ages count from the newest set
// that is not ahead of it: keep_days keeps the last three days, not nothing;
// the future-dated set is kept, said so, and never shown to the policy; a
// run warns of it in its log and its report.
func TestRetentionAndTheClockForward(t *testing.T) {
	root := newRoot(t)
	real := daysOf("2024-05-01", "2024-05-02", "2024-05-05", "2024-05-08", "2024-05-09", "2024-05-10")
	const ahead = "2025-06-01_02-00-00"
	makeSets(t, root, append(real, ahead))
	pl := prepare(t, root, okDump+`
  stage "retain" "policy" {
    keep_days = 3
  }`)

	t.Run("prune", func(t *testing.T) {
		pruned, err := engine.Prune(context.Background(), pl.p, pl.stages, at(t, "2024-05-10_12-00-00"), true)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"2024-05-01_02-00-00 delete", "2024-05-02_02-00-00 delete", "2024-05-05_02-00-00 delete",
			"2024-05-08_02-00-00 keep", "2024-05-09_02-00-00 keep", "2024-05-10_02-00-00 keep",
			ahead + " keep",
		}
		if got := verdicts(pruned[0].Decisions); !slices.Equal(got, want) {
			t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !slices.Equal(pruned[0].Future, []string{ahead}) {
			t.Errorf("Future = %v, want %v", pruned[0].Future, []string{ahead})
		}
		last := pruned[0].Decisions[len(pruned[0].Decisions)-1]
		if why := strings.Join(last.Reasons, "; "); !strings.Contains(why, "ahead of this machine's clock (now 2024-05-10_12-00-00)") || !strings.Contains(why, "not counted by retention") {
			t.Errorf("the future-dated set's reasons: %q", why)
		}
		for _, d := range pruned[0].Decisions {
			if d.Set == "2024-05-10_02-00-00" && !strings.Contains(strings.Join(d.Reasons, " "), "newest complete set") {
				t.Errorf("the newest real set is not the reference: %q", d.Reasons)
			}
		}
	})

	t.Run("a run", func(t *testing.T) {
		pl.engine.Now = func() time.Time { return at(t, "2024-05-11_03-00-00") }
		defer func() { pl.engine.Now = nil }()
		res := pl.backup(t)
		set := filepath.Base(res.SetDir)
		if set != "2024-05-11_03-00-00" {
			t.Fatalf("the run made %s, want a set named by the fake clock", set)
		}
		left := []string{"2024-05-09_02-00-00", "2024-05-10_02-00-00", set, ahead}
		if got := setsIn(t, root); !slices.Equal(got, left) {
			t.Errorf("left %v, want %v", got, left)
		}
		warned := strings.Join(res.Report.Warnings, "\n")
		if !strings.Contains(warned, "set "+ahead+" is dated 385 days") || !strings.Contains(warned, "timedatectl") {
			t.Errorf("the report's warnings do not name the future-dated set: %q", res.Report.Warnings)
		}
		if log := readLog(t, res.SetDir); !strings.Contains(log, "set "+ahead+" is dated") {
			t.Errorf("backup.log lacks the warning:\n%s", log)
		}
	})
}

// TestRetentionAndTheClockBackward: the clock jumped back more than a year,
// so every set made before the jump looks ahead of it. Runs at the wrong
// date delete none of them, and their own sets are the newest that count:
// the set of the night before is kept by keep_days, not deleted as "years
// older than the newest set".
func TestRetentionAndTheClockBackward(t *testing.T) {
	root := newRoot(t)
	before := daysOf("2024-05-01", "2024-05-02", "2024-05-03")
	makeSets(t, root, before)
	pl := prepare(t, root, okDump+`
  stage "retain" "policy" {
    keep_days = 7
  }`)
	var made []string
	for i, now := range []string{"2023-01-01_03-00-00", "2023-01-02_03-00-00", "2023-01-20_03-00-00"} {
		pl.engine.Now = func() time.Time { return at(t, now) }
		res := pl.backup(t)
		made = append(made, filepath.Base(res.SetDir))
		// The night after the jump keeps the night before; 18 days on,
		// keep_days lets both go. Every set from before the jump stays.
		want := append([]string{now}, before...)
		if i == 1 {
			want = append(made[:2:2], before...)
		}
		if got := setsIn(t, root); !slices.Equal(got, want) {
			t.Errorf("run at %s: left %v, want %v", now, got, want)
		}
		for _, d := range res.Report.Retention {
			if slices.Contains(before, d.Set) && (!d.Keep || !strings.Contains(strings.Join(d.Reasons, " "), "ahead of this machine's clock")) {
				t.Errorf("run at %s: a set made before the jump: %+v", now, d)
			}
		}
		if len(res.Report.Warnings) != len(before) {
			t.Errorf("run at %s: want a warning per set ahead of the clock, got %q", now, res.Report.Warnings)
		}
	}
	pl.engine.Now = nil

	t.Run("mbk prune with every set ahead of the clock keeps them all", func(t *testing.T) {
		pruned, err := engine.Prune(context.Background(), pl.p, pl.stages, at(t, "2020-01-01_00-00-00"), false)
		if err != nil {
			t.Fatal(err)
		}
		ds := pruned[0].Decisions
		if len(ds) != 4 || len(pruned[0].Deleted) != 0 || len(pruned[0].Future) != 4 {
			t.Fatalf("want four sets kept as future-dated: %+v", pruned[0])
		}
		for _, d := range ds {
			if !d.Keep || !strings.Contains(strings.Join(d.Reasons, " "), "ahead of this machine's clock") {
				t.Errorf("%+v", d)
			}
		}
	})

	t.Run("the set just made and the newest that counts are never deleted", func(t *testing.T) {
		liar := prepare(t, root, okDump+`
  stage "retain" "faulty" {
    mode = "delete-all"
  }`)
		liar.engine.Now = func() time.Time { return at(t, "2023-01-21_03-00-00") }
		res := liar.engine.Run(context.Background(), liar.p, liar.stages)
		if res.ExitCode() != engine.ExitCommitted || !strings.Contains(fmt.Sprint(res.Later), "refusing the policy's verdict") {
			t.Fatalf("want the verdict refused, exit 3: %d %v %v", res.ExitCode(), res.Err, res.Later)
		}
		if got := setsIn(t, root); !slices.Equal(got, append([]string{made[2], filepath.Base(res.SetDir)}, before...)) {
			t.Errorf("left %v", got)
		}
	})
}

// readLog returns a set's backup.log.
func readLog(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, repo.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPickDrillSet: newest, oldest or random among complete backups, never a
// safety copy, an incomplete set or one dated ahead of the clock.
func TestPickDrillSet(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.Local)
	set := func(name string, complete bool, kind string) repo.Set {
		tm, _ := repo.ParseSetName(name, time.Local)
		return repo.Set{Name: name, Time: tm, Complete: complete, Manifest: &repo.Manifest{Kind: kind}}
	}
	sets := []repo.Set{
		set("2026-11-30_02-00-00", false, ""),
		set("2026-12-01_02-00-00", true, ""),
		set("2026-12-02_02-00-00", true, ""),
		set("2026-12-02_09-00-00", true, repo.KindPreRestore),
		set("2026-12-03_02-00-00", false, ""),
		set("2027-06-01_02-00-00", true, ""),
	}
	for which, want := range map[string]string{"newest": "2026-12-02_02-00-00", "oldest": "2026-12-01_02-00-00"} {
		got, err := engine.PickDrillSet(sets, which, now, nil)
		if err != nil || got.Name != want {
			t.Errorf("%s: %s %v, want %s", which, got.Name, err, want)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		got, err := engine.PickDrillSet(sets, "random", now, func(n int) int {
			if n != 2 {
				t.Fatalf("random among %d sets, want 2", n)
			}
			return i
		})
		if err != nil {
			t.Fatal(err)
		}
		seen[got.Name] = true
	}
	if len(seen) != 2 {
		t.Errorf("random picked %v", seen)
	}
	if _, err := engine.PickDrillSet(sets[:1], "newest", now, nil); err == nil {
		t.Error("no complete set: want an error")
	}
}

// TestPruneSweepsAfterKeepDays: keep_days deletes the sets older than its
// window, and the sweep after it deletes the blobs only they referenced,
// keeping every blob a remaining set references (one shared with a deleted
// set, one the remaining sets alone reference).
func TestPruneSweepsAfterKeepDays(t *testing.T) {
	root := newRoot(t)
	old := daysOf("2024-05-01", "2024-05-02")
	kept := daysOf("2024-05-08", "2024-05-09", "2024-05-10")
	makeSets(t, root, append(slices.Clone(old), kept...))
	pl, err := pool.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	put := func(content string) pool.Blob {
		w, err := pl.Put(strings.NewReader(content), pool.Codec{Compression: "zstd"})
		if err != nil {
			t.Fatal(err)
		}
		return w.Blob
	}
	onlyOld, shared, onlyKept := put("a file the old sets alone had"), put("a file every set had"), put("a file uploaded since")
	refs := func(set string, blobs ...pool.Blob) {
		w, err := pool.CreateRefs(filepath.Join(root, set))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blobs {
			if err := w.Add(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range old {
		refs(s, onlyOld, shared)
	}
	for _, s := range kept {
		refs(s, shared, onlyKept)
	}
	p := prepare(t, root, okDump+`
  stage "retain" "policy" {
    keep_days = 3
  }`)
	pruned, err := engine.Prune(context.Background(), p.p, p.stages, at(t, "2024-05-10_12-00-00"), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2024-05-01_02-00-00 delete", "2024-05-02_02-00-00 delete",
		"2024-05-08_02-00-00 keep", "2024-05-09_02-00-00 keep", "2024-05-10_02-00-00 keep"}
	if got := verdicts(pruned[0].Decisions); !slices.Equal(got, want) {
		t.Fatalf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := setsIn(t, root); !slices.Equal(got, kept) {
		t.Errorf("sets left %v, want %v", got, kept)
	}
	if pl.Has(onlyOld) {
		t.Error("the blob only the deleted sets referenced was not swept")
	}
	if !pl.Has(shared) || !pl.Has(onlyKept) {
		t.Error("a blob a remaining set references was swept")
	}
}

package repo_test

import (
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
)

// fakeSet is a set as List returns it, dated by its name in UTC.
func fakeSet(t *testing.T, name string, complete bool, kind string) repo.Set {
	t.Helper()
	tm, ok := repo.ParseSetName(name, time.UTC)
	if !ok {
		t.Fatalf("bad set name %q", name)
	}
	return repo.Set{Name: name, Time: tm, Complete: complete, Manifest: &repo.Manifest{Set: name, Kind: kind}}
}

// TestLatestAndTheClock: the set a restore takes by default is the newest
// complete backup not dated more than an hour ahead of the clock, whichever
// way the clock jumped: forward (one set far ahead of the others), or back
// (every set made before the jump now lies ahead of it).
func TestLatestAndTheClock(t *testing.T) {
	at := func(s string) time.Time {
		tm, _ := repo.ParseSetName(s, time.UTC)
		return tm
	}
	tests := []struct {
		name string
		now  time.Time
		sets []repo.Set
		want string // "" for none
	}{
		{"the newest backup", at("2024-05-03_03-00-00"), []repo.Set{
			fakeSet(t, "2024-05-01_03-00-00", true, ""),
			fakeSet(t, "2024-05-02_03-00-00", true, ""),
		}, "2024-05-02_03-00-00"},
		{"an hour ahead still counts", at("2024-05-02_02-00-00"), []repo.Set{
			fakeSet(t, "2024-05-01_03-00-00", true, ""),
			fakeSet(t, "2024-05-02_03-00-00", true, ""),
		}, "2024-05-02_03-00-00"},
		{"forward: a set made while the clock ran a year ahead", at("2024-05-03_03-00-00"), []repo.Set{
			fakeSet(t, "2024-05-01_03-00-00", true, ""),
			fakeSet(t, "2024-05-02_03-00-00", true, ""),
			fakeSet(t, "2025-05-02_03-00-00", true, ""),
		}, "2024-05-02_03-00-00"},
		{"back: the clock now lies before every set but one", at("2023-01-01_03-00-00"), []repo.Set{
			fakeSet(t, "2022-12-31_03-00-00", true, ""),
			fakeSet(t, "2024-05-01_03-00-00", true, ""),
			fakeSet(t, "2024-05-02_03-00-00", true, ""),
		}, "2022-12-31_03-00-00"},
		{"back: before every set", at("2020-01-01_00-00-00"), []repo.Set{
			fakeSet(t, "2024-05-01_03-00-00", true, ""),
		}, ""},
		{"incomplete sets and safety copies are skipped", at("2024-05-03_03-00-00"), []repo.Set{
			fakeSet(t, "2024-05-01_03-00-00", true, ""),
			fakeSet(t, "2024-05-02_03-00-00", true, repo.KindPreRestore),
			fakeSet(t, "2024-05-02_04-00-00", false, ""),
		}, "2024-05-01_03-00-00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := repo.Latest(tc.sets, tc.now)
			if ok != (tc.want != "") || got.Name != tc.want {
				t.Errorf("Latest = %q, %v; want %q", got.Name, ok, tc.want)
			}
		})
	}
}

func TestFuture(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t      time.Time
		future bool
		ahead  string
	}{
		{now.Add(-24 * time.Hour), false, ""},
		{now.Add(repo.FutureSlack), false, ""},
		{now.Add(repo.FutureSlack + time.Second), true, "1 h"},
		{now.Add(5 * time.Hour), true, "5 h"},
		{now.Add(24 * time.Hour), true, "1 day"},
		{now.Add(367*24*time.Hour + 2*time.Hour), true, "367 days 2 h"},
	} {
		if got := repo.Future(tc.t, now); got != tc.future {
			t.Errorf("Future(%v) = %v, want %v", tc.t, got, tc.future)
		}
		if tc.future {
			if got := repo.Ahead(tc.t, now); got != tc.ahead {
				t.Errorf("Ahead(%v) = %q, want %q", tc.t, got, tc.ahead)
			}
		}
	}
}

package engine

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

func artifact(kind, stage string, raw int64, details map[string]any) repo.Artifact {
	a := repo.Artifact{Stage: kind, Name: stage, ArtifactID: "0", File: stage + "_2026-12-02_03-00-00.x.gz", RawSize: raw}
	if details != nil {
		a.Details, _ = json.Marshal(details)
	}
	return a
}

// TestAlarms: what raises an alarm, and the figures each one carries.
func TestAlarms(t *testing.T) {
	prev := &repo.Manifest{Set: "2026-12-01_03-00-00", Artifacts: []repo.Artifact{
		artifact("dump", "mysql", 1000, map[string]any{"tables": 400}),
		artifact("archive", "volume", 5000, map[string]any{"files": 100}),
	}}
	def := map[string]alarmLimits{"dump/mysql": {maxShrink: 0.5}, "archive/volume": {maxShrink: 0.5}}
	tests := []struct {
		name   string
		cur    []repo.Artifact
		prev   *repo.Manifest
		limits map[string]alarmLimits
		want   []string // measure:limit:now:before of each alarm
	}{
		{"as before", []repo.Artifact{artifact("dump", "mysql", 990, map[string]any{"tables": 400}), artifact("archive", "volume", 5100, map[string]any{"files": 101})}, prev, def, nil},
		{"exactly half is no alarm", []repo.Artifact{artifact("dump", "mysql", 500, map[string]any{"tables": 200})}, prev, def, nil},
		{"under half the size", []repo.Artifact{artifact("dump", "mysql", 499, map[string]any{"tables": 400})}, prev, def, []string{"size:max_shrink 50%:499:1000"}},
		{"tables dropped", []repo.Artifact{artifact("dump", "mysql", 990, map[string]any{"tables": 12})}, prev, def, []string{"tables:max_shrink 50%:12:400"}},
		{"files dropped, a tighter limit", []repo.Artifact{artifact("archive", "volume", 5000, map[string]any{"files": 85})}, prev,
			map[string]alarmLimits{"archive/volume": {maxShrink: 0.1}}, []string{"files:max_shrink 10%:85:100"}},
		{"100% raises none", []repo.Artifact{artifact("dump", "mysql", 1, map[string]any{"tables": 1})}, prev,
			map[string]alarmLimits{"dump/mysql": {maxShrink: 1}}, nil},
		{"an empty dump, always", []repo.Artifact{artifact("dump", "mysql", 300, map[string]any{"tables": 0})}, nil,
			map[string]alarmLimits{"dump/mysql": {maxShrink: 1}}, []string{"tables:empty:0:0"}},
		{"an empty archive, always", []repo.Artifact{artifact("archive", "volume", 1024, map[string]any{"files": 0})}, nil, def, []string{"files:empty:0:0"}},
		{"no bytes at all", []repo.Artifact{artifact("dump", "faulty", 0, nil)}, nil, nil, []string{"size:empty:0:0"}},
		{"below min_size, first set", []repo.Artifact{artifact("dump", "mysql", 999, nil)}, nil,
			map[string]alarmLimits{"dump/mysql": {minSize: 1000, maxShrink: 0.5}}, []string{"size:min_size 1000 B:999:0"}},
		{"another stage's artifact is not compared", []repo.Artifact{artifact("dump", "other", 1, map[string]any{"tables": 1})}, prev, def, nil},
		{"unset limits default to half", []repo.Artifact{artifact("dump", "mysql", 100, nil)}, prev, nil, []string{"size:max_shrink 50%:100:1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Alarms(&repo.Manifest{Set: "2026-12-02_03-00-00", Artifacts: tt.cur}, tt.prev, tt.limits)
			var short []string
			for _, a := range got {
				short = append(short, strings.Join([]string{a.Measure, a.Limit, strconv.FormatInt(a.Now, 10), strconv.FormatInt(a.Before, 10)}, ":"))
				if a.Message == "" || !strings.Contains(a.Message, a.File) {
					t.Errorf("message %q does not name %s", a.Message, a.File)
				}
				if a.Before > 0 && (a.Previous != tt.prev.Set || !strings.Contains(a.Message, tt.prev.Set)) {
					t.Errorf("the alarm does not name the set it compares with: %+v", a)
				}
			}
			if strings.Join(short, " ") != strings.Join(tt.want, " ") {
				t.Errorf("alarms %q, want %q", short, tt.want)
			}
		})
	}
}

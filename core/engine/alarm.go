package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/spec"
)

// alarmLimits are a dump or archive stage's size settings.
type alarmLimits struct {
	minSize   int64   // bytes before compression; 0 for none
	maxShrink float64 // fraction of the previous figure that may go
}

// countMeasures are the figures the plugins record in an artifact's details
// that the alarms compare: a database's tables (mysql), a tree's files
// (volume). Another plugin takes part by recording them under these names.
var countMeasures = []string{"tables", "files"}

// Alarms judges a new set's artifacts: an empty one (no bytes, or no table
// or file where the plugin counts them) always, one below its stage's
// min_size, and one whose size or count dropped by more than its stage's
// max_shrink from the same artifact (the same stage and artifact ID) of prev,
// the previous complete set (nil for none). limits are by stage, as
// "kind/name".
func Alarms(cur *repo.Manifest, prev *repo.Manifest, limits map[string]alarmLimits) []spec.Alarm {
	var out []spec.Alarm
	for _, a := range cur.Artifacts {
		lim, ok := limits[a.Stage+"/"+a.Name]
		if !ok {
			lim = alarmLimits{maxShrink: config.DefaultMaxShrink}
		}
		now := figures(a)
		if empty := emptyMeasure(a, now); empty != "" {
			al := spec.Alarm{Stage: a.Name, File: a.File, Measure: empty, Now: now[empty], Limit: "empty"}
			if empty == "size" {
				al.Message = fmt.Sprintf("%s is empty: 0 bytes", a.File)
			} else {
				al.Message = fmt.Sprintf("%s is empty: 0 %s", a.File, empty)
			}
			out = append(out, al)
			continue
		}
		if lim.minSize > 0 && a.RawSize < lim.minSize {
			out = append(out, spec.Alarm{Stage: a.Name, File: a.File, Measure: "size", Now: a.RawSize,
				Limit: "min_size " + humanize.IBytes(uint64(lim.minSize)),
				Message: fmt.Sprintf("%s: %s before compression, below min_size %s",
					a.File, humanize.IBytes(uint64(a.RawSize)), humanize.IBytes(uint64(lim.minSize)))})
		}
		old, found := previous(prev, a)
		if !found || lim.maxShrink >= 1 {
			continue
		}
		before := figures(old)
		for _, m := range append([]string{"size"}, countMeasures...) {
			n, ok1 := now[m]
			b, ok2 := before[m]
			if !ok1 || !ok2 || b <= 0 || float64(n) >= float64(b)*(1-lim.maxShrink) {
				continue
			}
			drop := math.Floor(100 * float64(b-n) / float64(b))
			out = append(out, spec.Alarm{Stage: a.Name, File: a.File, Measure: m, Now: n, Before: b, Previous: prev.Set,
				Limit: "max_shrink " + percent(lim.maxShrink),
				Message: fmt.Sprintf("%s: %s now, %s in set %s (%s): down %s%%, more than max_shrink %s",
					a.File, figure(m, n), figure(m, b), prev.Set, old.File, strconv.FormatFloat(drop, 'f', 0, 64), percent(lim.maxShrink))})
		}
	}
	return out
}

// alarms judges the artifacts of the set being made against the previous
// complete backup: each alarm is logged, recorded in the manifest and the
// report, and makes the run a warning once the set is committed.
func (r *run) alarms(stages []*Stage) {
	limits := map[string]alarmLimits{}
	for _, s := range stages {
		if s.Kind == spec.KindDump || s.Kind == spec.KindArchive {
			limits[s.Kind+"/"+s.Name] = alarmLimits{minSize: s.MinSize, maxShrink: s.MaxShrink}
		}
	}
	var prev *repo.Manifest
	sets, err := repo.List(r.p.Root, r.p.Location)
	if err != nil {
		r.warn(fmt.Sprintf("cannot list the sets to compare sizes with the previous one: %v", err))
	} else if s := newestBackup(sets); s != nil {
		prev = s.Manifest
	}
	for _, a := range Alarms(r.man, prev, limits) {
		r.man.Alarms = append(r.man.Alarms, a)
		r.res.Report.Alarms = append(r.res.Report.Alarms, a)
		r.warn("size alarm: " + a.Message)
		r.afterCommit = append(r.afterCommit, fmt.Errorf("size alarm: %s", a.Message))
	}
}

// figures are an artifact's measures: its raw size, and the counts its
// plugin recorded.
func figures(a repo.Artifact) map[string]int64 {
	out := map[string]int64{"size": a.RawSize}
	if len(a.Details) == 0 {
		return out
	}
	var d map[string]any
	dec := json.NewDecoder(bytes.NewReader(a.Details))
	dec.UseNumber()
	if dec.Decode(&d) != nil {
		return out
	}
	for _, m := range countMeasures {
		if n, ok := d[m].(json.Number); ok {
			if v, err := n.Int64(); err == nil {
				out[m] = v
			}
		}
	}
	return out
}

// emptyMeasure names what an artifact lacks entirely ("size" for no bytes
// at all), or returns "".
func emptyMeasure(a repo.Artifact, now map[string]int64) string {
	if a.RawSize == 0 {
		return "size"
	}
	for _, m := range countMeasures {
		if n, ok := now[m]; ok && n == 0 {
			return m
		}
	}
	return ""
}

// previous finds the artifact a made in the previous set.
func previous(prev *repo.Manifest, a repo.Artifact) (repo.Artifact, bool) {
	if prev == nil {
		return repo.Artifact{}, false
	}
	for _, o := range prev.Artifacts {
		if o.Name == a.Name && o.ArtifactID == a.ArtifactID && o.Stage == a.Stage {
			return o, true
		}
	}
	return repo.Artifact{}, false
}

func figure(measure string, n int64) string {
	if measure == "size" {
		return humanize.IBytes(uint64(n))
	}
	return humanize.Comma(n) + " " + measure
}

func percent(f float64) string {
	return strconv.FormatFloat(100*f, 'f', -1, 64) + "%"
}

// newestBackup is the newest complete set that is a backup (a restore's
// safety copy is not), or nil.
func newestBackup(sets []repo.Set) *repo.Set {
	for i := len(sets) - 1; i >= 0; i-- {
		if sets[i].Complete && !sets[i].PreRestore() {
			return &sets[i]
		}
	}
	return nil
}

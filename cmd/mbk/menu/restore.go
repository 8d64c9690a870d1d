package menu

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// chooseSet lists the pipeline's sets: its backups, newest first, then
// the safety copies restores took (pre-restore sets), marked as such. The
// cursor starts on the set mbk restore takes by default (repo.Latest), never
// on a safety copy nor on a set dated ahead of the clock: Enter alone
// restores last night's backup, not the site as it was an hour ago, nor a
// set whose date a wrong clock made. It returns the set picked (nil when
// there is none, said so, or errBack when the person went back) and every
// set read.
func (m *Menu) chooseSet(ctx context.Context, p *config.Pipeline, completeOnly bool) (*repo.Set, []repo.Set, error) {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		fmt.Printf("Cannot list the sets of %s: %v\n", p.Name, err)
		return nil, nil, nil
	}
	var backups, copies []int // indexes into sets, newest first
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if completeOnly && !s.Complete {
			continue
		}
		if s.PreRestore() {
			copies = append(copies, i)
		} else {
			backups = append(backups, i)
		}
	}
	if len(backups)+len(copies) == 0 {
		what := "no set"
		if completeOnly {
			what = "no complete set"
		}
		fmt.Printf("Pipeline %s has %s in %s.\n", p.Name, what, p.Root)
		return nil, nil, nil
	}
	now := time.Now()
	latest, hasLatest := repo.Latest(sets, now)
	var items []choice
	var picks []int
	start := -1
	for _, i := range append(backups, copies...) {
		s := sets[i]
		state := "complete, " + humanize.IBytes(uint64(s.Size()))
		if !s.Complete {
			state = "incomplete, " + humanize.IBytes(uint64(s.Size())) + " (" + s.Problem + ")"
		}
		hint := "backup · " + state
		if s.PreRestore() {
			hint = "SAFETY COPY (pre-restore): the site before set " + s.Manifest.Restoring + " was restored · " + state
		}
		if s.Future(now) {
			hint = "FUTURE: dated " + repo.Ahead(s.Time, now) + " ahead of this machine's clock · " + hint
		}
		if hasLatest && s.Name == latest.Name {
			start = len(items)
		}
		items = append(items, choice{key: fmt.Sprint(len(items) + 1), label: s.Name, hint: hint})
		picks = append(picks, i)
	}
	items = append(items, choice{key: "0", label: "Back"})
	if start < 0 {
		start = len(items) - 1 // no backup to take by default: Back is
	}
	key, err := m.ui.chooseAt(ctx, "", "Which set of "+p.Name+"?", items, start)
	if err != nil {
		return nil, nil, err
	}
	if key == "" || key == "0" {
		return nil, nil, errBack
	}
	return &sets[picks[indexOfKey(items, key)]], sets, nil
}

// restore restores a set over the site, as `mbk restore FILE SET --yes
// --clean` does, once a confirmation screen has said what will be replaced
// and what comes back, and the person has typed the pipeline's name.
func (m *Menu) restore(ctx context.Context, p *config.Pipeline) error {
	set, sets, err := m.chooseSet(ctx, p, true)
	if err != nil || set == nil {
		return err
	}
	what, err := m.ui.choose(ctx, "", "Restore what?", []choice{
		{key: "1", label: "The database and the files"},
		{key: "2", label: "Only the database"},
		{key: "3", label: "Only the files"},
		{key: "0", label: "Back"},
	})
	if err != nil {
		return err
	}
	if what == "" || what == "0" {
		return errBack
	}
	only := map[string]string{"2": engine.OnlyDB, "3": engine.OnlyFiles}[what]
	args := append([]string{"restore", p.File.Path, set.Name}, m.pipelineFlag(p)...)
	if only != "" {
		args = append(args, "--only", only)
	}
	// --clean: over the site, the database is dropped and recreated and the
	// volume emptied, so that nothing of the site as it is now is left
	// mixed in. --yes: the name was typed here, on the menu's own screen.
	args = append(args, "--yes", "--clean")

	// An unreadable marker is mbk restore's to report.
	marker, _ := repo.ReadRestoreMarker(p.Root)
	summary := restoreSummary(p, sets, *set, only, marker, time.Now())
	// Printed too, so that the scrollback keeps what was confirmed.
	fmt.Printf("\n%s\n", summary)
	typed := ""
	ok, err := m.ui.form(ctx, summary, []field{{
		title: "Type the pipeline's name (" + p.Name + ") to restore",
		desc:  "Enter restores: the menu runs  mbk " + shellQuote(args) + "\nEsc cancels: nothing is restored.",
		value: &typed,
		validate: func(s string) error {
			if strings.TrimSpace(s) != p.Name {
				return fmt.Errorf("type the pipeline's name, %s, exactly to restore; Esc cancels", p.Name)
			}
			return nil
		},
	}})
	if err != nil {
		return err
	}
	if !ok {
		fmt.Println("Nothing was restored: the site is as it was.")
		return nil
	}
	if code := m.mbk(ctx, args...); code != 0 {
		fmt.Println(bold("The restore did not complete: what mbk said above is what happened and how to settle it."))
	}
	return nil
}

// restoreSummary is the confirmation screen's text: what the restore
// replaces (the site now, as the newest backup's manifest describes it),
// what comes back (the chosen set's manifest), the set's date and age, and
// the safety copy taken first.
func restoreSummary(p *config.Pipeline, sets []repo.Set, chosen repo.Set, only string, marker *repo.RestoreMarker, now time.Time) string {
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	when := func(m *repo.Manifest) string {
		return m.Started.In(loc).Format("2006-01-02 15:04") + ", " + age(now.Sub(m.Started))
	}
	var b strings.Builder
	what := map[string]string{"": "the database and the files", engine.OnlyDB: "only the database", engine.OnlyFiles: "only the files"}[only]
	fmt.Fprintf(&b, "Restore set %s of pipeline %s over the site: %s.\n", chosen.Name, p.Name, what)
	kind := "a backup"
	if chosen.PreRestore() {
		kind = "a safety copy (pre-restore): the site before set " + chosen.Manifest.Restoring + " was restored"
	}
	fmt.Fprintf(&b, "The set was taken %s (%s).\n", when(chosen.Manifest), kind)

	restored := restoredArtifacts(chosen.Manifest, only)
	var live, since *repo.Set // the newest backup; a safety copy taken after it
	for i := len(sets) - 1; i >= 0 && live == nil; i-- {
		switch s := &sets[i]; {
		case !s.Complete, s.Future(now):
		case s.PreRestore():
			if since == nil {
				since = s
			}
		default:
			live = s
		}
	}
	b.WriteString("\nReplaced: the site as it is now")
	if live == nil {
		b.WriteString(". No backup of it describes it: its size is not known.\n")
	} else {
		fmt.Fprintf(&b, ", as the newest backup's manifest describes it (set %s,\ntaken %s; what changed since then is replaced too):\n", live.Name, when(live.Manifest))
		for _, a := range restored {
			if now, ok := sameArtifact(live.Manifest, a); ok {
				fmt.Fprintf(&b, "  %s\n", describeArtifact(now))
			} else {
				fmt.Fprintf(&b, "  %s: not in that backup\n", a.File)
			}
		}
		if since != nil {
			fmt.Fprintf(&b, "  Since that backup, set %s was restored over the site (%s):\n  the site may hold that set instead.\n", since.Manifest.Restoring, when(since.Manifest))
		}
	}
	fmt.Fprintf(&b, "Comes back: what set %s holds, as its manifest describes it:\n", chosen.Name)
	for _, a := range restored {
		fmt.Fprintf(&b, "  %s\n", describeArtifact(a))
	}

	b.WriteString("\n")
	if marker != nil {
		fmt.Fprintf(&b, "A restore of set %s is unfinished: the site may hold part of it, and a copy of that is worth\nnothing, so no new safety copy is taken.", marker.Set)
		if marker.Safety != "" {
			fmt.Fprintf(&b, " Set %s, taken before that restore, keeps the site as it was.", marker.Safety)
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(&b, "A safety copy of the site is taken first; it is kept %d days (a set of kind pre-restore in %s).\n", p.SafetyCopyDays, p.Root)
	}
	if p.Maintenance != nil {
		b.WriteString("The site is in maintenance mode, closed to its users, until the restore ends.\n")
	}
	b.WriteString("If the restore fails, mbk says how to put the site back.")
	return b.String()
}

// restoredArtifacts are the set's artifacts a restore of only (engine.OnlyDB,
// engine.OnlyFiles or "" for all) puts back, as engine.PlanRestore picks them.
func restoredArtifacts(m *repo.Manifest, only string) []repo.Artifact {
	var out []repo.Artifact
	for _, a := range m.Artifacts {
		if (only == engine.OnlyDB && a.Stage != sdk.KindDump) || (only == engine.OnlyFiles && a.Stage != sdk.KindArchive) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// sameArtifact finds in m the artifact of a's stage.
func sameArtifact(m *repo.Manifest, a repo.Artifact) (repo.Artifact, bool) {
	for _, b := range m.Artifacts {
		if b.Stage == a.Stage && b.Name == a.Name && b.ArtifactID == a.ArtifactID {
			return b, true
		}
	}
	return repo.Artifact{}, false
}

// describeArtifact says what an artifact holds, from its plugin's details:
// a database's name, data and tables (the mysql plugin), files and bytes
// (the volume plugin); for another plugin, its decompressed size.
func describeArtifact(a repo.Artifact) string {
	var d map[string]any
	_ = json.Unmarshal(a.Details, &d) // no details: the fallback below
	num := func(k string) (uint64, bool) {
		f, ok := d[k].(float64)
		return uint64(max(f, 0)), ok
	}
	if db, ok := d["database"].(string); ok {
		var parts []string
		if n, ok := num("data_bytes"); ok {
			parts = append(parts, humanize.IBytes(n)+" of data")
		}
		if n, ok := num("tables"); ok {
			parts = append(parts, fmt.Sprintf("in %d tables", n))
		}
		if n, ok := num("total_rows"); ok && len(parts) > 0 {
			parts[len(parts)-1] += ", " + humanize.Comma(int64(n)) + " rows"
		}
		if len(parts) > 0 {
			return "Database " + db + ": " + strings.Join(parts, " ")
		}
	}
	if files, ok := num("files"); ok {
		if bytes, ok := num("bytes"); ok {
			return fmt.Sprintf("Files: %s files, %s", humanize.Comma(int64(files)), humanize.IBytes(bytes))
		}
	}
	return fmt.Sprintf("%s (stage %s %q, plugin %s): %s", a.File, a.Stage, a.Name, a.Plugin, humanize.IBytes(uint64(max(a.RawSize, 0))))
}

// age says how long ago something was: "1 day 6 h ago".
func age(d time.Duration) string {
	const day = 24 * time.Hour
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < 0:
		return "in the future (check this machine's clock)"
	case d < time.Minute:
		return "less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", d/time.Minute)
	case d < day:
		if m := d % time.Hour / time.Minute; m != 0 {
			return fmt.Sprintf("%d h %d min ago", d/time.Hour, m)
		}
		return fmt.Sprintf("%d h ago", d/time.Hour)
	}
	if h := d % day / time.Hour; h != 0 {
		return fmt.Sprintf("%s %d h ago", plural(int(d/day), "day"), h)
	}
	return plural(int(d/day), "day") + " ago"
}

package menu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/i18n"
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
		fmt.Println(m.tr.T("Cannot list the sets of %s: %v", p.Name, err))
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
		msg := m.tr.T("Pipeline %s has no set in %s.", p.Name, p.Root)
		if completeOnly {
			msg = m.tr.T("Pipeline %s has no complete set in %s.", p.Name, p.Root)
		}
		fmt.Println(msg)
		return nil, nil, nil
	}
	now := time.Now()
	latest, hasLatest := repo.Latest(sets, now)
	var items []choice
	var picks []int
	start := -1
	for _, i := range append(backups, copies...) {
		s := sets[i]
		state := m.tr.T("complete, %s", m.tr.IBytes(uint64(s.Size())))
		if !s.Complete {
			state = m.tr.T("incomplete, %s (%s)", m.tr.IBytes(uint64(s.Size())), s.Problem)
		}
		hint := m.tr.T("backup · %s", state)
		if s.PreRestore() {
			hint = m.tr.T("SAFETY COPY (pre-restore): the site before set %s was restored · %s", s.Manifest.Restoring, state)
		}
		if s.Future(now) {
			hint = m.tr.T("FUTURE: dated %s ahead of this machine's clock · %s", repo.Ahead(s.Time, now), hint)
		}
		if hasLatest && s.Name == latest.Name {
			start = len(items)
		}
		items = append(items, choice{key: fmt.Sprint(len(items) + 1), label: s.Name, hint: hint})
		picks = append(picks, i)
	}
	items = append(items, choice{key: "0", label: m.tr.T("Back")})
	if start < 0 {
		start = len(items) - 1 // no backup to take by default: Back is
	}
	key, err := m.ui.chooseAt(ctx, "", m.tr.T("Which set of %s?", p.Name), items, start)
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
	what, err := m.ui.choose(ctx, "", m.tr.T("Restore what?"), []choice{
		{key: "1", label: m.tr.T("The database and the files")},
		{key: "2", label: m.tr.T("Only the database")},
		{key: "3", label: m.tr.T("Only the files")},
		{key: "0", label: m.tr.T("Back")},
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
	summary := restoreSummary(m.tr, p, sets, *set, only, marker, time.Now())
	// Printed too, so that the scrollback keeps what was confirmed.
	fmt.Printf("\n%s\n", summary)
	typed := ""
	ok, err := m.ui.form(ctx, summary, []field{{
		title: m.tr.T("Type the pipeline's name (%s) to restore", p.Name),
		desc:  m.tr.T("Enter restores: the menu runs  mbk %s\nEsc cancels: nothing is restored.", shellQuote(args)),
		value: &typed,
		validate: func(s string) error {
			if strings.TrimSpace(s) != p.Name {
				return errors.New(m.tr.T("type the pipeline's name, %s, exactly to restore; Esc cancels", p.Name))
			}
			return nil
		},
	}})
	if err != nil {
		return err
	}
	if !ok {
		fmt.Println(m.tr.T("Nothing was restored: the site is as it was."))
		return nil
	}
	if code := m.mbk(ctx, args...); code != 0 {
		fmt.Println(bold(m.tr.T("The restore did not complete: what mbk said above is what happened and how to settle it.")))
	}
	return nil
}

// restoreSummary is the confirmation screen's text: what the restore
// replaces (the site now, as the newest backup's manifest describes it),
// what comes back (the chosen set's manifest), the set's date and age, and
// the safety copy taken first.
func restoreSummary(tr *i18n.Printer, p *config.Pipeline, sets []repo.Set, chosen repo.Set, only string, marker *repo.RestoreMarker, now time.Time) string {
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	when := func(m *repo.Manifest) string {
		return m.Started.In(loc).Format("2006-01-02 15:04") + ", " + age(tr, now.Sub(m.Started))
	}
	var b strings.Builder
	what := map[string]string{"": tr.T("the database and the files"), engine.OnlyDB: tr.T("only the database"), engine.OnlyFiles: tr.T("only the files")}[only]
	b.WriteString(tr.T("Restore set %s of pipeline %s over the site: %s.", chosen.Name, p.Name, what) + "\n")
	kind := tr.T("a backup")
	if chosen.PreRestore() {
		kind = tr.T("a safety copy (pre-restore): the site before set %s was restored", chosen.Manifest.Restoring)
	}
	b.WriteString(tr.T("The set was taken %s (%s).", when(chosen.Manifest), kind) + "\n")

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
	if live == nil {
		b.WriteString("\n" + tr.T("Replaced: the site as it is now. No backup of it describes it: its size is not known.") + "\n")
	} else {
		b.WriteString("\n" + tr.T("Replaced: the site as it is now, as the newest backup's manifest describes it (set %s,\ntaken %s; what changed since then is replaced too):", live.Name, when(live.Manifest)) + "\n")
		for _, a := range restored {
			if now, ok := sameArtifact(live.Manifest, a); ok {
				fmt.Fprintf(&b, "  %s\n", describeArtifact(tr, now))
			} else {
				fmt.Fprintf(&b, "  %s\n", tr.T("%s: not in that backup", a.File))
			}
		}
		if since != nil {
			b.WriteString(tr.T("  Since that backup, set %s was restored over the site (%s):\n  the site may hold that set instead.", since.Manifest.Restoring, when(since.Manifest)) + "\n")
		}
	}
	b.WriteString(tr.T("Comes back: what set %s holds, as its manifest describes it:", chosen.Name) + "\n")
	for _, a := range restored {
		fmt.Fprintf(&b, "  %s\n", describeArtifact(tr, a))
	}

	b.WriteString("\n")
	if marker != nil {
		b.WriteString(tr.T("A restore of set %s is unfinished: the site may hold part of it, and a copy of that is worth\nnothing, so no new safety copy is taken.", marker.Set))
		if marker.Safety != "" {
			b.WriteString(" " + tr.T("Set %s, taken before that restore, keeps the site as it was.", marker.Safety))
		}
		b.WriteString("\n")
	} else {
		b.WriteString(tr.T("A safety copy of the site is taken first; it is kept %d days (a set of kind pre-restore in %s).", p.SafetyCopyDays, p.Root) + "\n")
	}
	if p.Maintenance != nil {
		b.WriteString(tr.T("The site is in maintenance mode, closed to its users, until the restore ends.") + "\n")
	}
	b.WriteString(tr.T("If the restore fails, mbk says how to put the site back."))
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
func describeArtifact(tr *i18n.Printer, a repo.Artifact) string {
	var d map[string]any
	_ = json.Unmarshal(a.Details, &d) // no details: the fallback below
	num := func(k string) (uint64, bool) {
		f, ok := d[k].(float64)
		return uint64(max(f, 0)), ok
	}
	if db, ok := d["database"].(string); ok {
		var parts []string
		if n, ok := num("data_bytes"); ok {
			parts = append(parts, tr.T("%s of data", tr.IBytes(n)))
		}
		if n, ok := num("tables"); ok {
			parts = append(parts, tr.T("in %d tables", n))
		}
		if n, ok := num("total_rows"); ok && len(parts) > 0 {
			parts[len(parts)-1] += ", " + tr.T("%d rows", n)
		}
		if len(parts) > 0 {
			return tr.T("Database %s: %s", db, strings.Join(parts, " "))
		}
	}
	if files, ok := num("files"); ok {
		if bytes, ok := num("bytes"); ok {
			return tr.T("Files: %d files, %s", files, tr.IBytes(bytes))
		}
	}
	return tr.T("%s (stage %s %q, plugin %s): %s", a.File, a.Stage, a.Name, a.Plugin, tr.IBytes(uint64(max(a.RawSize, 0))))
}

// age says how long ago something was: "1 day 6 h ago".
func age(tr *i18n.Printer, d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < 0:
		return tr.T("in the future (check this machine's clock)")
	case d < time.Minute:
		return tr.T("less than a minute ago")
	case d < time.Hour:
		return tr.T("%d min ago", int(d/time.Minute))
	case d < day:
		if m := d % time.Hour / time.Minute; m != 0 {
			return tr.T("%d h %d min ago", int(d/time.Hour), int(m))
		}
		return tr.T("%d h ago", int(d/time.Hour))
	}
	if h := d % day / time.Hour; h != 0 {
		return tr.T("%d day(s) %d h ago", int(d/day), int(h))
	}
	return tr.T("%d day(s) ago", int(d/day))
}

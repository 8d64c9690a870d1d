package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mbk-backup/mbk/core/stream"
)

// reportCmd reads a results directory and prints, and appends to the results
// file, one dated section: medians per variant, ratios, the issues' targets.
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "", "results directory (*.json, machine.txt, dataset.txt, gobench.txt)")
	md := fs.String("md", "", "markdown file to append the section to")
	scale := fs.String("scale", "", "scale name")
	rounds := fs.Int("rounds", 0, "rounds")
	command := fs.String("command", "", "the command that produced the results")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("usage: report -dir RESULTS [-md FILE] [-scale S] [-rounds N] [-command C]")
	}
	runs, err := loadRuns(*dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	rep := &report{all: runs, runs: quietOnes(runs), w: &b, dir: *dir}
	rep.write(*scale, *rounds, *command)
	fmt.Print(b.String())
	if *md == "" {
		return nil
	}
	f, err := os.OpenFile(*md, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.WriteString(f, "\n"+b.String())
	return err
}

// loadRuns groups the results by label, and adds the two-part variants
// (database + files) summed per round.
func loadRuns(dir string) (map[string][]*Result, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.r*.json"))
	if err != nil {
		return nil, err
	}
	runs := map[string][]*Result{}
	for _, p := range paths {
		r, err := readResult(p)
		if err != nil {
			return nil, err
		}
		runs[r.Label] = append(runs[r.Label], r)
	}
	for label := range runs {
		slices.SortFunc(runs[label], func(a, b *Result) int { return a.Round - b.Round })
	}
	for sum, parts := range map[string][2]string{
		"floor":         {"floor-db", "floor-files"},
		"shell":         {"shell-db", "shell-files"},
		"restore-shell": {"restore-shell-db", "restore-shell-files"},
	} {
		for _, a := range runs[parts[0]] {
			for _, b := range runs[parts[1]] {
				if a.Round == b.Round {
					runs[sum] = append(runs[sum], add(sum, a, b))
				}
			}
		}
	}
	return runs, nil
}

func add(label string, a, b *Result) *Result {
	return &Result{
		Label: label, Round: a.Round, Wall: a.Wall + b.Wall, User: a.User + b.User, Sys: a.Sys + b.Sys,
		Containers: a.Containers + b.Containers, Daemons: a.Daemons + b.Daemons, Machine: a.Machine + b.Machine,
		PeakRSS: max(a.PeakRSS, b.PeakRSS), MaxSingleRSS: max(a.MaxSingleRSS, b.MaxSingleRSS),
		BytesIn: a.BytesIn + b.BytesIn, BytesOut: a.BytesOut + b.BytesOut,
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quiet says whether other tenants stayed out of a run: their CPU at most
// a tenth of the run's own, or half a second.
func quiet(x *Result) bool { return x.Machine-allCPU(x) <= max(0.5, 0.1*allCPU(x)) }

// quietOnes keeps, per label, the runs no other work disturbed; a label
// whose every run was disturbed keeps them all.
func quietOnes(runs map[string][]*Result) map[string][]*Result {
	out := map[string][]*Result{}
	for label, rs := range runs {
		for _, x := range rs {
			if quiet(x) {
				out[label] = append(out[label], x)
			}
		}
		if len(out[label]) == 0 {
			out[label] = rs
		}
	}
	return out
}

type report struct {
	all  map[string][]*Result // every run
	runs map[string][]*Result // the undisturbed ones, which the figures use
	w    *strings.Builder
	dir  string
}

func (r *report) pf(format string, a ...any) { fmt.Fprintf(r.w, format, a...) }

// med is the median of f over a label's runs.
func (r *report) med(label string, f func(*Result) float64) float64 {
	var xs []float64
	for _, x := range r.runs[label] {
		xs = append(xs, f(x))
	}
	return median(xs)
}

func wallOf(x *Result) float64  { return x.Wall }
func treeCPU(x *Result) float64 { return x.User + x.Sys }
func allCPU(x *Result) float64  { return x.User + x.Sys + x.Containers + x.Daemons }

// phase is the median duration of an mbk run's phase of one kind.
func (r *report) phase(label, kind string) float64 {
	return r.med(label, func(x *Result) float64 {
		var s float64
		for _, p := range x.Phases {
			if p.Kind == kind {
				s += p.Seconds
			}
		}
		return s
	})
}

// procCPU is the median sampled CPU of the processes whose name starts so.
func (r *report) procCPU(label, prefix string, exact bool) float64 {
	return r.med(label, func(x *Result) float64 {
		var s float64
		for name, u := range x.Procs {
			if name == prefix || !exact && strings.HasPrefix(name, prefix) {
				s += u.CPU
			}
		}
		return s
	})
}

var variants = []struct{ label, what string }{
	{"floor-db", "`docker exec DB mariadb-dump … | wc -c`"},
	{"floor-files", "`tar cf - -C /data . | wc -c` in a container"},
	{"floor", "floor, database + files"},
	{"shell-db", "`docker exec DB mariadb-dump … | gzip > f`"},
	{"shell-files", "`docker run --rm -v VOL:/data … tar czf - -C /data . > f`"},
	{"shell", "shell way, database + files"},
	{"mbk-gzip", "`mbk run`, gzip (dump, archive, checksum)"},
	{"mbk-zstd", "`mbk run`, zstd"},
	{"mbk-old-gzip", "`mbk run`, gzip, the defaults before #21 (level 1, `--hex-blob`)"},
	{"mbk-old-zstd", "`mbk run`, zstd, the defaults before #21 (level 1, `--hex-blob`)"},
	{"mbk-db-gzip", "`mbk run` of the dump stage alone, gzip"},
	{"mbk-db-zstd", "`mbk run` of the dump stage alone, zstd"},
	{"mbk-files-gzip", "`mbk run` of the archive stage alone, gzip"},
	{"mbk-files-zstd", "`mbk run` of the archive stage alone, zstd"},
	{"onepass-files-gzip", "one process: archive/tar into pgzip (level 1), no hashing (`benchtool onepass`)"},
	{"onepass-files-zstd", "one process: archive/tar into zstd's stream encoder (fastest), no hashing"},
	{"restore-shell-db", "`gunzip -c f | docker exec -i DB mariadb NEWDB`"},
	{"restore-shell-files", "`docker run -i -v NEWVOL:/data … tar xzf -` < f"},
	{"restore-shell", "shell restore, database + files"},
	{"restore-mbk", "`mbk restore` of the gzip set, both"},
	{"restore-mbk-old", "`mbk restore` of the mbk-old-gzip set, both"},
	{"drill-mbk", "`mbk drill` of the gzip set: sandboxes, restore, checks (1% sample, at least 100 blobs), teardown"},
	{"floor-walk", "`find DIR -printf '%m %U %G %T@ %s %p'` of the volume's directory on the host: the bare walk"},
	{"pool-first-zstd", "`mbk run` of the archive stage, filedir in the pool, empty root (bytes out: the files' bytes in the root)"},
	{"pool-unchanged-zstd", "the same, nothing changed since (bytes out: the files' bytes the root gained)"},
	{"pool-unchanged-engine-zstd", "the same with `read = \"engine\"`, nothing changed: a helper container walks the volume (its CPU is not in the tree's column but in others')"},
	{"pool-1pct-zstd", "the same, after 1% new files (bytes in: their raw bytes; out: the files' bytes the root gained)"},
	{"restore-files-tar", "`mbk restore` of the mbk-files-zstd set into a new volume"},
	{"restore-files-pool", "`mbk restore` of the unchanged pooled set into a new volume (fingerprint identical to the tar's)"},
}

func (r *report) write(scale string, rounds int, command string) {
	machine := readKV(filepath.Join(r.dir, "machine.txt"))
	r.pf("## %s — SCALE=%s, ROUNDS=%d, mbk %s\n\n", machine["date"], scale, rounds, machine["mbk"])
	r.pf("Command: `%s` (raw results: `%s`).\n\n", command, r.dir)
	r.kvList("Machine", machine, []string{"host_cpus", "cpu_model", "ram", "kernel", "os", "docker", "mariadb", "gzip", "tools", "go", "load_at_start", "load_at_end"})
	r.kvList("Dataset", readKV(filepath.Join(r.dir, "dataset.txt")), []string{"sql_bytes", "tables", "log_rows", "files", "file_bytes", "tar_bytes"})

	r.pf("### Medians\n\n")
	r.pf("| variant | what | runs used | wall s (min–max of all) | CPU s: tree | containers | daemons | others | peak RSS MiB | MiB in | MiB out |\n")
	r.pf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, v := range variants {
		runs := r.all[v.label]
		if len(runs) == 0 {
			continue
		}
		lo, hi := runs[0].Wall, runs[0].Wall
		for _, x := range runs {
			lo, hi = min(lo, x.Wall), max(hi, x.Wall)
		}
		r.pf("| %s | %s | %d/%d | %.2f (%.2f–%.2f) | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f |\n", v.label, cell(v.what),
			len(r.runs[v.label]), len(runs), r.med(v.label, wallOf), lo, hi, r.med(v.label, treeCPU),
			r.med(v.label, func(x *Result) float64 { return x.Containers }),
			r.med(v.label, func(x *Result) float64 { return x.Daemons }),
			r.med(v.label, func(x *Result) float64 { return max(0, x.Machine-allCPU(x)) }),
			r.med(v.label, func(x *Result) float64 { return float64(x.PeakRSS) / 1024 }),
			r.med(v.label, func(x *Result) float64 { return float64(x.BytesIn) / (1 << 20) }),
			r.med(v.label, func(x *Result) float64 { return float64(x.BytesOut) / (1 << 20) }))
	}
	r.pf("\nCPU: *tree* is the measured command and every process it waited for (mbk and its plugins; the docker CLI and gzip for the shell way); " +
		"*containers* is the benchmark's cgroup (the MariaDB server and the clients exec'd in its container, the shell way's tar containers); " +
		"*daemons* is dockerd, containerd and the shims (the Engine's archive API, exec and attach streams; the shim of a `docker run --rm` container is lost when it exits); " +
		"*others* is the rest of the machine's busy CPU meanwhile (other tenants). " +
		"Medians are over the runs used: those where other tenants took at most a tenth of the run's own CPU (or 0.5 s); when every run of a variant was disturbed, all of them. " +
		"Peak RSS is the largest sum of resident memory over the command's process tree, sampled every 50 ms from /proc; processes inside containers are not in that tree.\n\n")

	r.sizes()
	r.phases()
	r.targets()
	r.levels()
	r.gobench()
}

func (r *report) kvList(title string, kv map[string]string, keys []string) {
	if len(kv) == 0 {
		return
	}
	r.pf("%s:\n", title)
	for _, k := range keys {
		if v, ok := kv[k]; ok {
			r.pf("- %s: %s\n", k, v)
		}
	}
	r.pf("\n")
}

// phases breaks the mbk runs down with what mbk recorded itself.
func (r *report) phases() {
	r.pf("### Inside the mbk runs (medians)\n\n")
	r.pf("| run | dump s | archive s | checksum s | CPU s: mbk | plugins | plugins' share of tree CPU |\n|---|---|---|---|---|---|---|\n")
	for _, l := range []string{"mbk-gzip", "mbk-zstd", "mbk-old-gzip", "mbk-old-zstd", "restore-mbk", "restore-mbk-old"} {
		if len(r.runs[l]) == 0 {
			continue
		}
		core, plug := r.procCPU(l, "mbk", true), r.procCPU(l, "mbk-plugin-", false)
		r.pf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% |\n", l, r.phase(l, "dump"), r.phase(l, "archive"),
			r.phase(l, "checksum"), core, plug, pct(plug, core+plug))
	}
	if len(r.runs["drill-mbk"]) > 0 {
		r.pf("| drill-mbk | restore %.2f | sandboxes, checks, teardown %.2f | whole drill %.2f | %.2f | %.2f | %.0f%% |\n",
			r.phase("drill-mbk", "drill-restore"), r.phase("drill-mbk", "drill-rest"), r.med("drill-mbk", wallOf),
			r.procCPU("drill-mbk", "mbk", true), r.procCPU("drill-mbk", "mbk-plugin-", false),
			pct(r.procCPU("drill-mbk", "mbk-plugin-", false), r.procCPU("drill-mbk", "mbk", true)+r.procCPU("drill-mbk", "mbk-plugin-", false)))
	}
	r.pf("\nPhases come from the set's manifest (per-artifact duration) and, for restores, from mbk's `restore finished` log lines; " +
		"for the drill, from its own report (`mbk drill --json`: the restore, timed from the first byte to the last step, and the rest). " +
		"Plugin CPU includes reading the Docker streams, scanning the dump and re-writing the tar entries, so it bounds the plugin boundary's cost from above.\n\n")

	r.pf("| run | peak RSS MiB, sum | of which anonymous | per process: peak RSS MiB (anonymous), processes of that name |\n|---|---|---|---|\n")
	for _, l := range []string{"mbk-gzip", "mbk-zstd", "restore-mbk", "drill-mbk"} {
		runs := r.runs[l]
		if len(runs) == 0 {
			continue
		}
		// The per-process figures are from the run with the median peak.
		mid := slices.Clone(runs)
		slices.SortFunc(mid, func(a, b *Result) int { return int(a.PeakRSS - b.PeakRSS) })
		x := mid[len(mid)/2]
		names := make([]string, 0, len(x.Procs))
		for n := range x.Procs {
			names = append(names, n)
		}
		slices.Sort(names)
		var per []string
		for _, n := range names {
			u := x.Procs[n]
			per = append(per, fmt.Sprintf("%s %.1f (%.1f) ×%d", n, float64(u.PeakRSS)/1024, float64(u.PeakAnon)/1024, u.Count))
		}
		r.pf("| %s | %.1f | %.1f | %s |\n", l, float64(x.PeakRSS)/1024, float64(x.PeakAnon)/1024, strings.Join(per, "; "))
	}
	r.pf("\nProcess names are cut to 15 characters by the kernel; `mbk ×2` is mbk and the built-in sha256/policy plugin it serves from its own binary. " +
		"The non-anonymous part of RSS is file pages (the binaries' text), shared between processes of one binary and counted once per process here.\n\n")
}

func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

type target struct {
	issue, what string
	got         string
	ok          bool
	known       bool
}

func (r *report) targets() {
	w := func(l string) float64 { return r.med(l, wallOf) }
	speed := func(base, x float64) (string, bool) {
		if x == 0 || base == 0 {
			return "n/a", false
		}
		if base < x {
			return fmt.Sprintf("%.2f× slower (%.2f s vs %.2f s)", x/base, x, base), true
		}
		return fmt.Sprintf("%.2f× faster (%.2f s vs %.2f s)", base/x, x, base), true
	}
	within := func(x, floor float64) (string, bool) {
		if x == 0 || floor == 0 {
			return "n/a", false
		}
		return fmt.Sprintf("%.2f× the floor (%.2f s vs %.2f s)", x/floor, x, floor), true
	}
	// A target whose variants were not run (ONLY=files) is left out, like
	// the peak memory of a variant without runs below.
	var ts []target
	addSpeed := func(issue, what string, base, x, need float64) {
		if s, ok := speed(base, x); ok {
			ts = append(ts, target{issue, what, s, base/x >= need, true})
		}
	}
	addWithin := func(issue, what string, x, floor, limit float64) {
		if s, ok := within(x, floor); ok {
			ts = append(ts, target{issue, what, s, x/floor <= limit, true})
		}
	}
	addSpeed("#7", "whole backup, gzip: ≥ 5× faster than the shell way", w("shell"), w("mbk-gzip"), 5)
	addWithin("#7", "whole backup, zstd: within 1.3× of the floor", w("mbk-zstd"), w("floor"), 1.3)
	addSpeed("#7", "restore: no slower than the shell way", w("restore-shell"), w("restore-mbk"), 1)
	addSpeed("#7", "restore (stretch): 1.5× faster than the shell way", w("restore-shell"), w("restore-mbk"), 1.5)
	// #21: smaller sets at the same speed.
	out := func(l string) float64 {
		return r.med(l, func(x *Result) float64 { return float64(x.BytesOut) / (1 << 20) })
	}
	addSize := func(what, l string, limit float64, known bool) {
		if shell, x := out("shell"), out(l); shell > 0 && x > 0 {
			ts = append(ts, target{"#21", what, fmt.Sprintf("%.3f× the shell way's size (%.1f MiB vs %.1f MiB)", x/shell, x, shell), x/shell <= limit, known})
		}
	}
	addSize("whole backup, zstd, default levels: set ≤ 0.85× the shell way's size", "mbk-zstd", 0.85, true)
	addSpeed("#21", "whole backup, zstd, default levels: ≥ 6× faster than the shell way", w("shell"), w("mbk-zstd"), 6)
	addSize("whole backup, gzip, default levels: set no larger than the shell way's", "mbk-gzip", 1, true)
	addSpeed("#21", "restore of the default gzip set: no slower than of a set with the defaults before #21 (`mbk-old-gzip`), within 5% for noise", w("restore-mbk-old"), w("restore-mbk"), 0.95)
	addSize("for scale: zstd with the defaults before #21 (level 1, `--hex-blob`)", "mbk-old-zstd", 0, false)
	addSize("for scale: gzip with the defaults before #21 (level 1, `--hex-blob`)", "mbk-old-gzip", 0, false)
	if dump, tar, ok := r.smallest(); ok && out("shell") > 0 {
		ts = append(ts, target{"#21", "for scale: the smallest dump + tar any codec of the level table made (" + dump.Variant + ", " + tar.Variant + ")",
			fmt.Sprintf("%.3f× the shell way's size (%.1f MiB vs %.1f MiB)", mib(dump.Out+tar.Out)/out("shell"), mib(dump.Out+tar.Out), out("shell")), true, false})
	}
	for _, c := range []string{"zstd", "gzip"} {
		if s, ok := speed(w("mbk-old-"+c), w("mbk-"+c)); ok {
			ts = append(ts, target{"#21", "for scale: whole backup, " + c + ", default levels, against the defaults before #21", s, true, false})
		}
	}
	// For scale: what a drill costs beside the restore it proves.
	if dr, rs := r.phase("drill-mbk", "drill-restore"), w("restore-mbk"); dr > 0 && rs > 0 {
		ratio := func(x float64) string {
			return fmt.Sprintf("%.2f× the time of `mbk restore` (%.2f s vs %.2f s)", x/rs, x, rs)
		}
		ts = append(ts, target{"#16", "for scale: the whole drill (sandboxes, restore, checks, teardown) against `mbk restore` of the same set into new targets", ratio(w("drill-mbk")), true, false})
		ts = append(ts, target{"#16", "for scale: the drill's restore (into a fresh database container and volume) against `mbk restore`", ratio(dr), true, false})
	}
	// The paths alone: mbk runs of one stage against the shell way's and
	// the floor's separate runs, each a whole command from start to exit.
	addSpeed("#3", "dump path, gzip: ≥ 1.5× faster than `mariadb-dump | gzip`", w("shell-db"), w("mbk-db-gzip"), 1.5)
	addSpeed("#3", "dump path, zstd: ≥ 1.8× faster than `mariadb-dump | gzip`", w("shell-db"), w("mbk-db-zstd"), 1.8)
	addWithin("#3", "dump path, zstd: within 1.25× of `mariadb-dump | wc -c`", w("mbk-db-zstd"), w("floor-db"), 1.25)
	addSpeed("#4", "archive, gzip: ≥ 13× faster than `tar czf`", w("shell-files"), w("mbk-files-gzip"), 13)
	addSpeed("#4", "archive, zstd: ≥ 20× faster than `tar czf`", w("shell-files"), w("mbk-files-zstd"), 20)
	addWithin("#4", "archive, zstd: within 1.3× of `tar cf - | wc -c`", w("mbk-files-zstd"), w("floor-files"), 1.3)
	// For scale, not targets: the one-process way on the same volume.
	for _, c := range []string{"gzip", "zstd"} {
		if s, ok := speed(w("shell-files"), w("onepass-files-"+c)); ok {
			ts = append(ts, target{"#4", "for scale: the one-process way (`benchtool onepass`), " + c + ", against `tar czf`", s, true, false})
		}
		if s, ok := speed(w("onepass-files-"+c), w("mbk-files-"+c)); ok {
			ts = append(ts, target{"#4", "for scale: mbk's archive stage, " + c + ", against the one-process way", s, true, false})
		}
	}
	r.poolTargets(&ts)
	for _, l := range []string{"mbk-gzip", "mbk-zstd", "mbk-db-gzip", "mbk-db-zstd", "mbk-files-gzip", "mbk-files-zstd", "restore-mbk", "restore-mbk-old", "drill-mbk",
		"pool-first-zstd", "pool-unchanged-zstd", "pool-1pct-zstd", "restore-files-pool"} {
		// Memory does not suffer from other tenants: every run counts.
		var peaks []float64
		var most float64
		for _, x := range r.all[l] {
			peaks = append(peaks, float64(x.PeakRSS)/1024)
			most = max(most, float64(x.PeakRSS)/1024)
		}
		if len(peaks) == 0 {
			continue
		}
		ts = append(ts, target{"#3 #4 #7", "peak memory of mbk + plugins under 100 MiB: " + l,
			fmt.Sprintf("%.1f MiB median, %.1f MiB highest", median(peaks), most), most < 100, true})
	}
	for _, l := range []string{"mbk-gzip", "mbk-zstd"} {
		raw := r.med(l, func(x *Result) float64 { return float64(x.BytesIn) / (1 << 30) })
		if raw > 0 {
			ts = append(ts, target{"#7", "time per GiB of raw data (linear in size: compare scales): " + l,
				fmt.Sprintf("%.2f s/GiB", w(l)/raw), true, false})
		}
	}
	r.pf("### Targets\n\n| issue | target | measured | met |\n|---|---|---|---|\n")
	for _, t := range ts {
		verdict := "no"
		switch {
		case !t.known:
			verdict = "—"
		case t.ok:
			verdict = "yes"
		}
		r.pf("| %s | %s | %s | %s |\n", t.issue, cell(t.what), t.got, verdict)
	}
	r.pf("\nThe dump and archive paths are whole `mbk run`s of that stage alone (mbk-db-*, mbk-files-*) against the shell way's and the floor's separate runs.\n\n")
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// sizes breaks the whole sets down into their database and files parts:
// the shell way's two files, and each mbk set's dump and archive artifacts.
func (r *report) sizes() {
	stored := func(l, kind string) float64 {
		return r.med(l, func(x *Result) float64 {
			var n int64
			for _, p := range x.Phases {
				if p.Kind == kind {
					n += p.Stored
				}
			}
			return mib(n)
		})
	}
	out := func(l string) float64 { return r.med(l, func(x *Result) float64 { return mib(x.BytesOut) }) }
	shell := out("shell")
	if shell == 0 {
		return
	}
	r.pf("### Set sizes (#21)\n\n| set | database MiB | files MiB | whole MiB | × the shell way |\n|---|---|---|---|---|\n")
	r.pf("| %s | %.1f | %.1f | %.1f | 1.000 |\n", cell("shell way (`mariadb-dump | gzip`, `tar czf`)"), out("shell-db"), out("shell-files"), shell)
	for _, l := range []string{"mbk-gzip", "mbk-zstd", "mbk-old-gzip", "mbk-old-zstd"} {
		if len(r.runs[l]) == 0 {
			continue
		}
		r.pf("| %s | %.1f | %.1f | %.1f | %.3f |\n", l, stored(l, "dump"), stored(l, "archive"), out(l), out(l)/shell)
	}
	r.pf("\nmbk-gzip and mbk-zstd run with the default levels (%s); mbk-old-* as mbk did before #21 (level 1, `--hex-blob`). "+
		"The dump holds no binary columns, so `--hex-blob` changes nothing here; the level table below has the codecs alone.\n\n", defaultsText())
}

// defaultsText names the default levels as the core's table has them.
func defaultsText() string {
	var parts []string
	for _, c := range stream.Codecs() {
		if !c.TakesLevel() {
			continue
		}
		d, a := stream.DefaultLevel(c.Name, stream.DumpFormat), stream.DefaultLevel(c.Name, "tar")
		if d == a {
			parts = append(parts, fmt.Sprintf("%s %d", c.Name, d))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d for the dump, %d for the archive", c.Name, d, a))
		}
	}
	return strings.Join(parts, "; ")
}

// levelRows reads benchtool levels' results, if the run made them.
func (r *report) levelRows() []levelRow {
	b, err := os.ReadFile(filepath.Join(r.dir, "levels.json"))
	if err != nil {
		return nil
	}
	var rows []levelRow
	if json.Unmarshal(b, &rows) != nil {
		return nil
	}
	return rows
}

// smallest is the level table's smallest output for the dump and the tar.
func (r *report) smallest() (dump, tar levelRow, ok bool) {
	for _, x := range r.levelRows() {
		switch {
		case x.Input == "dump" && (dump.Out == 0 || x.Out < dump.Out):
			dump = x
		case x.Input == "tar" && (tar.Out == 0 || x.Out < tar.Out):
			tar = x
		}
	}
	return dump, tar, dump.Out > 0 && tar.Out > 0
}

// levels prints the codecs' size/speed table.
func (r *report) levels() {
	rows := r.levelRows()
	if len(rows) == 0 {
		return
	}
	ref := map[string]int64{}
	for _, x := range rows {
		if x.Variant == "gzip -6" {
			ref[x.Input] = x.Out
		}
	}
	chosen := func(x levelRow) bool {
		for _, c := range stream.Codecs() {
			format := "tar"
			if x.Input == "dump" {
				format = stream.DumpFormat
			}
			if c.TakesLevel() && x.Variant == fmt.Sprintf("mbk %s %d", c.Name, stream.DefaultLevel(c.Name, format)) {
				return true
			}
		}
		return false
	}
	r.pf("### Codecs and levels (`benchtool levels`, #21)\n\n")
	r.pf("| input | variant | MiB out | ratio | × `gzip -6` | wall s | CPU s | MB/s | |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range rows {
		vs := "—"
		if ref[x.Input] > 0 {
			vs = fmt.Sprintf("%.3f", float64(x.Out)/float64(ref[x.Input]))
		}
		mark := x.Note
		if chosen(x) {
			mark = "**default** — " + mark
		}
		r.pf("| %s | %s | %.1f | %.3f | %s | %.2f | %.2f | %.0f | %s |\n", x.Input, x.Variant, mib(x.Out), float64(x.Out)/float64(x.In),
			vs, x.Wall, x.CPU, float64(x.In)/1e6/x.Wall, cell(mark))
	}
	r.pf("\nOne pass per variant over the bench's raw dump and tar, read into memory first; `mbk …` rows are the writers a set is written with (`stream.NewWriter`), " +
		"zstd-blocks rows klauspost's single-frame stream encoder with concurrent blocks (the alternative to mbk's independent 512 KiB frames), " +
		"the others the system's tools. Sizes are exact; times are one run each on a shared machine.\n\n")
}

// gobench reports the side-channel benchmarks and what they say about the
// plugin boundary's share of a run's CPU.
func (r *report) gobench() {
	f, err := os.Open(filepath.Join(r.dir, "gobench.txt"))
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	cpu := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "Benchmark") {
			continue
		}
		lines = append(lines, l)
		fl := strings.Fields(l)
		for i := 1; i < len(fl); i++ {
			if fl[i] == "cpu-s/GB" {
				v, _ := strconv.ParseFloat(fl[i-1], 64)
				cpu[fl[0]] = v
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	r.pf("### Side channel (`go test -bench . ./core/sdk/`, core/sdk/bench_test.go)\n\n```\n%s\n```\n\n", strings.Join(lines, "\n"))
	var extra float64
	var pair string
	for name, v := range cpu {
		if base, ok := cpu[strings.Replace(name, "SideChannelBackup", "InProcessCopy", 1)]; ok && name != strings.Replace(name, "SideChannelBackup", "InProcessCopy", 1) && v-base > extra {
			extra, pair = v-base, name
		}
	}
	if pair == "" {
		return
	}
	r.pf("The boundary costs at most %.3f CPU-s per GB more than copying in one process (%s).", extra, pair)
	for _, l := range []string{"mbk-gzip", "mbk-zstd"} {
		gb := r.med(l, func(x *Result) float64 { return float64(x.BytesIn) / 1e9 })
		if gb == 0 {
			continue
		}
		r.pf(" For %s (%.2f GB raw) that is %.2f CPU-s: %.1f%% of mbk's own CPU, %.1f%% of the run's attributable CPU.",
			l, gb, extra*gb, pct(extra*gb, r.med(l, treeCPU)), pct(extra*gb, r.med(l, allCPU)))
	}
	r.pf("\n\n")
}

// cell escapes the pipes of shell commands inside a markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func readKV(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[k] = v
		}
	}
	return out
}

// poolTargets are issue #19's: the pool's archive against a whole one.
func (r *report) poolTargets(ts *[]target) {
	out := func(l string) float64 { return r.med(l, func(x *Result) float64 { return float64(x.BytesOut) }) }
	in := func(l string) float64 { return r.med(l, func(x *Result) float64 { return float64(x.BytesIn) }) }
	dirs := func(l string) float64 { return r.med(l, func(x *Result) float64 { return float64(x.DirBytes) }) }
	// The archive stage's own time (the manifest's), as the issue asks;
	// the whole runs' are in the table above.
	full, same := r.phase("mbk-files-zstd", "archive"), r.phase("pool-unchanged-zstd", "archive")
	if full > 0 && same > 0 {
		*ts = append(*ts, target{"#19", "pool, unchanged: archive stage ≤ 10% of a whole archive stage's time",
			fmt.Sprintf("%.1f%% (%.2f s vs %.2f s)", 100*same/full, same, full), same/full <= 0.10, true})
		if o, f := out("pool-unchanged-zstd"), out("mbk-files-zstd"); f > 0 {
			*ts = append(*ts, target{"#19", "pool, unchanged: bytes written ≤ 1% of a whole archive's",
				fmt.Sprintf("%.2f%% (%.1f KiB vs %.1f MiB)%s", 100*o/f, o/1024, f/(1<<20), dirNote(dirs("pool-unchanged-zstd"))), o/f <= 0.01, true})
		}
		if files := r.datasetFiles(); files > 0 {
			*ts = append(*ts, target{"#19", "for scale: pool, unchanged: files walked per second",
				fmt.Sprintf("%.0f files/s (%d files in %.2f s)", float64(files)/same, files, same), true, false})
		}
		if eng := r.phase("pool-unchanged-engine-zstd", "archive"); eng > 0 {
			*ts = append(*ts, target{"#19", "for scale: pool, unchanged, through the Engine (a helper container walks the volume) against a whole archive stage's time",
				fmt.Sprintf("%.1f%% (%.2f s); %.1f× the host's unchanged stage", 100*eng/full, eng, eng/same), true, false})
		}
		if walk := r.med("floor-walk", wallOf); walk > 0 {
			*ts = append(*ts, target{"#19", "for scale: the bare walk (`find -printf`, one process) against a whole archive stage's time",
				fmt.Sprintf("%.1f%% (%.2f s); the unchanged stage is %.1f× the bare walk", 100*walk/full, walk, same/walk), true, false})
		}
	}
	// 1% new: what the new files cost beyond an unchanged night (whose
	// writes, the set's own files and listing, are the target above),
	// against what a whole archive writes for those files alone. Against
	// their raw bytes, the figure would be their compressibility.
	i, o, same0 := in("pool-1pct-zstd"), out("pool-1pct-zstd"), out("pool-unchanged-zstd")
	ref := r.med("pool-1pct-zstd", func(x *Result) float64 { return float64(x.RefBytes) })
	if i > 0 && o > 0 && ref > 0 {
		delta := o - same0
		*ts = append(*ts, target{"#19", "pool, 1% new files: bytes written beyond an unchanged night within 10% of what a whole archive of the new files writes",
			fmt.Sprintf("%.3f× (%.2f MiB written, %.2f MiB more than unchanged; the %.2f MiB of new files make a %.2f MiB whole archive)%s",
				delta/ref, o/(1<<20), delta/(1<<20), i/(1<<20), ref/(1<<20), dirNote(dirs("pool-1pct-zstd"))), delta/ref >= 0.9 && delta/ref <= 1.1, true})
	}
	// A restore is the whole `mbk restore` command: each way checks every
	// byte it restores, the tar's before the restore phase (its sha256 of
	// the whole archive), the pool's during it (each blob's SHA-1 as it is
	// expanded), so the phases alone put the pool's check on one side only.
	if p, t := r.med("restore-files-pool", wallOf), r.med("restore-files-tar", wallOf); p > 0 && t > 0 {
		*ts = append(*ts, target{"#19", "restore of the files from the pool no slower than from the whole tar (fingerprints identical): the whole `mbk restore` command, each way checking every byte",
			fmt.Sprintf("%.2f× the tar's time (%.2f s vs %.2f s)", p/t, p, t), p <= t, true})
	}
	if t, p := r.phase("restore-files-tar", "archive"), r.phase("restore-files-pool", "archive"); t > 0 && p > 0 {
		*ts = append(*ts, target{"#19", "for scale: the restore phase alone (the pool's includes each blob's SHA-1 check; the tar's check came before it)",
			fmt.Sprintf("%.2f× (%.2f s vs %.2f s)", p/t, p, t), true, false})
	}
}

// dirNote says what new directories added to the disk usage beyond the
// files' bytes the pool's targets count.
func dirNote(b float64) string {
	if b <= 0 {
		return ""
	}
	if b < 1<<20 {
		return fmt.Sprintf("; files' bytes, and the new directories took %.1f KiB more on disk (du -sb)", b/1024)
	}
	return fmt.Sprintf("; files' bytes, and the new directories took %.2f MiB more on disk (du -sb)", b/(1<<20))
}

// datasetFiles is the dataset's number of files, from dataset.txt.
func (r *report) datasetFiles() int {
	var n int
	fmt.Sscan(readKV(filepath.Join(r.dir, "dataset.txt"))["files"], &n) // "5000 in filedir, +20 …"
	return n
}

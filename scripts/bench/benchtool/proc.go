package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat and /proc/stat times.
// It is 100 on every Linux architecture Docker runs on.
const clockTicks = 100

var pageSize = int64(os.Getpagesize())

// procStat is what one /proc/<pid>/stat read tells.
type procStat struct {
	comm     string
	ticks    int64 // utime + stime of the process (all its threads)
	children int64 // cutime + cstime: its children it has waited for
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// comm is in parentheses and may hold spaces: split after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return procStat{}, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cut, _ := strconv.ParseInt(f[13], 10, 64)
	cst, _ := strconv.ParseInt(f[14], 10, 64)
	return procStat{comm: string(b[open+1 : end]), ticks: ut + st, children: cut + cst}, true
}

// rssKiB is the resident set of a process and its anonymous part (heap,
// stacks: what is not file pages such as the binary's text), from statm.
// smaps_rollup would give PSS but costs milliseconds per read.
func rssKiB(pid int) (rss, anon int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0
	}
	res, _ := strconv.ParseInt(f[1], 10, 64)
	shared, _ := strconv.ParseInt(f[2], 10, 64)
	return res * pageSize / 1024, (res - shared) * pageSize / 1024
}

// children lists the direct children of pid. Any thread may have forked
// them, so every task's children file is read.
func children(pid int) []int {
	base := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(base, t.Name(), "children"))
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(s); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// tree lists pid and all its descendants.
func tree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children(out[i])...)
	}
	return out
}

// daemonTicks maps the Docker daemons' pids to their CPU ticks: dockerd,
// containerd and the shims move the bytes of `docker exec`, `docker run` and
// the Engine's archive API.
func daemonTicks() map[int]int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int]int64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		switch {
		case !ok:
		case st.comm == "dockerd" || st.comm == "containerd":
			// Their waited-for children count too: dockerd re-executes
			// itself to unpack archives into containers (docker-untar).
			out[pid] = st.ticks + st.children
		case strings.HasPrefix(st.comm, "containerd-shim"):
			// Not their children: those are container processes, already
			// in the containers' cgroup.
			out[pid] = st.ticks
		}
	}
	return out
}

// daemonDelta is the CPU the daemons used between two snapshots. A shim that
// exited in between (a `docker run --rm` container's) is lost: see the notes.
func daemonDelta(before, after map[int]int64) float64 {
	var d int64
	for pid, t := range after {
		d += t - before[pid]
	}
	return float64(d) / clockTicks
}

// cgroupCPU is the CPU seconds a cgroup (and every child it ever had) used:
// cgroup v1 cpuacct or v2 cpu.stat. ok is false when neither exists.
func cgroupCPU(name string) (float64, bool) {
	if name == "" {
		return 0, false
	}
	name = strings.Trim(name, "/")
	for _, p := range []string{"/sys/fs/cgroup/cpuacct/" + name + "/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/" + name + "/cpuacct.usage"} {
		if b, err := os.ReadFile(p); err == nil {
			ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return float64(ns) / 1e9, err == nil
		}
	}
	b, err := os.ReadFile("/sys/fs/cgroup/" + name + "/cpu.stat")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			return float64(us) / 1e6, err == nil
		}
	}
	return 0, false
}

// machineBusy is the busy CPU time of the whole machine (all tenants).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, s := range f[1:] {
		v, _ := strconv.ParseInt(s, 10, 64)
		// idle (4th) and iowait (5th) are not busy; guest time is already
		// inside user time.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += v
	}
	return float64(busy) / clockTicks
}

// machineTotal is the machine's total CPU time, busy or not.
func machineTotal() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var total int64
	for i, s := range strings.Fields(line)[1:] {
		if i >= 8 { // guest time is already inside user time
			break
		}
		v, _ := strconv.ParseInt(s, 10, 64)
		total += v
	}
	return float64(total) / clockTicks
}

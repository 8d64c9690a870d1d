package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Result is one measured run.
type Result struct {
	Label string  `json:"label"`
	Round int     `json:"round"`
	Start string  `json:"start"`
	Wall  float64 `json:"wall_s"`
	Exit  int     `json:"exit"`
	// CPU of the command and every descendant it waited for (getrusage of
	// children): mbk and its plugins; docker CLI, gzip for the shell way.
	User float64 `json:"cpu_user_s"`
	Sys  float64 `json:"cpu_sys_s"`
	// CPU of the benchmark's cgroup parent: the database server, the dump
	// and SQL clients exec'd in its container, the shell way's tar container.
	Containers float64 `json:"cpu_containers_s"`
	// CPU of dockerd, containerd and the shims: the Engine's archive API and
	// the exec and attach streams.
	Daemons float64 `json:"cpu_daemons_s"`
	// Machine-wide busy CPU, every tenant included.
	Machine float64 `json:"cpu_machine_s"`
	// Peak of the sampled sum of resident memory of the process tree, and
	// the largest single process (ru_maxrss).
	PeakRSS      int64   `json:"peak_rss_kib"`
	PeakAt       float64 `json:"peak_at_s"`
	PeakAnon     int64   `json:"peak_anon_kib"` // the same for anonymous memory only
	MaxSingleRSS int64   `json:"max_single_rss_kib"`
	Samples      int     `json:"samples"`
	// Per program name: sampled CPU seconds and peak resident memory.
	Procs    map[string]*ProcUse `json:"procs"`
	BytesIn  int64               `json:"bytes_in"`
	BytesOut int64               `json:"bytes_out"`
	// RefBytes, for pool-1pct: what mbk's whole archive writes for the
	// run's new files alone (the bench archives a copy of them).
	RefBytes int64 `json:"ref_bytes,omitempty"`
	// DirBytes, for the pool's runs: what the root's new directories
	// added to its disk usage (du -sb), beyond BytesOut, the files' bytes.
	DirBytes int64   `json:"dir_bytes,omitempty"`
	Phases   []Phase `json:"phases,omitempty"`
}

// ProcUse is what the sampler saw of the processes of one name.
type ProcUse struct {
	CPU      float64 `json:"cpu_s"`
	PeakRSS  int64   `json:"peak_rss_kib"`
	PeakAnon int64   `json:"peak_anon_kib"`
	Count    int     `json:"count"`
}

// Phase is one part of a run (an artifact written or restored), from mbk's
// manifest or log.
type Phase struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"` // dump | archive | checksum | ...
	Seconds float64 `json:"seconds"`
	Raw     int64   `json:"raw,omitempty"`
	Stored  int64   `json:"stored,omitempty"`
}

func measureCmd(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	out := fs.String("o", "", "result file (JSON)")
	label := fs.String("label", "", "what is measured")
	round := fs.Int("round", 0, "round number")
	cgroup := fs.String("cgroup", "", "cgroup parent of the benchmark's containers (e.g. mbkbench)")
	every := fs.Duration("interval", 50*time.Millisecond, "sampling interval")
	fs.Parse(args)
	if *out == "" || fs.NArg() == 0 {
		return errors.New("usage: measure -o FILE -label L [-round N] [-cgroup NAME] -- CMD ARGS...")
	}

	r := &Result{Label: *label, Round: *round, Procs: map[string]*ProcUse{}}
	cg0, _ := cgroupCPU(*cgroup)
	d0 := daemonTicks()
	m0 := machineBusy()
	t0 := time.Now()
	r.Start = t0.UTC().Format(time.RFC3339)

	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	s := newSampler(cmd.Process.Pid)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(*every)
		defer tick.Stop()
		for {
			s.sample(time.Since(t0))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	werr := cmd.Wait()
	r.Wall = time.Since(t0).Seconds()
	close(stop)
	wg.Wait()

	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.User = tv(ru.Utime)
		r.Sys = tv(ru.Stime)
		r.MaxSingleRSS = ru.Maxrss
	}
	r.Exit = cmd.ProcessState.ExitCode()
	if cg1, ok := cgroupCPU(*cgroup); ok {
		r.Containers = cg1 - cg0
	}
	r.Daemons = daemonDelta(d0, daemonTicks())
	r.Machine = machineBusy() - m0
	s.fill(r)
	if err := writeJSON(*out, r); err != nil {
		return err
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return werr
	}
	if r.Exit != 0 {
		fmt.Fprintf(os.Stderr, "benchtool measure: %s exited %d\n", *label, r.Exit)
		os.Exit(r.Exit)
	}
	return nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// sampler walks the process tree at every tick.
type sampler struct {
	root     int
	peak     int64
	peakAnon int64
	peakAt   time.Duration
	samples  int
	seen     map[int]*seenProc
}

type seenProc struct {
	comm     string
	ticks    int64
	peak     int64
	peakAnon int64
}

func newSampler(root int) *sampler { return &sampler{root: root, seen: map[int]*seenProc{}} }

func (s *sampler) sample(at time.Duration) {
	var sum, sumAnon int64
	for _, pid := range tree(s.root) {
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		rss, anon := rssKiB(pid)
		sum += rss
		sumAnon += anon
		p := s.seen[pid]
		if p == nil {
			p = &seenProc{}
			s.seen[pid] = p
		}
		p.comm, p.ticks = st.comm, st.ticks
		p.peak = max(p.peak, rss)
		p.peakAnon = max(p.peakAnon, anon)
	}
	s.samples++
	s.peakAnon = max(s.peakAnon, sumAnon)
	if sum > s.peak {
		s.peak, s.peakAt = sum, at
	}
}

func (s *sampler) fill(r *Result) {
	r.PeakRSS, r.PeakAt, r.PeakAnon, r.Samples = s.peak, s.peakAt.Seconds(), s.peakAnon, s.samples
	for _, p := range s.seen {
		u := r.Procs[p.comm]
		if u == nil {
			u = &ProcUse{}
			r.Procs[p.comm] = u
		}
		u.CPU += float64(p.ticks) / clockTicks
		u.PeakRSS = max(u.PeakRSS, p.peak)
		u.PeakAnon = max(u.PeakAnon, p.peakAnon)
		u.Count++
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Result{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

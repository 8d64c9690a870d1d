package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/schedule"
)

// blockJob is a job one of a pipeline's blocks schedules besides its
// backups (a drill, a verify): mbk daemon runs it on its schedule, and mbk
// cron install gives it a crontab line of its own that runs the same.
type blockJob struct {
	kind     string // schedule.KindDrill, schedule.KindVerify
	schedule string
	cron     cron.Schedule
	// args are what cron runs after the mbk binary, for the file as given.
	args []string
	run  func(ctx context.Context, out io.Writer) int
}

func (a *app) blockJobs(loader *config.Loader, p *config.Pipeline, file string) []blockJob {
	var out []blockJob
	if d := p.Drill; d != nil && d.Cron != nil {
		out = append(out, blockJob{kind: schedule.KindDrill, schedule: d.Schedule, cron: d.Cron,
			args: []string{"drill", file, "--pipeline", p.Name},
			run: func(ctx context.Context, w io.Writer) int {
				return a.drillPipeline(ctx, w, loader, p, drillOptsOf(p))
			}})
	}
	if v := p.Verify; v != nil && v.Cron != nil {
		out = append(out, blockJob{kind: schedule.KindVerify, schedule: v.Schedule, cron: v.Cron,
			args: []string{"verify", file, "--pipeline", p.Name, "--scheduled"},
			run:  func(ctx context.Context, w io.Writer) int { return a.scheduledVerify(ctx, w, loader, p) }})
	}
	return out
}

// scheduledVerify runs a pipeline's verify block: it copies to the block's
// store every complete local set the store lacks (as mbk sync does, so
// that a night whose copy failed heals itself), then downloads and
// re-hashes the block's read_subset of the store, a different part each
// time. Anything that fails reaches the notify stages as a failure. It
// returns the exit code.
func (a *app) scheduledVerify(ctx context.Context, out io.Writer, loader *config.Loader, p *config.Pipeline) int {
	v := p.Verify
	if v == nil {
		fmt.Fprintf(os.Stderr, "mbk: pipeline %q has no verify block, which --scheduled runs\n", p.Name)
		return 2
	}
	pr, err := a.preparePipeline(ctx, loader, p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mbk: %v: no verify\n", err)
		return 2
	}
	defer pr.close()
	h, stages := pr.host, pr.stages
	s, err := engine.FindStore(p, stages, v.Store)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mbk: %v\n", err)
		return 2
	}
	var failed []string
	copies, err := syncUnderLock(ctx, p, s)
	switch {
	case errors.Is(err, repo.ErrLocked):
		fmt.Fprintf(out, "%s: not copying missing sets now: %v (it copies its own set)\n", s.Name, err)
	case err != nil:
		failed = append(failed, fmt.Sprintf("copy the missing sets: %v", err))
	}
	for _, c := range copies {
		switch {
		case c.Set == "":
			failed = append(failed, fmt.Sprintf("list store %q: %v", s.Name, c.Err))
		case c.Err != nil:
			fmt.Fprintf(out, "%s:%s: copy FAILED: %s\n", s.Name, c.Set, a.redact.String(c.Err.Error()))
			failed = append(failed, fmt.Sprintf("set %s could not be copied: %v", c.Set, c.Err))
		default:
			fmt.Fprintf(out, "%s:%s: copied (it was missing)\n", s.Name, c.Set)
		}
	}
	read, err := engine.VerifyStoreSubset(ctx, s, p, v.Subset, nil, false)
	if err != nil {
		failed = append(failed, err.Error())
	} else {
		a.printSubset(out, s.Name, v.Subset, read)
		for _, vd := range read.Verdicts {
			if !vd.OK() {
				failed = append(failed, fmt.Sprintf("set %s: %s", vd.Set, verdictText(vd)))
			}
		}
	}
	if len(failed) == 0 {
		return 0
	}
	cause := a.redact.String(fmt.Sprintf("verify of store %q: %s", s.Name, strings.Join(failed, "; ")))
	fmt.Fprintf(os.Stderr, "mbk: %s\n", cause)
	e := &engine.Engine{Host: h, Log: a.log, Redact: a.redact, Version: version}
	e.NotifyFailure(ctx, p, stages, cause)
	return 1
}

// syncUnderLock copies what the store lacks while holding the root's lock,
// so that no run prunes a set while it is read. With no root there is
// nothing to copy.
func syncUnderLock(ctx context.Context, p *config.Pipeline, s *engine.Stage) ([]engine.Copied, error) {
	if _, err := os.Stat(p.Root); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	lock, err := repo.Acquire(p.Root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return engine.SyncStore(ctx, p, s)
}

// printSubset says which part of the store a verify read, and how each set
// read fared.
func (a *app) printSubset(w io.Writer, store string, sub config.Subset, r engine.SubsetRead) int {
	fmt.Fprintf(w, "%s: read %d of %d stored set(s): turn %d of the rotation, %s of the store per run\n", store, len(r.Verdicts), r.Of, r.Turn+1, sub)
	if r.Incomplete > 0 {
		fmt.Fprintf(w, "%s: %d incomplete set(s) not read (no manifest.json: an upload in progress, or one that stopped)\n", store, r.Incomplete)
	}
	return a.printVerdicts(w, store, r.Verdicts)
}

// printVerdicts writes one line per stored set verified, and a line per
// problem; it returns how many sets were bad.
func (a *app) printVerdicts(w io.Writer, store string, verdicts []engine.StoreVerdict) int {
	bad := 0
	for _, v := range verdicts {
		if v.OK() {
			fmt.Fprintf(w, "%s:%s: OK\n", store, v.Set)
			continue
		}
		bad++
		if v.Err != nil {
			fmt.Fprintf(w, "%s:%s: BAD: %s\n", store, v.Set, a.redact.String(v.Err.Error()))
		}
		for _, p := range v.Problems {
			fmt.Fprintf(w, "%s:%s: BAD: %s\n", store, v.Set, p)
		}
	}
	return bad
}

func verdictText(v engine.StoreVerdict) string {
	if v.Err != nil {
		return v.Err.Error()
	}
	var s []string
	for _, p := range v.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "; ")
}

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

// ForeignSetError says a root holds another pipeline's sets. A root is one
// pipeline's: its retention counts every set in it, the last-backup alarm
// and health read its newest, and restore takes its newest by default. Two
// pipelines sharing one (testing.hcl copied from production.hcl, root left
// as it was) would prune each other's sets and restore each other's sites.
type ForeignSetError struct {
	Root, Pipeline, Set, Other string
}

func (e *ForeignSetError) Error() string {
	return fmt.Sprintf("root %s holds set %s of pipeline %q, and a root keeps one pipeline's sets (retention, alarms and restore go by the root): give pipeline %q a root of its own, or, if %q was renamed to %q, rename it back or move its sets elsewhere",
		e.Root, e.Set, e.Other, e.Pipeline, e.Other, e.Pipeline)
}

// checkOwner fails when p's root holds a complete set another pipeline
// made.
func checkOwner(p *config.Pipeline) error {
	sets, err := repo.List(p.Root, p.Location)
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	return foreignSet(p, sets)
}

// foreignSet is checkOwner over sets already listed.
func foreignSet(p *config.Pipeline, sets []repo.Set) error {
	for _, st := range sets {
		if st.Manifest != nil && st.Manifest.Pipeline != "" && st.Manifest.Pipeline != p.Name {
			return &ForeignSetError{Root: p.Root, Pipeline: p.Name, Set: st.Name, Other: st.Manifest.Pipeline}
		}
	}
	return nil
}

// ForeignRemoteError says a store's prefix holds another pipeline's set:
// the store's retention would count it, as a root's would.
type ForeignRemoteError struct {
	Store, Pipeline, Set, Other string
}

func (e *ForeignRemoteError) Error() string {
	return fmt.Sprintf("store %q holds set %s of pipeline %q where pipeline %q keeps its copies, and its retention would count and delete that pipeline's sets: give each pipeline a prefix (s3) or path (sftp) of its own in the store",
		e.Store, e.Set, e.Other, e.Pipeline)
}

// CheckStoreOwner fails when store holds another pipeline's set, or, when
// current is this run's new set, a set of that name already: a store prefix
// keeps one pipeline's copies. Two pipelines sharing one would upload into
// each other's sets when their runs fall in the same second (Put replaces a
// file) and prune each other's copies. Run before each upload and each
// retention of the store.
func CheckStoreOwner(ctx context.Context, p *config.Pipeline, store *Stage, current string) error {
	sets, _, err := RemoteSets(ctx, store, p.Location)
	if err != nil {
		return err
	}
	if current != "" {
		for _, st := range sets {
			if st.Name == current {
				return fmt.Errorf("store %q holds a set named %s already, which this run did not upload: another pipeline or machine writes there; give each pipeline a prefix (s3) or path (sftp) of its own in the store", store.Name, current)
			}
		}
	}
	return foreignRemote(ctx, p, store, sets)
}

// manifestMax bounds the remote manifest.json foreignRemote reads.
const manifestMax = 4 << 20

// foreignRemote fails when the store holds a complete set that another
// pipeline made. A set this pipeline's root holds is its own (run and
// prune refuse a root with another's); of the others, only the store's
// manifest.json says whose they are, one small download each: the copies
// kept longer in the store than on disk.
func foreignRemote(ctx context.Context, p *config.Pipeline, store *Stage, sets []sdk.SetInfo) error {
	local, err := repo.List(p.Root, p.Location)
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	if err := foreignSet(p, local); err != nil {
		return err
	}
	ours := map[string]bool{}
	// The hosts this root's sets were made on (the machine's name may
	// have changed), and since when it keeps sets.
	me, _ := os.Hostname()
	hosts := map[string]bool{me: true}
	var since time.Time
	// This machine's id, and its first set in this root made under it
	// (when it has none yet, this run's is its first).
	myID := repo.MachineID()
	firstMine := time.Now()
	for _, st := range local {
		if st.Manifest != nil {
			ours[st.Name] = true
			hosts[st.Manifest.Host] = true
			if since.IsZero() || st.Manifest.Started.Before(since) {
				since = st.Manifest.Started
			}
			if myID != "" && st.Manifest.HostID == myID && st.Manifest.Started.Before(firstMine) {
				firstMine = st.Manifest.Started
			}
		}
	}
	for _, st := range sets {
		if !st.Complete || ours[st.Name] {
			continue
		}
		m, err := RemoteManifest(ctx, store, st.Name)
		if err != nil {
			return err
		}
		if m.Pipeline != "" && m.Pipeline != p.Name {
			return &ForeignRemoteError{Store: store.Name, Pipeline: p.Name, Set: st.Name, Other: m.Pipeline}
		}
		// This pipeline's set that this root never held, made while it
		// kept sets, on a machine none of its sets were made on: the same
		// pipeline runs elsewhere into this prefix. A machine this one
		// replaced made its sets before this root's first.
		if m.Host != "" && !hosts[m.Host] && !since.IsZero() && m.Started.After(since) {
			return &ForeignHostError{Store: store.Name, Pipeline: p.Name, Set: st.Name, Host: m.Host, Me: me, Since: since}
		}
		// Made by another machine, whatever its name, after this machine's
		// first set here: a clone of this server that kept its host name.
		// A machine this one took over from (new hardware, a VM restored
		// as a new one) made its sets before this one's first; this
		// machine's own sets that its root no longer holds (pruned, or a
		// VM rolled back to a snapshot) carry its own id.
		if myID != "" && m.HostID != "" && m.HostID != myID && m.Started.After(firstMine) {
			return &ForeignHostError{Store: store.Name, Pipeline: p.Name, Set: st.Name, Host: m.Host, Me: me, Since: firstMine, OtherMachine: true}
		}
	}
	return nil
}

// ForeignHostError says a store's prefix holds sets of this pipeline made
// on another machine meanwhile: a server cloned with its pipelines, both
// copies backing up into one prefix. Each one's retention would count the
// other's copies, and a restore from the store could take the other
// machine's site.
type ForeignHostError struct {
	Store, Pipeline, Set, Host, Me string
	Since                          time.Time
	// OtherMachine: the set's machine id is not this machine's (the host
	// names may be the same), and Since is this machine's first set.
	OtherMachine bool
}

func (e *ForeignHostError) Error() string {
	since := e.Since.UTC().Format(time.RFC3339)
	if e.OtherMachine {
		return fmt.Sprintf("store %q holds set %s of pipeline %q, made after this machine's first set in its root (%s) by another machine named %q (its machine id, from the firmware's UUID and /etc/machine-id, is not this one's; this machine is %q): a copy of this server, a cloned VM say, backs up pipeline %q into the same prefix, and each one's retention would delete the other's copies. Give the pipeline on one machine another name, or its own prefix (s3) or path (sftp) in the store. If that machine no longer backs up there, delete the sets it made there since %s",
			e.Store, e.Set, e.Pipeline, since, e.Host, e.Me, e.Pipeline, since)
	}
	return fmt.Sprintf("store %q holds set %s of pipeline %q, made on host %q after this root's first set (%s), and this machine is %q: two machines back up pipeline %q into one prefix, and each one's retention would delete the other's copies. Give the pipeline on one machine another name, or its own prefix (s3) or path (sftp) in the store. If %q no longer backs up there (a machine this one replaced), delete the sets it made there since %s",
		e.Store, e.Set, e.Pipeline, e.Host, since, e.Me, e.Pipeline, e.Host, since)
}

// RemoteManifest reads set's manifest.json from store.
func RemoteManifest(ctx context.Context, store *Stage, set string) (*repo.Manifest, error) {
	var buf bytes.Buffer
	if _, err := store.Client.Get(ctx, store.Wire, set, repo.ManifestFile, &limitedBuffer{&buf, manifestMax}); err != nil {
		return nil, fmt.Errorf("read %s/%s from store %q: %w", set, repo.ManifestFile, store.Name, err)
	}
	var m repo.Manifest
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("store %q: %s/%s is not valid: %w", store.Name, set, repo.ManifestFile, err)
	}
	return &m, nil
}

// limitedBuffer fails a write that would take it past max bytes.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		return 0, fmt.Errorf("longer than %d bytes", l.max)
	}
	return l.b.Write(p)
}

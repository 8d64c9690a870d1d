package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

var removeOp = regexp.MustCompile(`^remove name "(.*)"$`)

func harness(t *testing.T, srv *storetest.SFTP) storetest.Harness {
	return storetest.Harness{
		Storer: newPlugin(t),
		Config: stageConfig(t, srv, nil),
		Deleted: func(t *testing.T) []string {
			var out []string
			for _, op := range srv.Operations(t) {
				if m := removeOp.FindStringSubmatch(op); m != nil {
					out = append(out, strings.TrimPrefix(m[1], base(srv)+"/"))
				}
			}
			return out
		},
		Leftovers: func(t *testing.T) []string {
			var out []string
			filepath.WalkDir(base(srv), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") {
					rel, _ := filepath.Rel(base(srv), p)
					out = append(out, rel)
				}
				return nil
			})
			return out
		},
		// The client keeps at most 64 writes of 32 KiB in flight.
		MaxHeap: 16 << 20,
	}
}

var openOp = regexp.MustCompile(`^open "(.*)" flags ([A-Z,]+)`)

func TestConformance(t *testing.T) {
	srv := storetest.StartSFTP(t)
	storetest.Conformance(t, harness(t, srv))
	// Every file was written under its temporary name: a final name only
	// ever came from a rename of a finished file.
	writes := 0
	for _, op := range srv.Operations(t) {
		m := openOp.FindStringSubmatch(op)
		if m == nil || !strings.Contains(m[2], "WRITE") {
			continue
		}
		writes++
		if name := filepath.Base(m[1]); !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".part") {
			t.Errorf("the server opened %s for writing under its final name: %s", name, op)
		}
	}
	if writes == 0 {
		t.Error("the server logged no writes: the check above checked nothing")
	}
	if entries, err := os.ReadDir(base(srv)); err != nil || len(entries) > 0 {
		t.Errorf("left in the base directory after every set was deleted: %v, %v", entries, err)
	}
}

// The pool's blobs go to one of 256 directories (mbk-pool/ab/<blob>); a
// blob an earlier mbk left in mbk-pool/ itself is still listed, read and
// deleted.
func TestPoolLayout(t *testing.T) {
	srv := storetest.StartSFTP(t)
	p := newPlugin(t)
	cfg := stageConfig(t, srv, nil)
	ctx := context.Background()
	blob := "ab" + strings.Repeat("1", 38) + "-3"
	old := "cd" + strings.Repeat("2", 38) + "-3"
	if _, err := p.Put(ctx, cfg, sdk.PoolSet, blob, 3, strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base(srv), sdk.PoolSet, "ab", blob)); err != nil {
		t.Errorf("the blob is not in its directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(base(srv), sdk.PoolSet, old), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	err := p.ListFiles(ctx, cfg, sdk.PoolSet, func(f sdk.StoredFile) error {
		names = append(names, f.Name)
		return nil
	})
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{blob, old}) {
		t.Errorf("ListFiles: %q, %v; want %q", names, err, []string{blob, old})
	}
	var buf bytes.Buffer
	if err := p.Get(ctx, cfg, sdk.PoolSet, old, &buf); err != nil || buf.String() != "old" {
		t.Errorf("Get of the old blob: %q, %v", buf.String(), err)
	}
	if err := p.DeleteFiles(ctx, cfg, sdk.PoolSet, []string{old, blob}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(sdk.PoolSet, old), filepath.Join(sdk.PoolSet, "ab", blob)} {
		if _, err := os.Stat(filepath.Join(base(srv), f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was not deleted: %v", f, err)
		}
	}
}

// Calls to one server share connections: one after the other, one SFTP
// session serves them all; four at a time, four at most. A connection the
// server ended, or one left waiting too long, is not taken again.
func TestConnectionsReused(t *testing.T) {
	srv := storetest.StartSFTP(t)
	p := newPlugin(t)
	cfg := stageConfig(t, srv, nil)
	ctx := context.Background()
	sessions := func() int {
		n := 0
		for _, op := range srv.Operations(t) {
			if strings.HasPrefix(op, "session opened") {
				n++
			}
		}
		return n
	}
	const set = "2024-03-01_03-00-00"
	put := func(name string) error {
		_, err := p.Put(ctx, cfg, set, name, 1, strings.NewReader("x"))
		return err
	}
	for i := range 20 {
		if err := put(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := sessions(); n != 1 {
		t.Errorf("20 uploads one after the other opened %d SFTP sessions, want 1", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				errs <- put(fmt.Sprintf("g%d-%d", w, i))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := sessions(); n > 4 {
		t.Errorf("40 uploads four at a time opened %d SFTP sessions in all, want at most 4", n)
	}

	// Every idle connection ends (closed under the plugin, as a server or
	// a network would end it): the next call opens one.
	before := sessions()
	p.mu.Lock()
	idle := slices.Clone(p.idle[p.idle0()])
	p.mu.Unlock()
	for _, c := range idle {
		c.ssh.Close()
		for !c.dead.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	if err := put("after-close"); err != nil {
		t.Fatalf("an upload after the connections ended: %v", err)
	}
	if n := sessions(); n != before+1 {
		t.Errorf("after the connections ended, an upload opened %d sessions, want 1", n-before)
	}
	// One left waiting longer than idleFor is not taken either.
	p.mu.Lock()
	for _, c := range p.idle[p.idle0()] {
		c.idleSince = time.Now().Add(-2 * idleFor)
	}
	p.mu.Unlock()
	if err := put("after-wait"); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != before+2 {
		t.Errorf("after a long wait, an upload opened %d sessions, want 1", n-before-1)
	}
	// A cancelled call takes the one connection left and closes it: the
	// next call opens one.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Put(cctx, cfg, set, "cancelled", 1, strings.NewReader("x")); err == nil {
		t.Error("an upload whose context was cancelled succeeded")
	}
	if err := put("after-cancel"); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != before+3 {
		t.Errorf("after a cancelled call, an upload opened %d sessions, want 1", n-before-2)
	}
}

// idle0 is the settings of the only server the plugin has connections to.
func (p *plugin) idle0() settings {
	for s := range p.idle {
		return s
	}
	return settings{}
}

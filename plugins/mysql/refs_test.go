package main

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestRefsStream lists the references of a files table far larger than
// the memory the listing may take, and stops a listing midway. Not
// parallel: it measures the process's heap, which other tests would grow.
func TestRefsStream(t *testing.T) {
	const rows = 200000
	m := testenv.StartMariaDB(t)
	// Each content twice; every fifth row a directory. Rows of ~230 bytes
	// make a result of ~45 MiB.
	m.SQL(t, `CREATE DATABASE site; USE site;
CREATE TABLE m_files (id BIGINT AUTO_INCREMENT PRIMARY KEY, contenthash VARCHAR(40) NOT NULL, component VARCHAR(100) NOT NULL,
  filearea VARCHAR(50) NOT NULL, filepath VARCHAR(255) NOT NULL, filename VARCHAR(255) NOT NULL, filesize BIGINT NOT NULL, KEY (contenthash));
INSERT INTO m_files (contenthash, component, filearea, filepath, filename, filesize)
  SELECT SHA1(seq DIV 2), 'mod_resource', 'content', '/', CONCAT(REPEAT('x', 160), seq, '.pdf'), seq % 5 FROM seq_1_to_`+strconv.Itoa(rows)+`;`)
	want, err := strconv.Atoi(strings.TrimSpace(m.SQL(t, "SELECT COUNT(DISTINCT contenthash) FROM site.m_files WHERE filesize > 0;")))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := open(testContext(t), settings{Container: m.Container, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	path := t.TempDir() + "/refs"
	n, err := writeRefs(testContext(t), ss, "site", "m_", path)
	close(stop)
	sampler.Wait()
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("%d references; the heap grew by %d KiB at most", n, grew>>10)
	if n != int64(want) {
		t.Errorf("%d references, want %d", n, want)
	}
	if grew > 16<<20 {
		t.Errorf("the heap grew by %d MiB while listing: the rows are held, not streamed", grew>>20)
	}
	var prev string
	var read int64
	if err := sdk.ReadRefs(path, func(r sdk.Ref) error {
		read++
		if r.Hash <= prev {
			return errors.New("references out of order or repeated at " + r.Hash)
		}
		prev = r.Hash
		if !strings.HasPrefix(r.Label, "mod_resource/content/xxx") {
			return errors.New("label " + r.Label)
		}
		return nil
	}); err != nil || read != n {
		t.Errorf("read %d references back: %v", read, err)
	}

	// An error from the reader stops the client and comes back.
	stopHere := errors.New("enough")
	seen := 0
	start := time.Now()
	err = ss.queryEach(testContext(t), "SELECT a.id FROM site.m_files a JOIN site.m_files b LIMIT 100000000;", func([]string) error {
		if seen++; seen == 10 {
			return stopHere
		}
		return nil
	})
	if !errors.Is(err, stopHere) || seen != 10 {
		t.Errorf("queryEach after the reader's error: %v after %d rows", err, seen)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("queryEach took %s to stop", d)
	}
	if ps := strings.Join(processes(t, m.Container), "\n"); strings.Contains(ps, "--quick") {
		t.Errorf("the client still runs:\n%s", ps)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// readBackPipeline is a pipeline of the faulty plugin (no Docker) that
// copies each set over SFTP, mails failures, and has a verify block.
func readBackPipeline(root string, srv *storetest.SFTP, mail *smtptest.Server) string {
	host, port := mail.Addr()
	return fmt.Sprintf(`plugin_dir = %q

pipeline "readback" {
  root    = %q
  timeout = "2m"

  stage "dump" "faulty" {
    mode = "ok"
    size = 65536
  }
  stage "store" "sftp" {
    %s
  }
  stage "notify" "smtp" {
    on   = ["failure"]
    host = %q
    port = %d
    tls  = "none"
    auth = "none"
    from = "backups@example.com"
    to   = ["admin@example.com"]
  }
  verify {
    schedule    = "* * * * *"
    read_subset = "1/2"
  }
}
`, filepath.Join(binDir, "extra"), root, srv.Stage(filepath.Join(srv.Dir, "sets")), host, port)
}

var verdictLine = regexp.MustCompile(`(?m)^sftp:(\S+): (OK|BAD)`)

// verdicts are the sets a verify's output calls OK, and those it calls BAD.
func verdicts(out string) (ok, bad []string) {
	for _, m := range verdictLine.FindAllStringSubmatch(out, -1) {
		if m[2] == "OK" {
			ok = append(ok, m[1])
		} else if !slices.Contains(bad, m[1]) {
			bad = append(bad, m[1])
		}
	}
	return ok, bad
}

// TestReadBack: verify --store --read-subset 1/2 reads one part of the
// stored sets, the other part the next time, the first again after; the
// two parts are all the complete sets, once each (an incomplete one is
// counted, not read), and the turns are counted in the root. A verify block scheduled in mbk daemon copies back a set the store
// lost before it reads; and when the stored copies are corrupt, two
// scheduled turns report every set and each turn that found one mails a
// failure.
func TestReadBack(t *testing.T) {
	srv := storetest.StartSFTP(t)
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "readback.hcl", readBackPipeline(root, srv, mail))
	for i := 0; i < 4; i++ {
		if r := mbk(t, runOpts{}, "run", file); r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
	}
	all := sets(t, root)
	slices.Sort(all)

	t.Run("--read-subset 1/2 reads half the store per turn, all of it in two", func(t *testing.T) {
		// An upload that stopped before its manifest.json is counted, not read.
		stopped := filepath.Join(srv.Dir, "sets", "2030-01-01_00-00-00")
		if err := os.Mkdir(stopped, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, stopped, "faulty_2030-01-01_00-00-00.bin.gz", "half an upload")
		defer os.RemoveAll(stopped)
		var turns [][]string
		for i := 0; i < 3; i++ {
			v := mbk(t, runOpts{}, "verify", file, "--store", "sftp", "--read-subset", "1/2")
			ok, bad := verdicts(v.stdout)
			if v.code != 0 || len(bad) > 0 || !strings.Contains(v.stdout, fmt.Sprintf("of 4 stored set(s): turn %d of the rotation, 1/2", i+1)) ||
				!strings.Contains(v.stdout, "sftp: 1 incomplete set(s) not read") {
				t.Fatalf("turn %d: %s", i+1, v)
			}
			turns = append(turns, ok)
		}
		both := append(slices.Clone(turns[0]), turns[1]...)
		slices.Sort(both)
		if !slices.Equal(both, all) {
			t.Fatalf("turns 1 and 2 read %v and %v, want all of %v once", turns[0], turns[1], all)
		}
		if !slices.Equal(turns[2], turns[0]) {
			t.Fatalf("turn 3 read %v, want turn 1's %v again", turns[2], turns[0])
		}
		if got := strings.TrimSpace(readFile(t, filepath.Join(root, repo.VerifyDir, "sftp.count"))); got != "3" {
			t.Fatalf("the counter says %q after three turns", got)
		}
		v := mbk(t, runOpts{}, "verify", file, "--store", "sftp", "--read-subset", "2/2")
		if ok, _ := verdicts(v.stdout); v.code != 0 || len(ok) != len(all) {
			t.Fatalf("2/2 reads everything: %s", v)
		}
		if v := mbk(t, runOpts{}, "verify", file, "--store", "sftp", "--read-subset", "3/2"); v.code != 2 || !strings.Contains(v.stderr, "1 <= n <= t") {
			t.Fatalf("3/2: %s", v)
		}
	})

	t.Run("the daemon's verify copies back a set the store lost", func(t *testing.T) {
		lost := all[1]
		if err := os.RemoveAll(filepath.Join(srv.Dir, "sets", lost)); err != nil {
			t.Fatal(err)
		}
		d := startDaemon(t, file)
		d.waitLog("a scheduled verify", func(log string) bool { return strings.Contains(log, "verify finished") })
		d.signal(syscall.SIGTERM)
		if code := d.exit(); code != 0 || !strings.Contains(d.stdout.String(), "sftp:"+lost+": copied (it was missing)") ||
			!strings.Contains(d.stderr.String(), "verify finished: pipeline=readback exit=0") {
			t.Fatalf("daemon exit %d\n%s", code, d)
		}
		if n := storedSets(t, file, "sftp"); n != len(all) {
			t.Fatalf("the store holds %d sets after the verify, want %d", n, len(all))
		}
	})

	t.Run("corrupt copies: two scheduled turns report every set and mail each failure", func(t *testing.T) {
		for _, set := range all {
			art := filepath.Join(srv.Dir, "sets", set, "faulty_"+set+".bin.gz")
			b, err := os.ReadFile(art)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(art, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var reported []string
		failures := 0
		for i := 0; i < 2; i++ {
			v := mbk(t, runOpts{}, "verify", file, "--scheduled")
			_, bad := verdicts(v.stdout)
			switch {
			case len(bad) > 0 && (v.code != 1 || !strings.Contains(v.stderr, `verify of store "sftp"`)):
				t.Fatalf("a turn that found bad copies: %s", v)
			case len(bad) == 0 && v.code != 0:
				t.Fatalf("a turn that found none: %s", v)
			}
			if len(bad) > 0 {
				failures++
			}
			reported = append(reported, bad...)
		}
		slices.Sort(reported)
		if !slices.Equal(reported, all) {
			t.Fatalf("two turns reported %v, want every set once: %v", reported, all)
		}
		msgs := mail.WaitMessages(t, failures, 30*time.Second)
		n := 0
		for _, m := range msgs {
			if strings.Contains(string(m.Data), "[mbk] readback FAILED") && strings.Contains(string(m.Data), `verify of store "sftp": set `) {
				n++
			}
		}
		if n != failures {
			t.Fatalf("%d failure mails for %d failed turns: %s", n, failures, msgs[0].Data)
		}
	})
}

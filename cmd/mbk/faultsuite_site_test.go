package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// The fault suite against a real site (issue 8): mbk killed in the middle
// of the archive, a plugin killed mid-stream, a dump past its timeout, the
// database container killed during the dump and the app container removed
// during the archive. One site serves every case, to keep the suite's wall
// time down; the cases that break the site come last.

// bigRows and bigBytes make the dump and the archive last long enough to be
// hit while they stream; the tests wait for the stream to flow, never for
// a time to pass.
const (
	bigRows  = 2000000
	bigBytes = 400 << 20
)

func TestFaultSuiteSite(t *testing.T) {
	s := newSite(t)
	s.db.SQL(t, fmt.Sprintf(`USE moodle; CREATE TABLE mdl_big (id BIGINT PRIMARY KEY, a CHAR(32), b CHAR(32), c CHAR(32)) ENGINE=InnoDB;
INSERT INTO mdl_big SELECT seq, MD5(seq), MD5(seq+1), MD5(seq+2) FROM seq_1_to_%d;`, bigRows))
	// Only the cases that want a long dump include mdl_big.
	small := `extra_args = ["--ignore-table=moodle.mdl_big"]`

	t.Run("no secret in processes, output, files or e-mail; private modes", func(t *testing.T) {
		secretsAndModes(t, s, small)
	})

	if _, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", fmt.Sprintf("mkdir -p /data/bulk && head -c %d /dev/urandom > /data/bulk/blob", bigBytes)); code != 0 {
		t.Fatalf("fill /data/bulk: %s", stderr)
	}
	pipeline := func(t *testing.T, o siteOpts) (file, root string) {
		d := t.TempDir()
		o.root = filepath.Join(d, "backups")
		return writeFile(t, d, "faults.hcl", siteHCL(o)), o.root
	}
	noSet := func(t *testing.T, root string, b *bgRun) {
		t.Helper()
		if got := sets(t, root); len(got) != 0 {
			t.Errorf("a failed or killed run left what looks like a set: %v\n%s", got, b)
		}
	}

	t.Run("SIGKILL of mbk run during the archive", func(t *testing.T) {
		file, root := pipeline(t, siteOpts{db: s.db.Container, dumpExtra: small, volume: s.volume, tail: `stage "checksum" "sha256" {}`})
		b := startMbk(t, s.env(), "run", file)
		b.waitGrowing(filepath.Join(root, repo.StagingPrefix+"*", "moodledata_*"), 1<<20)
		plugins := pluginsOf(b.cmd.Process.Pid)
		tars := dockerTars()
		if len(plugins) == 0 {
			t.Fatalf("found no plugin process under mbk (pid %d)", b.cmd.Process.Pid)
		}
		b.kill()
		t.Logf("killed mbk with %d plugin processes and %d Engine tar processes running", len(plugins), len(tars))
		noSet(t, root, b)
		waitGone(t, "plugin processes", plugins)
		waitGone(t, "the Engine's tar of the volume", tars)
		waitNoneIn(t, s.db.Container, "mariadb-dump", "mysqldump")

		// The lock is free, the leftover goes and is reported, the next run
		// (without the bulk, to keep the suite short) succeeds.
		next := writeFile(t, filepath.Dir(file), "next.hcl", siteHCL(siteOpts{root: root, db: s.db.Container, dumpExtra: small,
			volume: s.volume, exclude: `["bulk", "cache"]`}))
		r := mbk(t, runOpts{env: s.env()}, "run", next)
		if r.code != 0 || !strings.Contains(r.stderr, "left by an interrupted run") {
			t.Fatalf("the next run should succeed and report the leftover: %s", r)
		}
		noLeftovers(t, root)
		if got := sets(t, root); len(got) != 1 {
			t.Fatalf("want one set after the rerun, got %v", got)
		}
	})

	// The pooled walk through the Engine runs in a helper container (an
	// imported image of the volume plugin): a killed run cannot remove
	// them, so the next one that makes a helper does.
	t.Run("SIGKILL of mbk run during a pooled walk through the Engine", func(t *testing.T) {
		big := `set -e; mkdir -p /data/filedir/tmp; head -c %d /dev/urandom >/data/filedir/tmp/f
h=$(sha1sum /data/filedir/tmp/f | cut -c1-40); d=/data/filedir/$(echo $h | cut -c1-2)/$(echo $h | cut -c3-4)
mkdir -p $d && mv /data/filedir/tmp/f $d/$h && rmdir /data/filedir/tmp && echo $d/$h`
		out, stderr, code := testenv.Exec(t, s.app, nil, "sh", "-c", fmt.Sprintf(big, bigBytes))
		if code != 0 {
			t.Fatalf("put a big file in filedir: %s", stderr)
		}
		pooled := `["bulk", "cache"]`
		o := siteOpts{volume: s.volume, exclude: pooled, archExtra: "filedir = \"pool\"\n    read = \"engine\""}
		file, root := pipeline(t, o)
		b := startMbk(t, s.env(), "run", file)
		b.waitGrowing(filepath.Join(root, ".pool", ".tmp", "*"), 1<<20)
		// Only this run's helpers count: other packages' tests make
		// helpers of their own meanwhile.
		plugins := pluginsOf(b.cmd.Process.Pid)
		if n := len(helperLeft(t, plugins)); n == 0 {
			t.Fatalf("no helper container or image of this run's plugins while the walk runs\n%s", b)
		}
		// Everything at once, as a power cut would: a plugin that
		// outlives mbk removes its helpers itself.
		for _, p := range plugins {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		b.kill()
		noSet(t, root, b)
		waitGone(t, "plugin processes", plugins)
		if n := len(helperLeft(t, plugins)); n == 0 {
			t.Fatal("the killed run left no helper container or image: nothing to remove")
		}
		if _, stderr, code := testenv.Exec(t, s.app, nil, "rm", strings.TrimSpace(out)); code != 0 {
			t.Fatalf("remove the big file: %s", stderr)
		}
		// Exit 3: the site's filedir holds files whose content does not
		// match their names, a warning.
		r := mbk(t, runOpts{env: s.env()}, "run", file)
		if r.code != 0 && r.code != 3 || len(sets(t, root)) != 1 {
			t.Fatalf("the next run: %s", r)
		}
		if left := helperLeft(t, plugins); len(left) > 0 {
			t.Errorf("helper containers or images left on the Engine after the next run: %v", left)
		}
		if !strings.Contains(r.stderr, "a killed run left") {
			t.Errorf("the next run does not say it removed what the killed one left:\n%s", r.stderr)
		}
		noLeftovers(t, root)
	})

	t.Run("the app container removed during the archive", func(t *testing.T) {
		file, root := pipeline(t, siteOpts{volume: s.volume})
		b := startMbk(t, s.env(), "run", file)
		b.waitGrowing(filepath.Join(root, repo.StagingPrefix+"*", "moodledata_*"), 1<<20)
		// The Engine may hold the removal until its copy is done: remove in
		// the background, and wait for both.
		removed := make(chan error, 1)
		go func() {
			ctx, cancel := dockerCtx()
			defer cancel()
			removed <- testenv.Docker(t).ContainerRemove(ctx, s.app, container.RemoveOptions{Force: true})
		}()
		r := b.wait()
		if err := <-removed; err != nil {
			t.Fatalf("remove the app container: %v", err)
		}
		// The Engine finishes a copy in progress before it removes the
		// container, so the read may well complete: then the set must be
		// whole and verify. Otherwise the run must fail clearly and leave
		// nothing.
		switch r.code {
		case 0:
			set := sets(t, root)
			if len(set) != 1 {
				t.Fatalf("exit 0 but sets %v\n%s", set, r)
			}
			m, err := repo.ReadManifest(filepath.Join(root, set[0]))
			if err != nil || len(m.Artifacts) != 1 || m.Artifacts[0].RawSize < bigBytes {
				t.Fatalf("the set does not hold the whole volume: %v %+v", err, m)
			}
			if v := mbk(t, runOpts{}, "verify", file, set[0]); v.code != 0 {
				t.Fatalf("the set made while the container went away does not verify: %s", v)
			}
			t.Logf("the Engine finished the copy of the removed container's volume; the set is whole and verifies")
		case 1:
			for _, want := range []string{`archive "volume"`, "plugin volume", s.volume} {
				if !strings.Contains(r.stdout+r.stderr, want) {
					t.Errorf("the error does not say %q\n%s", want, r)
				}
			}
			noSet(t, root, b)
		default:
			t.Fatalf("want exit 0 with a whole set or exit 1 with none\n%s", r)
		}
		noLeftovers(t, root)
	})

	t.Run("SIGKILL of the mysql plugin mid-stream", func(t *testing.T) {
		file, root := pipeline(t, siteOpts{db: s.db.Container, tail: `stage "checksum" "sha256" {}`})
		b := startMbk(t, s.env(), "run", file)
		b.waitGrowing(filepath.Join(root, repo.StagingPrefix+"*", "moodle_*.sql.gz"), 1<<20)
		var victim proc
		for _, p := range pluginsOf(b.cmd.Process.Pid) {
			if strings.Contains(p.cmdline, "mbk-plugin-mysql") {
				victim = p
			}
		}
		if victim.pid == 0 {
			t.Fatalf("no mbk-plugin-mysql process under mbk\n%s", b)
		}
		if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		r := b.wait()
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		for _, want := range []string{`dump "mysql"`, "plugin mysql", "crashed or killed"} {
			if !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("the error does not say %q\n%s", want, r)
			}
		}
		noSet(t, root, b)
		noLeftovers(t, root)
		waitNoneIn(t, s.db.Container, "mariadb-dump", "mysqldump")
	})

	t.Run("a dump past its stage timeout is stopped, inside the container too", func(t *testing.T) {
		file, root := pipeline(t, siteOpts{db: s.db.Container, dumpExtra: `timeout = "2s"`})
		r := mbk(t, runOpts{env: s.env()}, "run", file)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		for _, want := range []string{`dump "mysql"`, "plugin mysql", "timed out"} {
			if !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("the error does not say %q\n%s", want, r)
			}
		}
		if got := sets(t, root); len(got) != 0 {
			t.Errorf("sets %v", got)
		}
		noLeftovers(t, root)
		waitGone(t, "plugin processes", ourPlugins())
		waitNoneIn(t, s.db.Container, "mariadb-dump", "mysqldump")
	})

	// Last: the site's database does not come back.
	t.Run("the database container killed during the dump", func(t *testing.T) {
		file, root := pipeline(t, siteOpts{db: s.db.Container})
		b := startMbk(t, s.env(), "run", file)
		b.waitGrowing(filepath.Join(root, repo.StagingPrefix+"*", "moodle_*.sql.gz"), 1<<20)
		ctx, cancel := dockerCtx()
		defer cancel()
		if err := testenv.Docker(t).ContainerKill(ctx, s.db.Container, "KILL"); err != nil {
			t.Fatalf("kill the database container: %v", err)
		}
		r := b.wait()
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		for _, want := range []string{`dump "mysql"`, "plugin mysql", s.db.Container} {
			if !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("the error does not say %q\n%s", want, r)
			}
		}
		noSet(t, root, b)
		noLeftovers(t, root)
		waitGone(t, "plugin processes", ourPlugins())
	})
}

// ourPlugins lists plugin processes started from this test binary's
// directory: once every mbk of a test has exited, there should be none.
func ourPlugins() []proc {
	var out []proc
	for _, p := range allProcs() {
		if p.state != 'Z' && strings.HasPrefix(p.cmdline, binDir+"/") && (strings.Contains(p.cmdline, "mbk-plugin-") || strings.Contains(p.cmdline, "__plugin")) {
			out = append(out, p)
		}
	}
	return out
}

// dockerTars lists the Engine's archive helpers (dockerd re-executes itself
// as docker-tar to read a container's files), which read the volume.
func dockerTars() []proc {
	var out []proc
	for _, p := range allProcs() {
		if strings.HasPrefix(p.cmdline, "docker-tar") && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// helperLeft lists the volume plugin's helper containers and images on
// the Engine that the processes procs made (their owner label).
func helperLeft(t *testing.T, procs []proc) []string {
	t.Helper()
	ctx, cancel := dockerCtx()
	defer cancel()
	host, _ := os.Hostname()
	var left []string
	// One query a process: the Engine ANDs label filters.
	for _, p := range procs {
		byOwner := filters.NewArgs(filters.Arg("label", fmt.Sprintf("io.mbk.helper.owner=%s/%d", host, p.pid)))
		cs, err := testenv.Docker(t).ContainerList(ctx, container.ListOptions{All: true, Filters: byOwner})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			left = append(left, "container "+strings.Join(c.Names, ","))
		}
		ims, err := testenv.Docker(t).ImageList(ctx, image.ListOptions{Filters: byOwner})
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range ims {
			left = append(left, "image "+strings.Join(im.RepoTags, ","))
		}
	}
	return left
}

package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// secretsAndModes: a full run (dump, archive, checksum, retain, e-mail)
// with a unique database and SMTP password, given through an env_file so
// that no process of mbk's has them in its environment to begin with.
// Every /proc/*/cmdline and /proc/*/environ of mbk's process tree, sampled
// every 50 ms, every line mbk prints, every file of the set (decompressed)
// and every e-mail must be free of both. The set is private: files 0600,
// directories 0700.
func secretsAndModes(t *testing.T, s *site, dumpExtra string) {
	dbPassword := "db-" + testenv.UniqueName(t, "Secr3t")
	smtpPassword := "smtp-" + testenv.UniqueName(t, "Secr3t")
	secrets := []string{dbPassword, smtpPassword}
	s.db.CreateUser(t, "moodle", "moodle", dbPassword)
	s.password = dbPassword // the later cases log in with it too

	mail := smtptest.Start(t, smtptest.Options{TLS: "starttls", Username: "backups@example.com", Password: smtpPassword, RequireAuth: true})
	host, port := mail.Addr()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	envFile := writeFile(t, dir, "secrets.env", fmt.Sprintf("MYSQL_PASSWORD=%s\nSMTP_PASSWORD=%s\n", dbPassword, smtpPassword))
	file := writeFile(t, dir, "site.hcl", siteHCL(siteOpts{root: root, envFile: envFile, db: s.db.Container, dumpExtra: dumpExtra, volume: s.volume,
		tail: fmt.Sprintf(`
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_days = 7
  }
  stage "notify" "smtp" {
    on       = ["success", "failure", "warning"]
    host     = %q
    port     = %d
    tls      = "starttls"
    ca_file  = %q
    username = "backups@example.com"
    password = env("SMTP_PASSWORD")
    from     = "Moodle Backup System <backups@example.com>"
    to       = ["admin@example.com"]
  }`, host, port, mail.CAFile())}))

	b := startMbk(t, nil, "--log-level", "trace", "run", file)
	sampler := sampleProcs(b.cmd.Process.Pid, secrets)
	r := b.wait()
	sampler.stop()
	if r.code != 0 {
		t.Fatalf("the run failed: %s", r)
	}
	// The processes that hold the secrets must have been sampled: mbk, the
	// mysql plugin (the database password) and the smtp plugin (the SMTP
	// password). The built-in plugins run inside mbk's process.
	sampler.check(t, "/mbk --log-level trace run", "/mbk-plugin-mysql", "/mbk-plugin-smtp")

	places := map[string]string{"stdout": r.stdout, "stderr": r.stderr}
	for _, m := range mail.WaitMessages(t, 1, time.Minute) {
		places["an e-mail"] += string(m.Data) + decodedText(t, m.Data)
	}
	for where, text := range places {
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("a password appears in %s", where)
			}
		}
	}

	set := sets(t, root)
	if len(set) != 1 {
		t.Fatalf("want one set, got %v", set)
	}
	scanned := scanFiles(t, root, secrets, func(rel string, info fs.FileInfo) {
		switch {
		case info.IsDir() && info.Mode().Perm() != repo.DirMode:
			t.Errorf("directory %s has mode %04o, want %04o", rel, info.Mode().Perm(), repo.DirMode)
		case info.Mode().IsRegular() && info.Mode().Perm() != repo.FileMode:
			t.Errorf("file %s has mode %04o, want %04o", rel, info.Mode().Perm(), repo.FileMode)
		}
	})
	// The dump, the archive, the two info files, SHA256SUMS, backup.log,
	// manifest.json and the lock at least.
	if scanned < 8 {
		t.Errorf("scanned only %d files", scanned)
	}
}

// procSampler reads /proc/PID/cmdline and /proc/PID/environ of a running
// mbk and of every process under it every 50 ms until stopped, and records
// each that holds a secret.
type procSampler struct {
	mu      sync.Mutex
	leaks   map[string]bool
	seen    map[string]bool // command lines sampled, for the record
	samples int
	quit    chan struct{}
	done    chan struct{}
}

func sampleProcs(pid int, secrets []string) *procSampler {
	s := &procSampler{leaks: map[string]bool{}, seen: map[string]bool{}, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			self, _ := readProc(pid)
			for _, p := range append([]proc{self}, descendants(pid)...) {
				for _, f := range []string{"cmdline", "environ"} {
					data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.pid, f))
					if err != nil {
						continue
					}
					s.mu.Lock()
					s.seen[p.cmdline] = true
					for _, sec := range secrets {
						if bytes.Contains(data, []byte(sec)) {
							s.leaks[fmt.Sprintf("/proc/%d/%s (%s)", p.pid, f, strings.ReplaceAll(string(data), "\x00", " ")[:min(len(data), 120)])] = true
						}
					}
					s.mu.Unlock()
				}
			}
			s.mu.Lock()
			s.samples++
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return s
}

// stop ends the sampling once the process is gone.
func (s *procSampler) stop() {
	close(s.quit)
	<-s.done
}

// check fails the test for every process found holding a secret, and
// unless some sampled command line contains each of holders: the
// processes that hold the secrets must have been seen.
func (s *procSampler) check(t *testing.T, holders ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("sampled mbk's process tree %d times: %d distinct processes", s.samples, len(s.seen))
	for _, want := range holders {
		found := false
		for cmdline := range s.seen {
			if strings.Contains(cmdline, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("the sampler never saw %q: %v", want, s.seen)
		}
	}
	for l := range s.leaks {
		t.Errorf("a secret appears in %s", l)
	}
}

// scanFiles reads every file under dir to its end (a .gz decompressed),
// fails the test for each that holds a secret, and calls each (when not
// nil) with every file's and directory's path under dir and its info. It
// returns how many files it read.
func scanFiles(t *testing.T, dir string, secrets []string, each func(rel string, info fs.FileInfo)) int {
	t.Helper()
	scanned := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if each != nil {
			each(rel, info)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var rd io.Reader = f
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			rd = zr
		}
		found, err := streamContains(rd, secrets)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if found != "" {
			t.Errorf("a secret appears in %s", path)
		}
		scanned++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return scanned
}

// streamContains reads r to its end and returns the first of needles found,
// also across the boundaries of the reads.
func streamContains(r io.Reader, needles []string) (string, error) {
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	buf := make([]byte, 0, 1<<20+longest)
	chunk := make([]byte, 1<<20)
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for _, nd := range needles {
			if bytes.Contains(buf, []byte(nd)) {
				return nd, nil
			}
		}
		if len(buf) > longest {
			buf = append(buf[:0], buf[len(buf)-longest:]...)
		}
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
	}
}

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
	var (
		mu      sync.Mutex
		leaks   = map[string]bool{}
		samples int
		seen    = map[string]bool{} // processes sampled, for the record
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			self, _ := readProc(b.cmd.Process.Pid)
			for _, p := range append([]proc{self}, descendants(b.cmd.Process.Pid)...) {
				for _, f := range []string{"cmdline", "environ"} {
					data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.pid, f))
					if err != nil {
						continue
					}
					mu.Lock()
					seen[p.cmdline] = true
					for _, sec := range secrets {
						if bytes.Contains(data, []byte(sec)) {
							leaks[fmt.Sprintf("/proc/%d/%s (%s)", p.pid, f, strings.ReplaceAll(string(data), "\x00", " ")[:min(len(data), 120)])] = true
						}
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			samples++
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	r := b.wait()
	close(stop)
	<-sampled
	if r.code != 0 {
		t.Fatalf("the run failed: %s", r)
	}
	t.Logf("sampled mbk's process tree %d times: %d distinct processes", samples, len(seen))
	// The processes that hold the secrets must have been sampled: mbk, the
	// mysql plugin (the database password) and the smtp plugin (the SMTP
	// password). The built-in plugins run inside mbk's process.
	for _, want := range []string{"/mbk --log-level trace run", "/mbk-plugin-mysql", "/mbk-plugin-smtp"} {
		found := false
		for cmdline := range seen {
			if strings.Contains(cmdline, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("the sampler never saw %q: %v", want, seen)
		}
	}
	for l := range leaks {
		t.Errorf("a password appears in %s", l)
	}

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
	scanned := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case d.IsDir() && info.Mode().Perm() != repo.DirMode:
			t.Errorf("directory %s has mode %04o, want %04o", rel, info.Mode().Perm(), repo.DirMode)
		case info.Mode().IsRegular() && info.Mode().Perm() != repo.FileMode:
			t.Errorf("file %s has mode %04o, want %04o", rel, info.Mode().Perm(), repo.FileMode)
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
			t.Errorf("a password appears in %s", rel)
		}
		scanned++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The dump, the archive, the two info files, SHA256SUMS, backup.log,
	// manifest.json and the lock at least.
	if scanned < 8 {
		t.Errorf("scanned only %d files", scanned)
	}
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

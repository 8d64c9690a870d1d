package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

// smtpPipeline: the faulty dump (no Docker needed) and an SMTP notify stage.
func smtpPipeline(t *testing.T, mode, host string, port int, tls, caFile string) (file, root string) {
	dir := t.TempDir()
	root = filepath.Join(dir, "backups")
	file = writeFile(t, dir, "mail.hcl", fmt.Sprintf(`plugin_dir = %q

pipeline "mail" {
  root = %q

  stage "dump" "faulty" {
    mode = %q
  }
  stage "checksum" "sha256" {}
  stage "notify" "smtp" {
    on       = ["success", "failure", "warning"]
    host     = %q
    port     = %d
    tls      = %q
    ca_file  = %q
    auth     = "login"
    username = "backups@example.com"
    password = env("SMTP_PASSWORD")
    from     = "Moodle Backup System <backups@example.com>"
    to       = ["admin@example.com"]
    cc       = ["dean@example.com"]
    bcc      = ["archive@example.com"]
  }
}
`, filepath.Join(binDir, "extra"), root, mode, host, port, tls, caFile))
	return file, root
}

func TestSMTPNotifications(t *testing.T) {
	const password = "smtp pa$$ ';#ñ-9f3a"
	mail := smtptest.Start(t, smtptest.Options{TLS: "implicit", Username: "backups@example.com", Password: password, RequireAuth: true, AllowLogin: true})
	host, port := mail.Addr()
	env := []string{"SMTP_PASSWORD=" + password}

	noSecret := func(t *testing.T, r result, extra ...string) {
		t.Helper()
		for _, text := range append([]string{r.stdout, r.stderr}, extra...) {
			if strings.Contains(text, password) {
				t.Fatal("the SMTP password appears in the output, a log or a message")
			}
		}
	}

	t.Run("success: who, what and the checksums", func(t *testing.T) {
		file, root := smtpPipeline(t, "ok", host, port, "implicit", mail.CAFile())
		before := len(mail.Messages())
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		set := sets(t, root)[0]
		m := mail.WaitMessages(t, before+1, 30*time.Second)[before]
		body := string(m.Data) + decodedText(t, m.Data)
		if m.AuthMech != "LOGIN" || !m.TLS || m.From != "backups@example.com" {
			t.Errorf("session: auth %q tls %v from %q", m.AuthMech, m.TLS, m.From)
		}
		if strings.Join(m.Rcpt, ",") != "admin@example.com,dean@example.com,archive@example.com" {
			t.Errorf("envelope recipients: %v", m.Rcpt)
		}
		man, err := repo.ReadManifest(filepath.Join(root, set))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"From: \"Moodle Backup System\" <backups@example.com>", "Subject: [mbk] mail OK " + set, "faulty_" + set + ".bin.gz", man.Artifacts[0].SHA256, humanize.Comma(man.Artifacts[0].Size) + " bytes"} {
			if !strings.Contains(body, want) {
				t.Errorf("message lacks %q", want)
			}
		}
		if strings.Contains(body, "archive@example.com") {
			t.Error("the Bcc recipient is visible in the message")
		}
		log := readFile(t, filepath.Join(root, set, "backup.log"))
		noSecret(t, r, body, log)
	})

	t.Run("failure: the error reaches the administrator", func(t *testing.T) {
		file, _ := smtpPipeline(t, "error", host, port, "implicit", mail.CAFile())
		before := len(mail.Messages())
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		m := mail.WaitMessages(t, before+1, 30*time.Second)[before]
		body := string(m.Data) + decodedText(t, m.Data)
		if !strings.Contains(body, "Subject: [mbk] mail FAILED") || !strings.Contains(body, "disk on fire") {
			t.Errorf("failure message lacks the subject or the error:\n%s", body)
		}
		noSecret(t, r, body)
	})

	t.Run("wrong password: committed, exit 3, the refusal in backup.log", func(t *testing.T) {
		file, root := smtpPipeline(t, "ok", host, port, "implicit", mail.CAFile())
		r := mbk(t, runOpts{env: []string{"SMTP_PASSWORD=not-the-password"}}, "run", file)
		if r.code != 3 {
			t.Fatalf("want exit 3: %s", r)
		}
		set := sets(t, root)
		if len(set) != 1 {
			t.Fatalf("want the set committed, got %v", set)
		}
		log := readFile(t, filepath.Join(root, set[0], "backup.log"))
		if !strings.Contains(log, `backups@example.com\" refused: 535`) || !strings.Contains(log, fmt.Sprintf("%s:%d", host, port)) {
			t.Errorf("backup.log does not name the server and the refused login:\n%s", log)
		}
		if strings.Contains(log, "not-the-password") {
			t.Error("the wrong password is in backup.log")
		}
	})

	t.Run("server down: committed, exit 3", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadPort := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		file, root := smtpPipeline(t, "ok", "127.0.0.1", deadPort, "implicit", mail.CAFile())
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 3 || len(sets(t, root)) != 1 {
			t.Fatalf("want exit 3 with the set kept: %s", r)
		}
	})

	t.Run("mbk notify test", func(t *testing.T) {
		file, _ := smtpPipeline(t, "ok", host, port, "implicit", mail.CAFile())
		before := len(mail.Messages())
		r := mbk(t, runOpts{env: env}, "notify", "test", file)
		if r.code != 0 || !strings.Contains(r.stdout, `notify "smtp": ok: sent to 3 recipients`) {
			t.Fatalf("notify test: %s", r)
		}
		m := mail.WaitMessages(t, before+1, 30*time.Second)[before]
		if !strings.Contains(string(m.Data), "Subject: [mbk] mail TEST") {
			t.Errorf("test message subject:\n%s", m.Data)
		}
		bad := mbk(t, runOpts{env: []string{"SMTP_PASSWORD=nope-nope"}}, "notify", "test", file)
		if bad.code != 1 || !strings.Contains(bad.stdout, "FAILED") || !strings.Contains(bad.stdout, "refused") {
			t.Fatalf("notify test with a wrong password: %s", bad)
		}
	})
}

// decodedText returns the decoded text of every part of a MIME message
// (the plugin sends quoted-printable, which wraps long lines).
func decodedText(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		out.Write(b)
	}
	return out.String()
}

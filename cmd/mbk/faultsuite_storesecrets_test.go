package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/testing/smtptest"
	"github.com/mbk-backup/mbk/core/testing/storetest"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestFaultSuiteStoreSecrets: the secrets of off-site copies and of
// encryption, as secretsAndModes checks the database and SMTP passwords.
// An encrypted set goes to a real S3 gateway (an access key and a secret
// key) and a real OpenSSH server (a key whose passphrase is given), with an
// e-mail after; then it is verified in each store and restored from one with
// the age identity (a file, named by --identity); then the same with a wrong
// S3 secret key, a wrong passphrase and a wrong identity, whose errors must
// name the failure without the value. Every /proc/*/cmdline and environ of
// mbk and its plugins, sampled every 50 ms while each command runs, every
// line each command prints, every file under the root and in both stores,
// and every e-mail must be free of every one of those secrets.
func TestFaultSuiteStoreSecrets(t *testing.T) {
	s3 := storetest.StartS3(t)
	ftp := storetest.StartSFTP(t)
	smtpPassword := testenv.UniqueName(t, "smtp-Secr3t")
	passphrase := testenv.UniqueName(t, "pass-Secr3t")
	wrongSecret := testenv.UniqueName(t, "wrong-s3-Secr3t")
	wrongPassphrase := testenv.UniqueName(t, "wrong-pass-Secr3t")
	mail := smtptest.Start(t, smtptest.Options{TLS: "starttls", Username: "backups@example.com", Password: smtpPassword, RequireAuth: true})
	host, port := mail.Addr()

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	pub, err := storetest.NewKey(keyFile, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	ftp.Authorize(t, pub)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	wrongID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := writeFile(t, dir, "backup.key", id.String()+"\n")
	wrongIDFile := writeFile(t, dir, "other.key", wrongID.String()+"\n")
	secrets := []string{s3.SecretKey, s3.AccessKey, passphrase, id.String(), smtpPassword, wrongSecret, wrongPassphrase, wrongID.String()}

	root := filepath.Join(dir, "backups")
	pipeline := func(name, s3Secret, pass string) string {
		writeFile(t, dir, name+".env", fmt.Sprintf("S3_KEY=%s\nS3_SECRET=%s\nSFTP_PASSPHRASE=%s\nSMTP_PASSWORD=%s\n", s3.AccessKey, s3Secret, pass, smtpPassword))
		return writeFile(t, dir, name+".hcl", fmt.Sprintf(`plugin_dir = %q
env_file   = "%s.env"

pipeline "offsite" {
  root    = %q
  timeout = "5m"

  encryption {
    recipients = [%q]
  }
  stage "dump" "faulty" {
    mode    = "slow"
    size    = 1048576
    seconds = 2
  }
  stage "checksum" "sha256" {}
  stage "retain" "policy" {
    keep_last = 10
  }
  stage "store" "s3" {
    %s
  }
  stage "store" "sftp" {
    host           = %q
    port           = %d
    user           = %q
    key_file       = %q
    key_passphrase = env("SFTP_PASSPHRASE")
    known_hosts    = %q
    path           = %q
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
  }
}
`, filepath.Join(binDir, "extra"), name, root, id.Recipient().String(), s3.Stage(s3.Bucket, "moodle"),
			ftp.Host, ftp.Port, ftp.User, keyFile, ftp.KnownHosts, ftp.Dir, host, port, mail.CAFile()))
	}
	good := pipeline("good", s3.SecretKey, passphrase)

	var outputs []string
	// sampled runs mbk, sampling its processes, and keeps what it printed.
	sampled := func(t *testing.T, want int, holders []string, args ...string) result {
		t.Helper()
		b := startMbk(t, nil, args...)
		sampler := sampleProcs(b.cmd.Process.Pid, secrets)
		r := b.wait()
		sampler.stop()
		sampler.check(t, holders...)
		outputs = append(outputs, fmt.Sprintf("mbk %s:\n%s\n%s", strings.Join(args, " "), r.stdout, r.stderr))
		if r.code != want {
			t.Fatalf("mbk %v: want exit %d: %s", args, want, r)
		}
		return r
	}

	t.Run("a run copies an encrypted set to both stores", func(t *testing.T) {
		sampled(t, 0, []string{"/mbk --log-level trace run", "/mbk-plugin-s3", "/mbk-plugin-sftp", "/mbk-plugin-smtp"}, "--log-level", "trace", "run", good)
	})
	t.Run("verify in each store and restore with the identity", func(t *testing.T) {
		for _, store := range []string{"s3", "sftp"} {
			r := sampled(t, 0, []string{"/mbk --log-level trace verify"}, "--log-level", "trace", "verify", good, "--store", store, "--identity", idFile)
			if !strings.Contains(r.stdout, ": OK") {
				t.Errorf("verify --store %s: %s", store, r)
			}
		}
		r := sampled(t, 0, []string{"/mbk --log-level trace restore"}, "--log-level", "trace", "restore", good, "--from", "sftp", "--identity", idFile, "--yes", "--no-safety-copy")
		if !strings.Contains(r.stdout, "restored.") {
			t.Errorf("restore: %s", r)
		}
	})
	t.Run("a wrong S3 secret key", func(t *testing.T) {
		r := sampled(t, 3, []string{"/mbk-plugin-s3"}, "--log-level", "trace", "run", pipeline("bad-s3", wrongSecret, passphrase))
		if !strings.Contains(r.stdout, `is missing from store "s3"`) {
			t.Errorf("the failure is not named: %s", r)
		}
	})
	t.Run("a wrong key passphrase", func(t *testing.T) {
		r := sampled(t, 3, []string{"/mbk-plugin-sftp"}, "--log-level", "trace", "run", pipeline("bad-sftp", s3.SecretKey, wrongPassphrase))
		if !strings.Contains(r.stdout+r.stderr, "key_passphrase does not decrypt key_file") {
			t.Errorf("the failure is not named: %s", r)
		}
	})
	t.Run("a wrong identity", func(t *testing.T) {
		r := sampled(t, 1, nil, "verify", good, "--store", "s3", "--identity", wrongIDFile)
		if !strings.Contains(r.stdout, "BAD") {
			t.Errorf("verify with a wrong identity: %s", r)
		}
		r = sampled(t, 1, nil, "restore", good, "--identity", wrongIDFile, "--yes", "--no-safety-copy")
		if !strings.Contains(r.stdout+r.stderr, "refusing to restore") {
			t.Errorf("restore with a wrong identity: %s", r)
		}
	})

	t.Run("no secret in output, e-mail or files", func(t *testing.T) {
		places := map[string]string{"mbk's output": strings.Join(outputs, "\n")}
		messages := mail.WaitMessages(t, 3, time.Minute)
		for _, m := range messages {
			places["an e-mail"] += string(m.Data) + decodedText(t, m.Data)
		}
		for where, text := range places {
			for _, sec := range secrets {
				if strings.Contains(text, sec) {
					t.Errorf("a secret (%.12s…) appears in %s", sec, where)
				}
			}
		}
		// The sets, their logs and the failed runs' logs; the copies in
		// each store.
		for _, d := range []string{root, s3.Dir, ftp.Dir} {
			if n := scanFiles(t, d, secrets, nil); n < 5 {
				t.Errorf("scanned only %d files in %s", n, d)
			}
		}
	})
}

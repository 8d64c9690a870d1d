package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestPasswordStaysSecret dumps and restores with a password full of
// characters that break naive quoting, and looks at every process command
// line on the host (containers' processes included) while the dump runs.
func TestPasswordStaysSecret(t *testing.T) {
	t.Parallel()
	const password = `p@ss $HOME w'o"rd; #no-comment \n \ ñandú`
	m := testenv.StartMariaDB(t)
	m.CreateUser(t, "moodle", "moodle", password)
	addBigTable(t, m, "moodle")
	p := newPlugin(t)
	cfg := dbConfig(t, m.Container, "moodle", map[string]cty.Value{
		"user": cty.StringVal("moodle"), "password": cty.StringVal(password),
	})

	if ds := p.Preflight(testContext(t), cfg); len(ds) != 0 {
		t.Fatalf("preflight with the password: %+v", ds)
	}

	var sawDump bool
	var leaks []string
	w := &hookWriter{onFirst: func() error {
		sawDump, leaks = scanHostCmdlines(t, password)
		return nil
	}}
	res, err := p.Backup(testContext(t), sdk.BackupRequest{Config: cfg, Artifact: "moodle"}, w)
	if err != nil {
		t.Fatalf("backup with the password: %v", err)
	}
	if !sawDump {
		t.Fatal("no mariadb-dump process was seen on the host while the dump ran, so the scan proves nothing")
	}
	if len(leaks) > 0 {
		t.Fatalf("the password is on command lines: %q", leaks)
	}
	details, _ := json.Marshal(res.Details)
	if bytes.Contains(details, []byte(password)) || strings.Contains(res.InfoText, password) {
		t.Fatal("the password is in the details or the info text")
	}
	d, _, _ := detailsFrom(res.Details)
	if d.Rows["big"] != 400000 {
		t.Fatalf("rows of big = %d", d.Rows["big"])
	}

	rr, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: cfg, Artifact: "moodle",
		Options: ropts(t, map[string]string{optReplace: "true"}), Details: res.Details}, bytes.NewReader(w.buf.Bytes()))
	if err != nil {
		t.Fatalf("restore with the password: %v", err)
	}
	t.Logf("restore: %s", rr.Summary)
}

// scanHostCmdlines reads /proc/*/cmdline and reports whether a mariadb-dump
// runs, and which command lines hold secret.
func scanHostCmdlines(t *testing.T, secret string) (sawDump bool, leaks []string) {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(files) == 0 {
		t.Fatalf("read the host's process list: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended
		}
		cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		if strings.Contains(cmd, "mariadb-dump") && strings.Contains(cmd, "moodle") {
			sawDump = true
		}
		// A fragment too: naive quoting would split the password up.
		if strings.Contains(cmd, secret) || strings.Contains(cmd, "no-comment") || strings.Contains(cmd, "MYSQL_PWD") {
			leaks = append(leaks, cmd)
		}
	}
	return sawDump, leaks
}

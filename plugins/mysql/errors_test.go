package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

func TestErrors(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t)
	const password = "right-password"
	m.CreateUser(t, "moodle", "moodle", password)
	m.SQL(t, "CREATE TABLE moodle.t (a INT); INSERT INTO moodle.t VALUES (1);")
	addBigTable(t, m, "moodle")
	p := newPlugin(t)
	as := func(user, pw string, more map[string]cty.Value) map[string]cty.Value {
		attrs := map[string]cty.Value{"user": cty.StringVal(user), "password": cty.StringVal(pw)}
		for k, v := range more {
			attrs[k] = v
		}
		return attrs
	}

	vol := testenv.UniqueName(t, "mbktest-vol")
	testenv.CreateVolume(t, vol)
	stopped := testenv.StartApp(t, vol, "/data")
	if err := testenv.Docker(t).ContainerStop(testContext(t), stopped, container.StopOptions{}); err != nil {
		t.Fatalf("stop %s: %v", stopped, err)
	}
	project, found := composeContainer(t)

	t.Run("preflight passes", func(t *testing.T) {
		if ds := p.Preflight(testContext(t), dbConfig(t, m.Container, "moodle", as("moodle", password, nil))); len(ds) != 0 {
			t.Fatalf("preflight: %+v", ds)
		}
	})

	tests := []struct {
		name string
		cfg  sdk.Config
		db   string
		want string // in the error and in the preflight diagnostic
		attr string // of the preflight diagnostic
	}{
		{"wrong password", dbConfig(t, m.Container, "moodle", as("moodle", "wrong-password", nil)), "moodle",
			"Access denied for user 'moodle'", "password"},
		{"unknown user", dbConfig(t, m.Container, "moodle", as("nobody", password, nil)), "moodle",
			"Access denied for user 'nobody'", "password"},
		{"unknown container", dbConfig(t, testenv.UniqueName(t, "mbktest-none"), "moodle", nil), "moodle",
			"does not exist", "container"},
		{"stopped container", dbConfig(t, stopped, "moodle", nil), "moodle",
			"is exited", "container"},
		{"unknown compose service", config(t, map[string]cty.Value{"compose_project": cty.StringVal(project),
			"compose_service": cty.StringVal("nope"), "database": cty.StringVal("moodle")}), "moodle",
			"no container found", "compose_service"},
		{"compose service without a server", config(t, map[string]cty.Value{"compose_project": cty.StringVal(project),
			"compose_service": cty.StringVal("db"), "database": cty.StringVal("moodle")}), "moodle",
			"Can't connect", "password"},
		{"unknown database", dbConfig(t, m.Container, "nope", as("moodle", password, nil)), "nope",
			`no database "nope"`, "database"},
		{"missing dump client", dbConfig(t, m.Container, "moodle", as("moodle", password, map[string]cty.Value{
			"client": cty.StringVal("nonexistent-dump")})), "moodle",
			`dump client "nonexistent-dump" not found`, "client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := p.Backup(testContext(t), sdk.BackupRequest{Config: tt.cfg, Artifact: tt.db}, &buf)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("backup error %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), `dump database "`+tt.db+`"`) || strings.Contains(err.Error(), password) {
				t.Fatalf("backup error %q does not say what failed, or shows the password", err)
			}
			t.Logf("backup: %v", err)
			for _, d := range p.Preflight(testContext(t), tt.cfg) {
				if d.Error && d.Attribute == tt.attr && strings.Contains(d.Summary, tt.want) {
					return
				}
			}
			t.Fatalf("preflight gave no error on %q containing %q: %+v", tt.attr, tt.want, p.Preflight(testContext(t), tt.cfg))
		})
	}
	if found == "" {
		t.Fatal("compose container not created")
	}

	t.Run("cancelled midway", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		w := &hookWriter{onFirst: func() error { cancel(); return nil }}
		_, err := p.Backup(ctx, sdk.BackupRequest{Config: dbConfig(t, m.Container, "moodle", as("moodle", password, nil)), Artifact: "moodle"}, w)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("backup error %v, want context.Canceled", err)
		}
		if bytes.Contains(w.buf.Bytes(), []byte("-- Dump completed")) {
			t.Fatal("the dump finished before the cancellation reached it: make the big table bigger")
		}
		requireNoDump(t, m.Container)
	})
	t.Run("writer fails", func(t *testing.T) {
		w := &hookWriter{onFirst: func() error { return errors.New("disk full") }}
		_, err := p.Backup(testContext(t), sdk.BackupRequest{Config: dbConfig(t, m.Container, "moodle", as("moodle", password, nil)), Artifact: "moodle"}, w)
		if err == nil || !strings.Contains(err.Error(), "write the dump: disk full") {
			t.Fatalf("backup error %v, want the writer's", err)
		}
		requireNoDump(t, m.Container)
	})
	t.Run("database not configured", func(t *testing.T) {
		_, err := p.Backup(testContext(t), sdk.BackupRequest{Config: dbConfig(t, m.Container, "moodle", nil), Artifact: "other"}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "not one of the databases") {
			t.Fatalf("backup of an unconfigured database: %v", err)
		}
	})
}

// hookWriter calls onFirst at its first write and fails that write when
// onFirst returns an error; it keeps what it is given.
type hookWriter struct {
	mu      sync.Mutex
	onFirst func() error
	called  bool
	buf     bytes.Buffer
}

func (w *hookWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.called {
		w.called = true
		if err := w.onFirst(); err != nil {
			return 0, err
		}
	}
	return w.buf.Write(p)
}

// requireNoDump fails when a dump client still runs in the container.
func requireNoDump(t *testing.T, ctr string) {
	t.Helper()
	for _, cmd := range processes(t, ctr) {
		if strings.Contains(cmd, "mariadb-dump") || strings.Contains(cmd, "mysqldump") {
			t.Fatalf("a dump still runs in %s after Backup returned: %q", ctr, cmd)
		}
	}
}

// composeContainer starts a container labelled as service "db" of a new
// Compose project, with no database server in it, and returns the project
// and the container's name.
func composeContainer(t *testing.T) (project, name string) {
	t.Helper()
	cli := testenv.Docker(t)
	project = testenv.UniqueName(t, "mbktest-proj")
	name = project + "-db-1"
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true})
	})
	ctx := testContext(t)
	_, err := cli.ContainerCreate(ctx, &container.Config{
		Image: testenv.Image,
		Cmd:   []string{"sleep", "infinity"},
		Labels: map[string]string{
			testenv.Label:                "1",
			"com.docker.compose.project": project,
			"com.docker.compose.service": "db",
		},
	}, &container.HostConfig{Binds: []string{"/usr:/usr:ro", "/etc:/etc:ro"}}, nil, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return project, name
}

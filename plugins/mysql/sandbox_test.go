package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// TestSandboxConfig: a sandbox takes the source's way of running, not its
// data, its network or its credentials.
func TestSandboxConfig(t *testing.T) {
	const pw = "s3cret-Pw"
	src := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			Name:  "/site-db-1",
			Image: "sha256:0123",
			HostConfig: &container.HostConfig{
				NetworkMode: "site_default",
				Tmpfs:       map[string]string{"/run/mysqld": "mode=0755"},
				Mounts:      []mount.Mount{{Type: mount.TypeTmpfs, Target: "/tmp"}, {Type: mount.TypeVolume, Source: "data", Target: "/var/lib/mysql"}},
			},
		},
		Config: &container.Config{
			Image:      "mariadb:10.11",
			Entrypoint: []string{"docker-entrypoint.sh"},
			Cmd:        []string{"mariadbd", "--max-allowed-packet=64M"},
			User:       "mysql",
			Env: []string{
				"PATH=/usr/bin", "GOSU_VERSION=1.17", "MARIADB_ROOT_PASSWORD=" + pw, "MARIADB_PASSWORD_FILE=/run/secrets/db",
				"MARIADB_USER=moodle", "MARIADB_DATABASE=moodle", "MARIADB_ROOT_HOST=%", "MYSQL_PWD=" + pw,
				"MARIADB_RANDOM_ROOT_PASSWORD=1", "SITE_DB_PASS=" + pw, "BACKUP_TOKEN=abc", "TZ=UTC",
			},
			Labels: map[string]string{"com.docker.compose.project": "site"},
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeBind, Source: "/srv/site/my.cnf", Destination: "/etc/mysql/conf.d/site.cnf", RW: false},
			{Type: mount.TypeBind, Source: "/srv/site/init", Destination: "/docker-entrypoint-initdb.d", RW: false},
			{Type: mount.TypeBind, Source: "/srv/site/data", Destination: "/var/lib/mysql-files", RW: true},
			{Type: mount.TypeVolume, Name: "site_db", Destination: "/var/lib/mysql", RW: true},
			{Type: mount.TypeTmpfs, Destination: "/tmp", RW: true},
		},
	}
	cfg, hc, err := sandboxConfig(src, "mbk-drill-x", pw)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal([]any{cfg, hc})
	if strings.Contains(string(raw), pw) {
		t.Fatalf("the sandbox's configuration holds the password: %s", raw)
	}
	wantEnv := []string{"PATH=/usr/bin", "GOSU_VERSION=1.17", "TZ=UTC",
		"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1", "MYSQL_ALLOW_EMPTY_PASSWORD=yes", "ALLOW_EMPTY_PASSWORD=yes"}
	if !slices.Equal(cfg.Env, wantEnv) {
		t.Errorf("env %q, want %q", cfg.Env, wantEnv)
	}
	if cfg.Image != "sha256:0123" || !slices.Equal(cfg.Entrypoint, src.Config.Entrypoint) || !slices.Equal(cfg.Cmd, src.Config.Cmd) || cfg.User != "mysql" {
		t.Errorf("image %q entrypoint %q cmd %q user %q", cfg.Image, cfg.Entrypoint, cfg.Cmd, cfg.User)
	}
	if cfg.Labels[labelDrill] != "mbk-drill-x" || cfg.Labels[labelSource] != "site-db-1" || len(cfg.Labels) != 2 {
		t.Errorf("labels %v", cfg.Labels)
	}
	if hc.NetworkMode != "none" {
		t.Errorf("network %q", hc.NetworkMode)
	}
	if want := []string{"/srv/site/my.cnf:/etc/mysql/conf.d/site.cnf:ro"}; !slices.Equal(hc.Binds, want) {
		t.Errorf("binds %q, want %q", hc.Binds, want)
	}
	if len(hc.Mounts) != 1 || hc.Mounts[0].Type != mount.TypeTmpfs || hc.Mounts[0].Target != "/tmp" {
		t.Errorf("mounts %+v, want the tmpfs only", hc.Mounts)
	}
	if hc.Tmpfs["/run/mysqld"] != "mode=0755" {
		t.Errorf("tmpfs %v", hc.Tmpfs)
	}

	src.Config.Cmd = []string{"mariadbd", "--init-file=/x", "--password=" + pw}
	if _, _, err := sandboxConfig(src, "mbk-drill-x", pw); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("a command line with the password: %v", err)
	}
}

// TestSandboxNeedsContainer: a stage reached over TCP cannot be copied.
func TestSandboxNeedsContainer(t *testing.T) {
	p := newPlugin(t)
	cfg := config(t, map[string]cty.Value{"host": cty.StringVal("db.example"), "database": cty.StringVal("moodle"), "password": cty.StringVal("s3cret-Pw")})
	_, err := p.Sandbox(testContext(t), sdk.SandboxRequest{Config: cfg, Artifact: "moodle", Label: "mbk-drill-x"})
	if err == nil || !strings.Contains(err.Error(), "needs the server's container") || !strings.Contains(err.Error(), "db.example:3306") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("sandbox of a TCP stage: %v", err)
	}
	for _, label := range []string{"", "../x", "a b"} {
		if _, err := p.Teardown(testContext(t), cfg, label); err == nil {
			t.Errorf("teardown of label %q: no error", label)
		}
	}
}

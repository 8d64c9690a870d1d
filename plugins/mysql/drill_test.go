package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// drillPassword is the source's password: in its container's environment,
// as the official images take it, and in the stage's settings.
const drillPassword = `dr1ll-Secret$ pass;#ñ`

// sourceServerScript starts MariaDB as testenv's servers do, initialising
// an empty data directory first.
const sourceServerScript = `set -e
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db >/tmp/init.log 2>&1 ||
    { cat /tmp/init.log >&2; exit 1; }
fi
exec mariadbd --user=root --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
  --pid-file=/run/mysqld/mysqld.pid --bind-address=0.0.0.0`

// startDrillSource starts a database server container shaped like a real
// site's: an image that declares its data directory a volume (as the
// official images do), a named data volume, read-only binds, a tmpfs, a
// read-write bind, and credentials in its environment. Everything is
// removed at cleanup. script is the server's command (sh -c).
func startDrillSource(t *testing.T, script string) *testenv.MariaDB {
	t.Helper()
	cli := testenv.Docker(t)
	ctx := testContext(t)
	img := testenv.UniqueName(t, "mbktest-drill-image") + ":latest"
	base := testenv.UniqueName(t, "mbktest-drill-base")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = cli.ContainerRemove(ctx, base, container.RemoveOptions{Force: true})
		_, _ = cli.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	if _, err := cli.ContainerCreate(ctx, &container.Config{Image: testenv.Image}, nil, nil, nil, base); err != nil {
		t.Fatalf("create %s: %v", base, err)
	}
	if _, err := cli.ContainerCommit(ctx, base, container.CommitOptions{Reference: img, Changes: []string{"VOLUME /var/lib/mysql"}}); err != nil {
		t.Fatalf("commit %s: %v", img, err)
	}

	name := testenv.UniqueName(t, "mbktest-drill-src")
	vol := name + "-data"
	testenv.CreateVolume(t, vol)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	_, err := cli.ContainerCreate(ctx, &container.Config{
		Image: img,
		Cmd:   []string{"sh", "-c", script},
		Env: []string{"LANG=C.UTF-8", "KEEP_ME=kept",
			"MARIADB_ROOT_PASSWORD=" + drillPassword, "MARIADB_USER=moodle", "MARIADB_PASSWORD=" + drillPassword,
			"MARIADB_DATABASE=moodle", "MARIADB_ROOT_HOST=%", "MOODLE_DB_PASS=" + drillPassword},
		Labels: map[string]string{testenv.Label: "1"},
	}, &container.HostConfig{
		Binds: []string{"/usr:/usr:ro", "/etc:/etc:ro", vol + ":/var/lib/mysql", t.TempDir() + ":/srv/rw"},
		Tmpfs: map[string]string{"/run/mysqld": "mode=0755"},
	}, nil, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, stderr, code := testenv.Exec(t, name, nil, "mariadb", "-uroot", "-e", "SELECT 1")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MariaDB in %s not ready: %s", name, stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return &testenv.MariaDB{Container: name}
}

// sourceState is what a restore elsewhere must leave as it was: the
// databases, every table's checksum, the triggers.
func sourceState(t *testing.T, m *testenv.MariaDB) string {
	t.Helper()
	return m.SQL(t, `SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME) FROM information_schema.SCHEMATA;
SELECT GROUP_CONCAT(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'moodle';
CHECKSUM TABLE moodle.mdl_config, moodle.mdl_config_plugins, moodle.mdl_files, moodle.mdl_user, moodle.mdl_log, plain.t EXTENDED;`)
}

// TestDrill makes a sandbox from a real source container, restores a
// Moodle database and a plain one into it through the plugin, checks them,
// breaks the Moodle one and checks again, and tears the sandbox down.
func TestDrill(t *testing.T) {
	t.Parallel()
	src := startDrillSource(t, sourceServerScript)
	src.SQL(t, moodleSchema("moodle", "mdl_")+`
CREATE DATABASE plain; USE plain; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);`)
	src.CreateUser(t, "moodle", "moodle", drillPassword)
	// The routines' definer is root: the user that dumps them must read them.
	src.SQL(t, `GRANT ALL PRIVILEGES ON plain.* TO 'moodle'@'localhost'; GRANT SELECT ON mysql.proc TO 'moodle'@'localhost';
SET GLOBAL character_set_server = 'latin1', GLOBAL collation_server = 'latin1_german2_ci', GLOBAL max_allowed_packet = 67108864;`)
	p := newPlugin(t)
	ctx := testContext(t)
	cfg := dbConfig(t, src.Container, "moodle", map[string]cty.Value{
		"user": cty.StringVal("moodle"), "password": cty.StringVal(drillPassword),
	})
	plainCfg := dbConfig(t, src.Container, "plain", map[string]cty.Value{"user": cty.StringVal("moodle"), "password": cty.StringVal(drillPassword)})
	res, dump := backup(t, p, cfg, "moodle")
	plainRes, plainDump := backup(t, p, plainCfg, "plain")
	before := sourceState(t, src)

	label := testenv.UniqueName(t, "mbktest-drill")
	teardown := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return p.Teardown(ctx, cfg, label)
	}
	t.Cleanup(func() { _, _ = teardown() })
	box, err := p.Sandbox(ctx, sdk.SandboxRequest{Config: cfg, Artifact: "moodle", Label: label, Details: res.Details})
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Logf("sandbox: %s", box.Summary)
	name := box.Options[optSandbox]
	if name != label+"-db" {
		t.Fatalf("sandbox options %v: want %s=%s-db", box.Options, optSandbox, label)
	}
	for _, s := range []string{"MariaDB 10.", "latin1/latin1_german2_ci", "max_allowed_packet 64 MiB", name} {
		if !strings.Contains(box.Summary, s) {
			t.Errorf("the summary lacks %q: %s", s, box.Summary)
		}
	}
	if strings.Contains(box.Summary, drillPassword) {
		t.Fatal("the summary holds the password")
	}

	t.Run("sandbox container", func(t *testing.T) {
		info := inspect(t, name)
		raw, _ := json.Marshal(info)
		if bytes.Contains(raw, []byte(drillPassword)) || bytes.Contains(raw, []byte(jsonString(drillPassword))) {
			t.Error("the sandbox's configuration holds the password")
		}
		if l := info.Config.Labels; l[labelDrill] != label || l[labelSource] != src.Container {
			t.Errorf("labels %v", l)
		}
		if info.HostConfig.NetworkMode != "none" {
			t.Errorf("network mode %q", info.HostConfig.NetworkMode)
		}
		env := info.Config.Env
		for _, v := range []string{"MARIADB_USER=", "MARIADB_PASSWORD=", "MARIADB_DATABASE=", "MARIADB_ROOT_HOST=", "MARIADB_ROOT_PASSWORD=", "MOODLE_DB_PASS="} {
			if slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, v) }) {
				t.Errorf("the sandbox's environment has %s: %q", v, env)
			}
		}
		for _, v := range []string{"KEEP_ME=kept", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1", "MYSQL_ALLOW_EMPTY_PASSWORD=yes"} {
			if !slices.Contains(env, v) {
				t.Errorf("the sandbox's environment lacks %s: %q", v, env)
			}
		}
		srcInfo := inspect(t, src.Container)
		if info.Image != srcInfo.Image || !slices.Equal(info.Config.Cmd, srcInfo.Config.Cmd) {
			t.Errorf("image %s cmd %q, the source has %s %q", info.Image, info.Config.Cmd, srcInfo.Image, srcInfo.Config.Cmd)
		}
		mounts := map[string]container.MountPoint{}
		for _, m := range info.Mounts {
			mounts[m.Destination] = m
		}
		for _, dst := range []string{"/usr", "/etc"} {
			if m, ok := mounts[dst]; !ok || m.Type != mount.TypeBind || m.RW {
				t.Errorf("mount %s: %+v", dst, m)
			}
		}
		if _, ok := mounts["/srv/rw"]; ok {
			t.Error("the read-write bind was copied")
		}
		if data := mounts["/var/lib/mysql"]; data.Type != mount.TypeVolume || strings.HasPrefix(data.Name, src.Container) {
			t.Errorf("data directory %+v: want an anonymous volume of its own", data)
		}
		if _, ok := info.HostConfig.Tmpfs["/run/mysqld"]; !ok {
			t.Errorf("tmpfs %v: want /run/mysqld", info.HostConfig.Tmpfs)
		}
		vars, _, code := testenv.Exec(t, name, nil, "mariadb", "-uroot", "-N", "-e",
			"SELECT @@global.character_set_server, @@global.collation_server, @@global.max_allowed_packet")
		if code != 0 || strings.Fields(vars)[1] != "latin1_german2_ci" || strings.Fields(vars)[2] != "67108864" {
			t.Errorf("the sandbox's settings: %q", vars)
		}
	})

	// Another database of the stage gets the same sandbox.
	again, err := p.Sandbox(ctx, sdk.SandboxRequest{Config: plainCfg, Artifact: "plain", Label: label, Details: plainRes.Details})
	if err != nil || again.Options[optSandbox] != name {
		t.Fatalf("second sandbox: %v %v", again.Options, err)
	}

	opts := ropts(t, map[string]string{optSandbox: name})
	rr, err := p.Restore(ctx, sdk.RestoreRequest{Config: cfg, Artifact: "moodle", Options: opts, Details: res.Details}, bytes.NewReader(dump))
	if err != nil {
		t.Fatalf("restore into the sandbox: %v", err)
	}
	t.Logf("restore: %s", rr.Summary)
	if _, err := p.Restore(ctx, sdk.RestoreRequest{Config: plainCfg, Artifact: "plain", Options: opts, Details: plainRes.Details}, bytes.NewReader(plainDump)); err != nil {
		t.Fatalf("restore plain into the sandbox: %v", err)
	}
	sandboxed := &testenv.MariaDB{Container: name}
	if got := sandboxed.SQL(t, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'moodle'"); strings.TrimSpace(got) != "utf8mb4\tutf8mb4_unicode_ci" {
		t.Errorf("the restored database's character set and collation: %q", got)
	}

	refs := filepath.Join(t.TempDir(), "refs")
	check := func(t *testing.T, cfg sdk.Config, artifact string, details map[string]any) map[string]sdk.Check {
		t.Helper()
		cr, err := p.Check(ctx, sdk.CheckRequest{Config: cfg, Artifact: artifact, Options: opts, Details: details, RefsOut: refs})
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		out := map[string]sdk.Check{}
		for _, c := range cr.Checks {
			out[c.Name] = c
			t.Logf("%s ok=%v: %s %q", c.Name, c.OK, c.Summary, c.Problems)
		}
		if names := slices.Sorted(maps.Keys(out)); !slices.Equal(names, []string{checkPlugins, checkVersion, checkObjects, checkRows}) {
			t.Fatalf("checks %q", names)
		}
		return out
	}

	t.Run("check passes", func(t *testing.T) {
		for name, c := range check(t, cfg, "moodle", res.Details) {
			if !c.OK {
				t.Errorf("check %s failed: %s %q", name, c.Summary, c.Problems)
			}
		}
		got := map[string]string{}
		if err := sdk.ReadRefs(refs, func(r sdk.Ref) error {
			if _, dup := got[r.Hash]; dup {
				t.Errorf("reference %s twice", r.Hash)
			}
			got[r.Hash] = r.Label
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, wantRefs()) {
			t.Errorf("references %q, want %q", got, wantRefs())
		}
	})

	t.Run("plain database", func(t *testing.T) {
		if err := os.Remove(refs); err != nil {
			t.Fatal(err)
		}
		for name, c := range check(t, plainCfg, "plain", plainRes.Details) {
			if !c.OK {
				t.Errorf("check %s failed: %s %q", name, c.Summary, c.Problems)
			}
			if name == checkObjects && c.Summary != "0 views and stored programs, as recorded" {
				t.Errorf("check %s: %s", name, c.Summary)
			}
			if (name == checkVersion || name == checkPlugins) && !strings.HasPrefix(c.Summary, "skipped") {
				t.Errorf("check %s of a database without Moodle: %s", name, c.Summary)
			}
		}
		if _, err := os.Stat(refs); !os.IsNotExist(err) {
			t.Errorf("references written for a database without Moodle: %v", err)
		}
	})

	t.Run("check fails", func(t *testing.T) {
		sandboxed.SQL(t, `USE moodle; DELETE FROM mdl_user WHERE username = 'zoe';
UPDATE mdl_config_plugins SET value = '2025010100' WHERE plugin = 'mod_forum' AND name = 'version';
DELETE FROM mdl_config_plugins WHERE plugin = 'enrol_manual';
UPDATE mdl_config SET value = '4.5.1 (Build: 20241201)' WHERE name = 'release';
DROP TRIGGER mdl_user_ai;`)
		got := check(t, cfg, "moodle", res.Details)
		for _, c := range []struct {
			name  string
			names []string
		}{
			{checkRows, []string{"table mdl_user has 2 rows, the backup held 3"}},
			{checkObjects, []string{"trigger mdl_user_ai is missing"}},
			{checkPlugins, []string{"plugin mod_forum at version 2025010100, the backup had 2024100700", "plugin enrol_manual removed"}},
			{checkVersion, []string{`release "4.5.1 (Build: 20241201)"`}},
		} {
			ck := got[c.name]
			if ck.OK {
				t.Errorf("check %s passed: %s", c.name, ck.Summary)
			}
			all := strings.Join(ck.Problems, "\n")
			for _, s := range c.names {
				if !strings.Contains(all, s) {
					t.Errorf("check %s does not say %q: %q", c.name, s, ck.Problems)
				}
			}
		}
	})

	t.Run("source untouched", func(t *testing.T) {
		if after := sourceState(t, src); after != before {
			t.Errorf("the source changed:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("only a sandbox", func(t *testing.T) {
		_, err := p.Restore(ctx, sdk.RestoreRequest{Config: cfg, Artifact: "moodle",
			Options: ropts(t, map[string]string{optSandbox: src.Container, optReplace: "true"}), Details: res.Details}, bytes.NewReader(dump))
		if err == nil || !strings.Contains(err.Error(), "not a drill's sandbox") {
			t.Fatalf("restore into a container that is no sandbox: %v", err)
		}
		if strings.Contains(err.Error(), drillPassword) {
			t.Fatal("the error holds the password")
		}
		if after := sourceState(t, src); after != before {
			t.Errorf("the source changed:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("teardown", func(t *testing.T) {
		var volumes []string
		for _, m := range inspect(t, name).Mounts {
			if m.Type == mount.TypeVolume {
				volumes = append(volumes, m.Name)
			}
		}
		if len(volumes) == 0 {
			t.Fatal("the sandbox has no volume, so the test proves nothing about removing them")
		}
		sum, err := teardown()
		if err != nil || !strings.Contains(sum, name) {
			t.Fatalf("teardown: %q %v", sum, err)
		}
		cli := testenv.Docker(t)
		if _, err := cli.ContainerInspect(ctx, name); !client.IsErrNotFound(err) {
			t.Errorf("the sandbox is still there: %v", err)
		}
		for _, v := range volumes {
			if _, err := cli.VolumeInspect(ctx, v); !client.IsErrNotFound(err) {
				t.Errorf("volume %s is still there: %v", v, err)
			}
		}
		sum, err = teardown()
		if err != nil || !strings.Contains(sum, "nothing to remove") {
			t.Errorf("second teardown: %q %v", sum, err)
		}
	})
}

// TestSandboxNeverAnswers: a sandbox whose server cannot start is an
// error that names the container and quotes its log, and is removed.
func TestSandboxNeverAnswers(t *testing.T) {
	t.Parallel()
	// The server starts only with a setting the sandbox does without.
	src := startDrillSource(t, `[ -n "$MARIADB_DATABASE" ] || { echo "no database named: not starting" >&2; exit 3; }
`+sourceServerScript)
	p := newPlugin(t)
	label := testenv.UniqueName(t, "mbktest-drill")
	t.Cleanup(func() { _, _ = p.Teardown(context.Background(), sdk.Config{}, label) })
	cfg := dbConfig(t, src.Container, "mysql", nil)
	_, err := p.Sandbox(testContext(t), sdk.SandboxRequest{Config: cfg, Artifact: "mysql", Label: label})
	if err == nil {
		t.Fatal("a sandbox whose server exits: no error")
	}
	t.Log(err)
	for _, s := range []string{label + "-db", "stopped", "exit code 3", "no database named: not starting"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error does not say %q", s)
		}
	}
	if _, err := testenv.Docker(t).ContainerInspect(testContext(t), label+"-db"); !client.IsErrNotFound(err) {
		t.Errorf("the failed sandbox is still there: %v", err)
	}
}

func inspect(t *testing.T, name string) container.InspectResponse {
	t.Helper()
	info, err := testenv.Docker(t).ContainerInspect(testContext(t), name)
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return info
}

// jsonString is s as JSON spells it inside a string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// Package testenv gives integration tests a real Docker engine, MariaDB containers and
// "app" containers with named volumes, built from the registry-free base image
// mbk-base:latest that `scripts/stack.sh image` imports.
//
// The image is a tiny root filesystem (empty /usr, /etc, /tmp and the mount
// points MariaDB needs) made with docker import, so no registry is reached;
// containers bind the host's /usr and /etc read-only, so the host's MariaDB
// server and coreutils run inside them.
//
// Prerequisites: a running engine and the image, i.e. `make test` or
// `bash scripts/stack.sh image`. When they are missing the helpers fail the test
// (t.Fatalf): integration tests are never skipped.
//
// Every container and volume is named per test (UniqueName) and removed by a
// t.Cleanup registered before it is created, so parallel and repeated runs never
// collide and nothing is left behind.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

const (
	// Image is the registry-free base image built by `scripts/stack.sh image`.
	Image = "mbk-base:latest"
	// Label marks every container and volume created by this package.
	Label = "io.mbk.testenv"

	readyTimeout   = 90 * time.Second
	apiTimeout     = 60 * time.Second
	execTimeout    = 5 * time.Minute
	cleanupTimeout = 60 * time.Second

	fixHint = "run `make test`, or `bash scripts/stack.sh engine && bash scripts/stack.sh image`, first"
)

// hostBinds returns the host's programs and configuration (read-only) plus extra binds.
func hostBinds(extra ...string) []string {
	return append([]string{"/usr:/usr:ro", "/etc:/etc:ro"}, extra...)
}

var (
	clientMu  sync.Mutex
	sharedCli *client.Client
	imageOK   bool
)

// Docker returns a client for the engine described by the environment
// (DOCKER_HOST, ...), negotiating the API version (Docker 20.10 speaks 1.41).
// It fails the test when the engine does not answer.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	clientMu.Lock()
	defer clientMu.Unlock()
	if sharedCli != nil {
		return sharedCli
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("testenv: docker client: %v; %s", err, fixHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		t.Fatalf("testenv: docker engine not reachable at %s: %v; %s", cli.DaemonHost(), err, fixHint)
	}
	sharedCli = cli
	return cli
}

// requireImage fails the test when the base image is missing.
func requireImage(t testing.TB, cli *client.Client) {
	t.Helper()
	clientMu.Lock()
	ok := imageOK
	clientMu.Unlock()
	if ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, Image); err != nil {
		if client.IsErrNotFound(err) {
			t.Fatalf("testenv: image %s not found; run `make test` or `bash scripts/stack.sh image` first", Image)
		}
		t.Fatalf("testenv: inspect image %s: %v; %s", Image, err, fixHint)
	}
	clientMu.Lock()
	imageOK = true
	clientMu.Unlock()
}

// UniqueName returns prefix followed by a short random hex suffix, valid as a
// container or volume name, so parallel and repeated runs never collide.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	if prefix == "" {
		prefix = "mbktest"
	}
	if !strings.HasSuffix(prefix, "-") && !strings.HasSuffix(prefix, "_") {
		prefix += "-"
	}
	return prefix + hex.EncodeToString(b[:])
}

// MariaDB is a running MariaDB server container. Root logs in through the unix
// socket without a password (mariadb-install-db default), so RootPassword is empty.
type MariaDB struct {
	Container    string
	RootPassword string
	// Port is the port on 127.0.0.1 the server listens on through the
	// engine's port publishing; 0 unless started by StartMariaDBPublished.
	Port int
}

// mariadbPort is the server's port inside its container.
const mariadbPort nat.Port = "3306/tcp"

// publishedPort reads back the host port the engine chose for mariadbPort.
func publishedPort(t testing.TB, cli *client.Client, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	ins, err := cli.ContainerInspect(ctx, name)
	if err != nil {
		t.Fatalf("testenv: inspect container %s: %v", name, err)
	}
	if ins.NetworkSettings != nil {
		for _, b := range ins.NetworkSettings.Ports[mariadbPort] {
			if b.HostIP == "127.0.0.1" {
				if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
					return p
				}
			}
		}
	}
	t.Fatalf("testenv: container %s has no port published on 127.0.0.1 for %s", name, mariadbPort)
	return 0
}

const mariadbScript = `set -e
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db >/tmp/init.log 2>&1 ||
    { cat /tmp/init.log >&2; exit 1; }
fi
exec mariadbd --user=root --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
  --pid-file=/run/mysqld/mysqld.pid --bind-address=0.0.0.0`

// StartMariaDB starts a MariaDB container with its own data volume and waits
// until root can run a query. Container and volume are removed at cleanup.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	return startMariaDB(t, false)
}

// StartMariaDBPublished is StartMariaDB with the server's port 3306 also
// published on 127.0.0.1, at a free port the engine picks (Port), for tests
// of clients that connect over TCP from the host. Only loopback is
// published: tests never reach a container by its bridge address.
func StartMariaDBPublished(t testing.TB) *MariaDB {
	t.Helper()
	return startMariaDB(t, true)
}

func startMariaDB(t testing.TB, publish bool) *MariaDB {
	t.Helper()
	cli := Docker(t)
	requireImage(t, cli)

	name := UniqueName(t, "mbktest-db")
	vol := name + "-data"
	CreateVolume(t, vol)
	hc := &container.HostConfig{Binds: hostBinds(vol + ":/var/lib/mysql")}
	var exposed nat.PortSet
	if publish {
		exposed = nat.PortSet{mariadbPort: {}}
		// HostPort "" lets the engine choose, so parallel tests never collide.
		hc.PortBindings = nat.PortMap{mariadbPort: {{HostIP: "127.0.0.1", HostPort: ""}}}
	}
	createAndStart(t, cli, name, []string{"sh", "-c", mariadbScript}, hc, exposed)

	m := &MariaDB{Container: name}
	if publish {
		m.Port = publishedPort(t, cli, name)
	}
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, stderr, code, err := execRun(ctx, cli, name, nil, nil, []string{"mariadb", "-uroot", "-e", "select 1"})
		cancel()
		if err == nil && code == 0 {
			return m
		}
		if err != nil {
			last = err.Error()
		} else {
			last = strings.TrimSpace(stderr)
		}
		if running, state := isRunning(cli, name); !running {
			t.Fatalf("testenv: MariaDB container %s is %s while starting; logs:\n%s", name, state, containerLogs(cli, name))
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: MariaDB in %s not ready after %s (last: %s); logs:\n%s",
				name, readyTimeout, last, containerLogs(cli, name))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// SQL runs sql as root (statements on stdin, never on the command line) with
// `mariadb --batch --skip-column-names` and returns stdout. It fails the test on
// a non-zero exit, showing stderr.
func (m *MariaDB) SQL(t testing.TB, sql string) string {
	t.Helper()
	stdout, stderr, code := Exec(t, m.Container, strings.NewReader(sql),
		"mariadb", "-uroot", "--batch", "--skip-column-names", "--default-character-set=utf8mb4")
	if code != 0 {
		t.Fatalf("testenv: SQL in %s failed (exit %d): %s", m.Container, code, strings.TrimSpace(stderr))
	}
	return stdout
}

// CreateUser creates database db (utf8mb4, utf8mb4_unicode_ci) if missing and the
// user for '%' and 'localhost' with all privileges on it. The password only travels
// inside the SQL on stdin.
func (m *MariaDB) CreateUser(t testing.TB, db, user, password string) {
	t.Helper()
	d, u, p := QuoteIdent(db), QuoteString(user), QuoteString(password)
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n", d)
	for _, host := range []string{"'%'", "'localhost'"} {
		fmt.Fprintf(&b, "CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s;\n", u, host, p)
		fmt.Fprintf(&b, "GRANT ALL PRIVILEGES ON %s.* TO %s@%s;\n", d, u, host)
	}
	b.WriteString("FLUSH PRIVILEGES;\n")
	m.SQL(t, b.String())
}

// QuoteString returns s as a single-quoted SQL string literal, escaping
// backslash and quote (valid unless sql_mode has NO_BACKSLASH_ESCAPES).
func QuoteString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}

// QuoteIdent returns s as a backquoted SQL identifier.
func QuoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// CreateVolume creates a named volume, removed (forcefully) at cleanup.
func CreateVolume(t testing.TB, name string) {
	t.Helper()
	cli := Docker(t)
	t.Cleanup(func() { removeVolume(t, cli, name) })
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{
		Name:   name,
		Labels: map[string]string{Label: "1"},
	}); err != nil {
		t.Fatalf("testenv: create volume %s: %v", name, err)
	}
}

// StartApp starts an "app" container (`sleep infinity`) mounting volume at
// mountPath and returns its name. It is removed at cleanup.
func StartApp(t testing.TB, volume, mountPath string) string {
	t.Helper()
	cli := Docker(t)
	requireImage(t, cli)
	name := UniqueName(t, "mbktest-app")
	startContainer(t, cli, name, []string{"sleep", "infinity"}, hostBinds(volume+":"+mountPath))
	return name
}

// Exec runs cmd in container (stdin may be nil) and returns its stdout, stderr and
// exit code. API errors fail the test; a non-zero exit does not.
func Exec(t testing.TB, container string, stdin io.Reader, cmd ...string) (stdout, stderr string, exit int) {
	t.Helper()
	return ExecEnv(t, container, nil, stdin, cmd...)
}

// ExecEnv is Exec with extra environment variables ("KEY=value") for the process,
// set through the exec configuration (not visible on any command line).
func ExecEnv(t testing.TB, container string, env []string, stdin io.Reader, cmd ...string) (stdout, stderr string, exit int) {
	t.Helper()
	cli := Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	stdout, stderr, exit, err := execRun(ctx, cli, container, env, stdin, cmd)
	if err != nil {
		t.Fatalf("testenv: exec %q in %s: %v (stderr: %s)", cmd, container, err, strings.TrimSpace(stderr))
	}
	return stdout, stderr, exit
}

// execRun creates, attaches and runs an exec, demultiplexing its output.
func execRun(ctx context.Context, cli *client.Client, ctr string, env []string, stdin io.Reader, cmd []string) (string, string, int, error) {
	created, err := cli.ContainerExecCreate(ctx, ctr, container.ExecOptions{
		AttachStdin:  stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Env:          env,
		Cmd:          cmd,
	})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec create: %w", err)
	}
	hj, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec attach: %w", err)
	}
	defer hj.Close()

	if stdin != nil {
		go func() {
			_, _ = io.Copy(hj.Conn, stdin)
			_ = hj.CloseWrite()
		}()
	}

	var outBuf, errBuf bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&outBuf, &errBuf, hj.Reader)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		hj.Close()
		<-done
		return outBuf.String(), errBuf.String(), -1, fmt.Errorf("exec: %w", ctx.Err())
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return outBuf.String(), errBuf.String(), -1, fmt.Errorf("exec output: %w", err)
	}

	// The stream can end a moment before the engine records the exit code.
	for {
		ins, err := cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return outBuf.String(), errBuf.String(), -1, fmt.Errorf("exec inspect: %w", err)
		}
		if !ins.Running {
			return outBuf.String(), errBuf.String(), ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return outBuf.String(), errBuf.String(), -1, fmt.Errorf("exec inspect: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startContainer creates and starts a container from Image, registering its
// removal first so a failed start leaves nothing behind.
func startContainer(t testing.TB, cli *client.Client, name string, cmd, binds []string) {
	t.Helper()
	createAndStart(t, cli, name, cmd, &container.HostConfig{Binds: binds}, nil)
}

// createAndStart is startContainer with a whole host configuration and the
// ports the container exposes (nil: none).
func createAndStart(t testing.TB, cli *client.Client, name string, cmd []string, hc *container.HostConfig, exposed nat.PortSet) {
	t.Helper()
	t.Cleanup(func() { removeContainer(t, cli, name) })
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	_, err := cli.ContainerCreate(ctx,
		&container.Config{
			Image:        Image,
			Hostname:     name,
			Cmd:          cmd,
			Env:          []string{"LANG=C.UTF-8"},
			Labels:       map[string]string{Label: "1"},
			ExposedPorts: exposed,
		},
		hc,
		nil, nil, name)
	if err != nil {
		t.Fatalf("testenv: create container %s: %v", name, err)
	}
	if err := cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		t.Fatalf("testenv: start container %s: %v\n%s", name, err, containerLogs(cli, name))
	}
}

func isRunning(cli *client.Client, name string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	ins, err := cli.ContainerInspect(ctx, name)
	if err != nil {
		return false, "not inspectable (" + err.Error() + ")"
	}
	if ins.State == nil {
		return false, "in an unknown state"
	}
	if ins.State.Running {
		return true, "running"
	}
	return false, fmt.Sprintf("%s (exit %d)", ins.State.Status, ins.State.ExitCode)
}

func containerLogs(cli *client.Client, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "50"})
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var b bytes.Buffer
	_, _ = stdcopy.StdCopy(&b, &b, rc)
	return b.String()
}

// Cleanups never fail the test: things may already be gone.
func removeContainer(t testing.TB, cli *client.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !client.IsErrNotFound(err) {
		t.Logf("testenv: cleanup: remove container %s: %v", name, err)
	}
}

func removeVolume(t testing.TB, cli *client.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := cli.VolumeRemove(ctx, name, true)
	if err != nil && !client.IsErrNotFound(err) {
		t.Logf("testenv: cleanup: remove volume %s: %v", name, err)
	}
}

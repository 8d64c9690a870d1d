package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/dustin/go-humanize"

	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/sdk"
)

// A drill's sandbox is a database server nothing else can reach, made from
// the source server's container: the same image, entrypoint, command, user
// and environment, less the credentials; its read-only configuration
// (read-only binds, tmpfs) but none of its data (no volumes, no read-write
// binds); no network. Root reaches it through the server's socket without a
// password, and a restore with the sandbox_container option goes there.
const (
	// labelDrill carries the drill's label: Teardown removes every
	// container that has it.
	labelDrill = sdk.DrillLabel
	// labelSource names the container a sandbox copies.
	labelSource = "mbk.drill.source"
)

// sandboxReady bounds the wait for a sandbox's server to answer: a first
// start initialises an empty data directory.
const sandboxReady = 3 * time.Minute

// drillLabel is what a drill's label may hold: it names containers.
var drillLabel = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

var _ sdk.Sandboxer = (*plugin)(nil)

// serverVars are the source server's settings a sandbox takes over.
type serverVars struct {
	server
	Charset, Collation string
	MaxPacket          int64
	// SkipNetworking tells the server the image's entrypoint starts for
	// its first initialisation (official images run it with
	// --skip-networking) from the one that serves after it.
	SkipNetworking string
}

const serverVarsSQL = "SELECT 'vars', VERSION(), @@version_comment, @@global.character_set_server, @@global.collation_server, @@global.max_allowed_packet, @@global.skip_networking;"

func (ss *session) serverVars(ctx context.Context) (serverVars, error) {
	rows, err := ss.query(ctx, serverVarsSQL)
	if err != nil {
		return serverVars{}, err
	}
	if len(rows) != 1 || len(rows[0]) != 7 || rows[0][0] != "vars" {
		return serverVars{}, fmt.Errorf("unexpected answer about the server's settings: %q", rows)
	}
	r := rows[0]
	n, err := strconv.ParseInt(r[5], 10, 64)
	if err != nil {
		return serverVars{}, fmt.Errorf("unexpected max_allowed_packet %q", r[5])
	}
	return serverVars{server: parseServer(r[1], r[2]), Charset: r[3], Collation: r[4], MaxPacket: n, SkipNetworking: r[6]}, nil
}

// describe is the sandbox summary's account of a server.
func (v serverVars) describe() string {
	version, _, _ := strings.Cut(v.Version, "-")
	return fmt.Sprintf("%s %s, %s/%s, max_allowed_packet %s", v.Flavour, version, v.Charset, v.Collation, humanize.IBytes(uint64(v.MaxPacket)))
}

// Sandbox makes a server like the stage's own for a drill to restore into.
func (p *plugin) Sandbox(ctx context.Context, req sdk.SandboxRequest) (sdk.Sandbox, error) {
	s, err := decodeSettings(req.Config)
	if err != nil {
		return sdk.Sandbox{}, err
	}
	if !drillLabel.MatchString(req.Label) {
		return sdk.Sandbox{}, fmt.Errorf("sandbox: the drill's label %q cannot name a container", req.Label)
	}
	if s.Host != "" {
		return sdk.Sandbox{}, fmt.Errorf("sandbox: a drill needs the server's container, to make one like it; this stage reaches its server over TCP at %s: set container (or compose_project and compose_service) instead of host", net.JoinHostPort(s.Host, strconv.Itoa(s.port())))
	}
	src, err := open(ctx, s)
	if err != nil {
		return sdk.Sandbox{}, fmt.Errorf("sandbox: %w", err)
	}
	defer src.Close()
	want, err := src.serverVars(ctx)
	if err != nil {
		return sdk.Sandbox{}, fmt.Errorf("sandbox: read the settings of the server %s: %w", src.at, err)
	}
	dc, err := docker.New()
	if err != nil {
		return sdk.Sandbox{}, fmt.Errorf("sandbox: %w", err)
	}
	defer dc.Close()
	info, err := dc.ContainerInspect(ctx, src.container)
	if err != nil {
		return sdk.Sandbox{}, fmt.Errorf("sandbox: inspect container %q: %w", src.container, err)
	}
	name, made, err := p.makeSandbox(ctx, dc, info, req.Label, s.Password)
	if err != nil {
		return sdk.Sandbox{}, fmt.Errorf("sandbox of container %q: %w", src.container, err)
	}
	got, err := p.readySandbox(ctx, dc, s, name, want)
	if err != nil {
		if made {
			// Teardown would find it too; a drill that never got a
			// sandbox should not have to.
			removeSandbox(dc, name)
		}
		return sdk.Sandbox{}, fmt.Errorf("sandbox of container %q: %w", src.container, err)
	}
	return sdk.Sandbox{
		Options: map[string]string{optSandbox: name},
		Summary: fmt.Sprintf("%s in container %q (no network; a copy of %q without its data or credentials)", got.describe(), name, src.container),
	}, nil
}

// makeSandbox creates and starts the sandbox container named after label,
// or finds the one an earlier call of the same drill made from the same
// source (each database of a stage asks for one; they share it, as they
// share the source server). made says whether this call created it.
func (p *plugin) makeSandbox(ctx context.Context, dc *docker.Client, src container.InspectResponse, label, password string) (name string, made bool, err error) {
	srcName := strings.TrimPrefix(src.Name, "/")
	cfg, hc, err := sandboxConfig(src, label, password)
	if err != nil {
		return "", false, err
	}
	for i := 1; i <= 9; i++ {
		name = label + "-db"
		if i > 1 {
			name += "-" + strconv.Itoa(i)
		}
		_, err = dc.ContainerCreate(ctx, cfg, hc, nil, nil, name)
		if errdefs.IsConflict(err) {
			other, ierr := dc.ContainerInspect(ctx, name)
			if ierr == nil && other.Config != nil && other.Config.Labels[labelDrill] == label && other.Config.Labels[labelSource] == srcName {
				p.log.Info("sandbox already made by this drill", "container", name, "source", srcName)
				return name, false, startSandbox(ctx, dc, name)
			}
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("create container %q: %w", name, err)
		}
		p.log.Info("sandbox created", "container", name, "source", srcName, "image", src.Config.Image)
		if err := startSandbox(ctx, dc, name); err != nil {
			removeSandbox(dc, name)
			return "", false, err
		}
		return name, true, nil
	}
	return "", false, fmt.Errorf("the names %s-db to %s-db-9 are all taken", label, label)
}

func startSandbox(ctx context.Context, dc *docker.Client, name string) error {
	if err := dc.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %q: %w%s", name, err, lastLogs(dc, name))
	}
	return nil
}

// removeSandbox removes a container this call made and could not use.
func removeSandbox(dc *docker.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = dc.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
}

// sandboxConfig copies what the source's server needs to run like it, and
// nothing it keeps or guards: see the comment at the top.
func sandboxConfig(src container.InspectResponse, label, password string) (*container.Config, *container.HostConfig, error) {
	if src.Config == nil || src.HostConfig == nil {
		return nil, nil, errors.New("the source container's inspect data lacks its configuration")
	}
	for _, arg := range append(append([]string{}, src.Config.Entrypoint...), src.Config.Cmd...) {
		if password != "" && strings.Contains(arg, password) {
			return nil, nil, errors.New("the source container's command line holds the stage's password, which a sandbox must not copy")
		}
	}
	var env []string
	for _, kv := range src.Config.Env {
		name, value, _ := strings.Cut(kv, "=")
		if credential(name) || password != "" && strings.Contains(value, password) {
			continue
		}
		env = append(env, kv)
	}
	// Root without a password, through the socket only (there is no
	// network): the official images' and Bitnami's ways of saying so.
	env = append(env, "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1", "MYSQL_ALLOW_EMPTY_PASSWORD=yes", "ALLOW_EMPTY_PASSWORD=yes")

	hc := &container.HostConfig{NetworkMode: "none", Init: src.HostConfig.Init}
	for _, m := range src.Mounts {
		// Init scripts would seed the empty server before the restore.
		if m.Type == mount.TypeBind && !m.RW && !strings.HasPrefix(m.Destination, "/docker-entrypoint-") {
			hc.Binds = append(hc.Binds, m.Source+":"+m.Destination+":ro")
		}
	}
	if len(src.HostConfig.Tmpfs) > 0 {
		hc.Tmpfs = map[string]string{}
		for dst, opts := range src.HostConfig.Tmpfs {
			hc.Tmpfs[dst] = opts
		}
	}
	for _, m := range src.HostConfig.Mounts {
		if m.Type == mount.TypeTmpfs {
			hc.Mounts = append(hc.Mounts, m)
		}
	}
	cfg := &container.Config{
		// The image's ID: the same image even if its tag moved since.
		Image:      src.Image,
		Entrypoint: src.Config.Entrypoint,
		Cmd:        src.Config.Cmd,
		User:       src.Config.User,
		WorkingDir: src.Config.WorkingDir,
		StopSignal: src.Config.StopSignal,
		Env:        env,
		Labels:     map[string]string{labelDrill: label, labelSource: strings.TrimPrefix(src.Name, "/")},
	}
	return cfg, hc, nil
}

// credential tells the environment variables that carry or set up
// credentials (MARIADB_ROOT_PASSWORD, MYSQL_USER, MARIADB_DATABASE,
// MARIADB_ROOT_HOST, *_PASSWORD_FILE, ...), which a sandbox does without:
// its root has no password, and it makes no user or database of its own.
func credential(name string) bool {
	n := strings.ToUpper(name)
	for _, s := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "ROOT_HOST"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	for _, s := range []string{"_USER", "_DATABASE", "_PWD"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// readySandbox waits until the sandbox's server answers (the one that
// serves, not the one an image's entrypoint starts to initialise an empty
// data directory), then gives it the source's settings.
func (p *plugin) readySandbox(ctx context.Context, dc *docker.Client, s settings, name string, want serverVars) (serverVars, error) {
	ctx, cancel := context.WithTimeout(ctx, sandboxReady)
	defer cancel()
	var ss *session
	var last string
	for {
		var err error
		if ss == nil {
			ss, err = open(ctx, sandboxSettings(s, name))
		}
		if err == nil {
			var got serverVars
			if got, err = ss.serverVars(ctx); err == nil && got.SkipNetworking == want.SkipNetworking {
				break
			} else if err == nil {
				err = errors.New("the server that initialises the data directory answers; waiting for the one that serves")
			}
		}
		last = err.Error()
		info, ierr := dc.ContainerInspect(ctx, name)
		if ierr == nil && info.State != nil && !info.State.Running {
			closeSession(ss)
			return serverVars{}, fmt.Errorf("container %q stopped (%s, exit code %d) before its server answered%s", name, info.State.Status, info.State.ExitCode, lastLogs(dc, name))
		}
		select {
		case <-ctx.Done():
			closeSession(ss)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return serverVars{}, fmt.Errorf("the server in container %q did not answer within %s (last: %s)%s", name, sandboxReady, last, lastLogs(dc, name))
			}
			return serverVars{}, context.Cause(ctx)
		case <-time.After(time.Second):
		}
	}
	defer ss.Close()
	if !charsetName.MatchString(want.Charset) || !charsetName.MatchString(want.Collation) {
		return serverVars{}, fmt.Errorf("the source server's character set %q / collation %q are not names", want.Charset, want.Collation)
	}
	if _, err := ss.query(ctx, fmt.Sprintf("SET GLOBAL character_set_server = %s, GLOBAL collation_server = %s, GLOBAL max_allowed_packet = %d;",
		quoteString(want.Charset), quoteString(want.Collation), want.MaxPacket)); err != nil {
		return serverVars{}, fmt.Errorf("give the server in container %q the source's settings: %w", name, err)
	}
	got, err := ss.serverVars(ctx)
	if err != nil {
		return serverVars{}, fmt.Errorf("read the settings of the server in container %q: %w", name, err)
	}
	if got.Charset != want.Charset || got.Collation != want.Collation || got.MaxPacket != want.MaxPacket {
		return serverVars{}, fmt.Errorf("the server in container %q has %s where the source has %s", name, got.describe(), want.describe())
	}
	p.log.Info("sandbox ready", "container", name, "server", got.describe())
	return got, nil
}

func closeSession(ss *session) {
	if ss != nil {
		ss.Close()
	}
}

// lastLogs are a container's last log lines, for an error message.
func lastLogs(dc *docker.Client, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := dc.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "15"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b bytes.Buffer
	_, _ = stdcopy.StdCopy(&b, &b, rc)
	out := strings.TrimSpace(b.String())
	if out == "" {
		return "; it logged nothing"
	}
	var keep lines
	for _, l := range strings.Split(out, "\n") {
		keep.add(l)
	}
	return "; its last log lines: " + strings.Join(keep.last, " | ")
}

// sandboxSettings are the settings a restore or a check uses to reach the
// sandbox named: root through the socket, no password; the stage's
// choice of client and connections stays.
func sandboxSettings(s settings, name string) settings {
	return settings{Container: name, User: "root", Client: s.Client, RestoreJobs: s.RestoreJobs}
}

// inSandbox checks that the container a sandbox_container option names is
// a drill's sandbox, and returns the settings that reach it: the option must
// not turn a restore as root onto another container.
func inSandbox(ctx context.Context, s settings, name string) (settings, error) {
	dc, err := docker.New()
	if err != nil {
		return s, err
	}
	defer dc.Close()
	info, err := dc.ContainerInspect(ctx, name)
	if err != nil {
		if docker.IsNotFound(err) {
			return s, fmt.Errorf("the sandbox container %q (option %s) does not exist", name, optSandbox)
		}
		return s, fmt.Errorf("inspect the sandbox container %q: %w", name, err)
	}
	if info.Config == nil || info.Config.Labels[labelDrill] == "" {
		return s, fmt.Errorf("container %q is not a drill's sandbox (it has no %s label): option %s only names the containers `mbk drill` makes", name, labelDrill, optSandbox)
	}
	return sandboxSettings(s, name), nil
}

// Teardown removes every container labelled with the drill's label, with
// its anonymous volumes.
func (p *plugin) Teardown(ctx context.Context, _ sdk.Config, label string) (string, error) {
	if !drillLabel.MatchString(label) {
		return "", fmt.Errorf("teardown: the drill's label %q cannot name a container", label)
	}
	dc, err := docker.New()
	if err != nil {
		return "", fmt.Errorf("teardown: %w", err)
	}
	defer dc.Close()
	list, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelDrill+"="+label))})
	if err != nil {
		return "", fmt.Errorf("teardown: list the containers labelled %s=%s: %w", labelDrill, label, err)
	}
	var removed []string
	var errs []error
	for _, c := range list {
		name := c.ID[:min(12, len(c.ID))]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		err := dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			removed = append(removed, fmt.Sprintf("%q", name))
			p.log.Info("sandbox removed", "container", name, "label", label)
		case !docker.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove container %q: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("teardown: %w", err)
	}
	if len(removed) == 0 {
		return fmt.Sprintf("nothing to remove: no container labelled %s=%s", labelDrill, label), nil
	}
	what := "container"
	if len(removed) > 1 {
		what = "containers"
	}
	return fmt.Sprintf("removed %s %s with their anonymous volumes", what, strings.Join(removed, ", ")), nil
}

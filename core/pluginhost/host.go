// Package pluginhost finds plugin binaries and runs them with go-plugin.
//
// A binary named mbk-plugin-<name> in a plugin directory is plugin <name>.
// Directories are searched in order: the file's plugin_dir, $MBK_PLUGIN_DIR,
// ~/.mbk/plugins, the directory holding the mbk binary, then lib/mbk/plugins
// beside that directory (PREFIX/lib/mbk/plugins for PREFIX/bin/mbk). The built-in
// plugins (sha256, policy) are served inside mbk's own process, over the same
// gRPC protocol and socket as any plugin, so a stage never depends on where
// its code lives, and a run's plugins cost no idle process while the dump and
// the archive run.
//
// Only binaries from trusted places run: when mbk runs as root, a plugin
// binary and every directory above it must be owned by root and writable by
// no one else (checkTrusted). A pipeline file may pin a binary by its
// sha256, checked by go-plugin before it starts; a binary named like a
// built-in replaces it only when pinned.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
)

// Prefix of every plugin binary's name.
const Prefix = "mbk-plugin-"

// Found is a plugin that discovery located.
type Found struct {
	Name    string
	Path    string
	Builtin bool
	// Pinned says the binary at Path must have the sha256 the pipeline
	// file pins.
	Pinned bool
	// Ignored is a binary named like the built-in plugin Name, not pinned,
	// so not used.
	Ignored string
	// Err is why the plugin cannot be used (Discover only): a refused
	// binary, a pin without one.
	Err error
}

// Host starts plugins on demand and keeps each running for its lifetime.
type Host struct {
	dirs     []string
	builtins map[string]func(hclog.Logger) sdk.Plugin
	pins     map[string][]byte
	log      hclog.Logger
	// asRoot: binaries must come from places only root can change.
	asRoot bool
	// warned are the ignored binaries already warned of (Find runs under
	// mu, from Get, and without it).
	warnMu sync.Mutex
	warned map[string]bool

	reattach map[string]*plugin.ReattachConfig

	mu      sync.Mutex
	running map[string]*running
	starts  int
}

type running struct {
	pid     int // also the plugin's process group; 0 when reattached
	client  *plugin.Client
	sdk     *Client
	info    sdk.Info
	path    string
	schemas map[string]spec.Schema // by kind, asked once
	// stopServer ends a built-in plugin served in this process.
	stopServer func()
}

// Options configures a Host.
type Options struct {
	// PluginDir is the file's plugin_dir, searched first.
	PluginDir string
	// Builtins are the plugins mbk serves itself (sha256, policy): inside
	// its own process, over the same protocol as any plugin, so a stage
	// does not depend on where its code lives and costs no process of its
	// own. A binary of the same name in a plugin directory replaces one
	// only when it is pinned.
	Builtins map[string]func(hclog.Logger) sdk.Plugin
	// Pins are the sha256 digests a plugin's binary must have (the
	// pipeline file's plugin "NAME" { sha256 = "..." } blocks).
	Pins   map[string][]byte
	Logger hclog.Logger
	// Reattach names plugins already running (served with sdk.WithDebug,
	// in a test or under a debugger) to use instead of starting a binary.
	// MBK_REATTACH_PLUGINS adds to it.
	Reattach map[string]*plugin.ReattachConfig
}

// New makes a host with the standard search path.
func New(opts Options) *Host {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	h := &Host{dirs: SearchPath(opts.PluginDir), builtins: opts.Builtins, pins: opts.Pins, log: log, asRoot: os.Geteuid() == 0,
		warned: map[string]bool{}, running: map[string]*running{}, reattach: map[string]*plugin.ReattachConfig{}}
	if env := os.Getenv(wire.ReattachEnv); env != "" {
		rc, err := parseReattach(env)
		if err != nil {
			log.Warn("ignoring "+wire.ReattachEnv, "error", err)
		}
		maps.Copy(h.reattach, rc)
	}
	maps.Copy(h.reattach, opts.Reattach)
	return h
}

// SearchPath lists plugin directories in search order.
func SearchPath(pluginDir string) []string {
	var dirs []string
	if pluginDir != "" {
		dirs = append(dirs, pluginDir)
	}
	if d := os.Getenv("MBK_PLUGIN_DIR"); d != "" {
		dirs = append(dirs, filepath.SplitList(d)...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".mbk", "plugins"))
	}
	if self, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(self); err == nil {
			self = real
		}
		// Beside the binary (a build tree's bin/), then where make install
		// and the package put the plugins: PREFIX/lib/mbk/plugins for
		// PREFIX/bin/mbk, so an installed mbk needs no configuration.
		dirs = append(dirs, filepath.Dir(self), filepath.Join(filepath.Dir(filepath.Dir(self)), "lib", "mbk", "plugins"))
	}
	return dirs
}

// Dirs returns the directories searched, in order.
func (h *Host) Dirs() []string { return h.dirs }

// Find locates one plugin: the first executable named for it on the search
// path, or the built-in. A binary named like a built-in is used only when
// pinned; otherwise the built-in is, and a warning names the binary. As
// root, a binary from a place others could change is refused
// (*UntrustedError), not passed over for the next directory.
func (h *Host) Find(name string) (Found, error) {
	if _, ok := h.reattach[name]; ok {
		return Found{Name: name, Path: "reattached"}, nil
	}
	path := h.search(name)
	_, builtin := h.builtins[name]
	_, pinned := h.pins[name]
	switch {
	case path == "" && pinned:
		return Found{Name: name, Pinned: true}, fmt.Errorf("plugin %q is pinned by its sha256, but no executable %s%s is in %s", name, Prefix, name, strings.Join(h.dirs, ", "))
	case path == "" && builtin:
		return Found{Name: name, Builtin: true}, nil
	case path == "":
		return Found{}, fmt.Errorf("plugin %q not found: no executable %s%s in %s", name, Prefix, name, strings.Join(h.dirs, ", "))
	case builtin && !pinned:
		h.warnMu.Lock()
		warn := !h.warned[path]
		h.warned[path] = true
		h.warnMu.Unlock()
		if warn {
			h.log.Warn(fmt.Sprintf("ignoring %s: it is named like the built-in plugin %q, which it replaces only when the pipeline file pins it (plugin %q { sha256 = \"...\" }); the built-in is used", path, name, name))
		}
		return Found{Name: name, Builtin: true, Ignored: path}, nil
	}
	f := Found{Name: name, Path: path, Pinned: pinned}
	if h.asRoot {
		if err := checkTrusted(name, path); err != nil {
			return f, err
		}
	}
	return f, nil
}

// search returns the first executable named for plugin name on the search
// path, or "".
func (h *Host) search(name string) string {
	for _, d := range h.dirs {
		p := filepath.Join(d, Prefix+name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Discover lists every plugin there is, by name: each binary on the search
// path, each built-in and each pin, as Find resolves it (Err saying why one
// cannot be used).
func (h *Host) Discover() []Found {
	names := map[string]bool{}
	for _, d := range h.dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if name, ok := strings.CutPrefix(e.Name(), Prefix); ok && name != "" && !e.IsDir() {
				names[name] = true
			}
		}
	}
	for name := range h.builtins {
		names[name] = true
	}
	for name := range h.pins {
		names[name] = true
	}
	var out []Found
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if h.search(name) == "" && h.builtins[name] == nil && h.pins[name] == nil {
			continue // a file named like a plugin, not executable
		}
		f, err := h.Find(name)
		f.Name, f.Err = name, err
		out = append(out, f)
	}
	return out
}

// Get returns a running plugin, starting it on first use. A plugin stays
// running until Kill or Close: a run starts each plugin once, for the
// validation, the planning and every stage it serves.
func (h *Host) Get(ctx context.Context, name string) (*Client, sdk.Info, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.running[name]; ok && !r.client.Exited() {
		return r.sdk, r.info, nil
	}
	found, err := h.Find(name)
	if err != nil {
		return nil, sdk.Info{}, err
	}
	r, err := h.start(ctx, found)
	if err != nil {
		return nil, sdk.Info{}, err
	}
	h.running[name] = r
	h.starts++
	return r.sdk, r.info, nil
}

// Starts counts the plugin processes this host started (or reattached to).
func (h *Host) Starts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.starts
}

// Schema returns what a kind of a plugin accepts, asking the plugin once.
func (h *Host) Schema(ctx context.Context, name, kind string) (spec.Schema, error) {
	c, _, err := h.Get(ctx, name)
	if err != nil {
		return spec.Schema{}, err
	}
	h.mu.Lock()
	r := h.running[name]
	s, ok := r.schemas[kind]
	h.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err = c.Schema(ctx, kind)
	if err != nil {
		return spec.Schema{}, err
	}
	h.mu.Lock()
	r.schemas[kind] = s
	h.mu.Unlock()
	return s, nil
}

// Path says where a plugin was started from ("built-in" for mbk's own).
func (h *Host) Path(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.running[name]; ok {
		return r.path
	}
	return ""
}

func (h *Host) start(ctx context.Context, f Found) (r *running, err error) {
	plugins := plugin.PluginSet{wire.PluginKey: &grpcPlugin{}}
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: plugins},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           quiet{h.log.Named(f.Name)},
		StartTimeout:     30 * time.Second,
	}
	var cmd *exec.Cmd
	path := f.Path
	if rc, ok := h.reattach[f.Name]; ok {
		cfg.Reattach = rc
		// A reattached plugin negotiates no version: it serves this one.
		cfg.Plugins = plugins
	} else if f.Builtin {
		rc, stop, err := serveBuiltin(f.Name, h.builtins[f.Name], quiet{h.log.Named(f.Name)})
		if err != nil {
			return nil, fmt.Errorf("plugin %q (built-in): %w", f.Name, err)
		}
		cfg.Reattach, cfg.Plugins = rc, plugins
		path = "built-in"
		defer func() {
			if r == nil {
				stop()
			} else {
				r.stopServer = stop
			}
		}()
	} else {
		cmd = exec.Command(f.Path)
		if pin, ok := h.pins[f.Name]; ok {
			// go-plugin hashes the binary before it starts it.
			cfg.SecureConfig = &plugin.SecureConfig{Checksum: pin, Hash: sha256.New()}
		}
	}
	// The kernel tells the plugin when mbk dies, even by SIGKILL: an orphan
	// would keep a dump running and a database snapshot open. SIGTERM, not
	// SIGKILL, so the SDK can cancel its calls and stop what they started
	// (a dump inside a container survives its client's disconnection).
	// Its own process group: a signal for mbk's group (Ctrl-C, systemd's
	// stop, timeout(1)) must reach mbk alone, which then cancels its calls
	// and lets the plugins clean up, instead of killing them mid-stream.
	if cmd != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
		cmd.Env = []string{"MBK_PLUGIN_NAME=" + f.Name} // go-plugin adds the host environment
		cfg.Cmd = cmd
	}
	client := plugin.NewClient(cfg)
	fail := func(err error) (*running, error) {
		client.Kill()
		return nil, fmt.Errorf("plugin %q (%s): %w", f.Name, path, err)
	}
	rpc, err := client.Client()
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		client.Kill()
		got, herr := fileSHA256(f.Path)
		if herr != nil {
			got = "unreadable (" + herr.Error() + ")"
		}
		return nil, &PinError{Plugin: f.Name, Binary: f.Path, Want: hex.EncodeToString(h.pins[f.Name]), Got: got}
	}
	if err != nil {
		return fail(fmt.Errorf("start: %w", err))
	}
	raw, err := rpc.Dispense(wire.PluginKey)
	if err != nil {
		return fail(err)
	}
	c, ok := raw.(*Client)
	if !ok {
		return fail(fmt.Errorf("unexpected client type %T", raw))
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := c.Describe(dctx)
	if err != nil {
		return fail(fmt.Errorf("describe: %w", err))
	}
	if info.Name != f.Name {
		return fail(fmt.Errorf("the binary says it is plugin %q", info.Name))
	}
	r = &running{client: client, sdk: c, info: info, path: path, schemas: map[string]spec.Schema{}}
	if cmd != nil {
		r.pid = cmd.Process.Pid
	}
	return r, nil
}

// grpcPlugin is the host's end of go-plugin's plugin entry.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the host serves no plugin")
}

func (grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return newClient(c), nil
}

// parseReattach reads MBK_REATTACH_PLUGINS, as a plugin in debug mode
// prints it.
func parseReattach(s string) (map[string]*plugin.ReattachConfig, error) {
	var in map[string]struct {
		Protocol        string
		ProtocolVersion int
		Pid             int
		Test            bool
		Addr            struct{ Network, String string }
	}
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, err
	}
	out := map[string]*plugin.ReattachConfig{}
	for name, r := range in {
		var addr net.Addr
		switch r.Addr.Network {
		case "unix":
			addr = &net.UnixAddr{Name: r.Addr.String, Net: "unix"}
		case "tcp":
			a, err := net.ResolveTCPAddr("tcp", r.Addr.String)
			if err != nil {
				return nil, fmt.Errorf("plugin %q: %w", name, err)
			}
			addr = a
		default:
			return nil, fmt.Errorf("plugin %q: unknown network %q", name, r.Addr.Network)
		}
		out[name] = &plugin.ReattachConfig{Protocol: plugin.Protocol(r.Protocol), ProtocolVersion: r.ProtocolVersion, Pid: r.Pid, Test: r.Test, Addr: addr}
	}
	return out, nil
}

// Kill stops one plugin, e.g. after it timed out, so its children stop too.
func (h *Host) Kill(name string) {
	h.mu.Lock()
	r, ok := h.running[name]
	delete(h.running, name)
	h.mu.Unlock()
	if ok {
		r.stop()
	}
}

// stop ends a plugin and everything it started: go-plugin stops the plugin
// process, and the group kill reaches its children (a plugin past its
// timeout may have left some).
func (r *running) stop() {
	r.client.Kill()
	if r.pid > 0 {
		_ = syscall.Kill(-r.pid, syscall.SIGKILL)
	}
	if r.stopServer != nil {
		r.stopServer()
	}
}

// serveBuiltin serves a built-in plugin inside this process (sdk.Serve in
// debug mode) and returns where the host reaches it and how to stop it.
func serveBuiltin(name string, factory func(hclog.Logger) sdk.Plugin, log hclog.Logger) (*plugin.ReattachConfig, func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- sdk.Serve(name, factory, sdk.WithDebug(ctx, reattach, closed), sdk.WithLogger(log))
	}()
	select {
	case rc := <-reattach:
		return rc, func() { cancel(); <-closed }, nil
	case err := <-served:
		cancel()
		if err == nil {
			err = errors.New("stopped before serving")
		}
		return nil, nil, err
	}
}

// Close stops every plugin.
func (h *Host) Close() {
	h.mu.Lock()
	all := h.running
	h.running = map[string]*running{}
	h.mu.Unlock()
	for _, r := range all {
		r.stop()
	}
}

// Running lists the plugins running now.
func (h *Host) Running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.running))
	for name := range h.running {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// ProtocolVersion is the plugin protocol this host speaks.
const ProtocolVersion = wire.ProtocolVersion

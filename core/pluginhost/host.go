// Package pluginhost finds plugin binaries and runs them with go-plugin.
//
// A binary named mbk-plugin-<name> in a plugin directory is plugin <name>.
// Directories are searched in order: the file's plugin_dir, $MBK_PLUGIN_DIR,
// ~/.mbk/plugins, then the directory holding the mbk binary. The built-in
// plugins (sha256, policy) are served by re-executing mbk itself, the way
// Packer runs its bundled plugins, so a stage never depends on where its code
// lives; a binary of the same name in a plugin directory replaces them.
package pluginhost

import (
	"context"
	"fmt"
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

	"github.com/mbk-backup/mbk/core/sdk"
)

// Prefix of every plugin binary's name.
const Prefix = "mbk-plugin-"

// Found is a plugin that discovery located.
type Found struct {
	Name    string
	Path    string
	Builtin bool
}

// Host starts plugins on demand and keeps each running for its lifetime.
type Host struct {
	dirs     []string
	builtins []string
	// SelfCommand builds the command that serves a built-in plugin.
	SelfCommand func(name string) *exec.Cmd
	log         hclog.Logger

	mu      sync.Mutex
	running map[string]*running
}

type running struct {
	pid    int // also the plugin's process group
	client *plugin.Client
	sdk    *sdk.Client
	info   sdk.Info
	path   string
}

// Options configures a Host.
type Options struct {
	// PluginDir is the file's plugin_dir, searched first.
	PluginDir string
	// Builtins are the plugins the mbk binary serves itself.
	Builtins []string
	Logger   hclog.Logger
}

// New makes a host with the standard search path.
func New(opts Options) *Host {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	h := &Host{dirs: SearchPath(opts.PluginDir), builtins: opts.Builtins, log: log, running: map[string]*running{}}
	h.SelfCommand = func(name string) *exec.Cmd {
		self, err := os.Executable()
		if err != nil {
			self = os.Args[0]
		}
		return exec.Command(self, "__plugin", name)
	}
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
		dirs = append(dirs, filepath.Dir(self))
	}
	return dirs
}

// Dirs returns the directories searched, in order.
func (h *Host) Dirs() []string { return h.dirs }

// Find locates one plugin.
func (h *Host) Find(name string) (Found, error) {
	for _, d := range h.dirs {
		p := filepath.Join(d, Prefix+name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return Found{Name: name, Path: p}, nil
		}
	}
	if slices.Contains(h.builtins, name) {
		return Found{Name: name, Builtin: true}, nil
	}
	return Found{}, fmt.Errorf("plugin %q not found: no executable %s%s in %s", name, Prefix, name, strings.Join(h.dirs, ", "))
}

// Discover lists every plugin found, first match per name wins.
func (h *Host) Discover() []Found {
	seen := map[string]bool{}
	var out []Found
	for _, d := range h.dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), Prefix)
			if !ok || seen[name] || e.IsDir() {
				continue
			}
			p := filepath.Join(d, e.Name())
			if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
				continue
			}
			seen[name] = true
			out = append(out, Found{Name: name, Path: p})
		}
	}
	for _, b := range h.builtins {
		if !seen[b] {
			out = append(out, Found{Name: b, Builtin: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns a running plugin, starting it on first use.
func (h *Host) Get(ctx context.Context, name string) (*sdk.Client, sdk.Info, error) {
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
	return r.sdk, r.info, nil
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

func (h *Host) start(ctx context.Context, f Found) (*running, error) {
	var cmd *exec.Cmd
	path := f.Path
	if f.Builtin {
		cmd = h.SelfCommand(f.Name)
		path = "built-in"
	} else {
		cmd = exec.Command(f.Path)
	}
	// The kernel tells the plugin when mbk dies, even by SIGKILL: an orphan
	// would keep a dump running and a database snapshot open. SIGTERM, not
	// SIGKILL, so the SDK can cancel its calls and stop what they started
	// (a dump inside a container survives its client's disconnection).
	// Its own process group: a signal for mbk's group (Ctrl-C, systemd's
	// stop, timeout(1)) must reach mbk alone, which then cancels its calls
	// and lets the plugins clean up, instead of killing them mid-stream.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	cmd.Env = []string{"MBK_PLUGIN_NAME=" + f.Name} // go-plugin adds the host environment
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.PluginSets(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           quiet{h.log.Named(f.Name)},
		StartTimeout:     30 * time.Second,
	})
	fail := func(err error) (*running, error) {
		client.Kill()
		return nil, fmt.Errorf("plugin %q (%s): %w", f.Name, path, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("start: %w", err))
	}
	raw, err := rpc.Dispense("mbk")
	if err != nil {
		return fail(err)
	}
	c, ok := raw.(*sdk.Client)
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
	return &running{pid: cmd.Process.Pid, client: client, sdk: c, info: info, path: path}, nil
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

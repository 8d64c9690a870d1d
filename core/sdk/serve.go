package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
)

// ServeOpt changes how Serve runs a plugin.
type ServeOpt func(*serveOptions)

type serveOptions struct {
	log hclog.Logger
	// debug, when set, serves in this process (go-plugin's test mode)
	// instead of for a host that started the binary.
	debug *plugin.ServeTestConfig
	// managed prints the reattach settings and waits for Ctrl-C.
	managed bool
}

// WithLogger sets the plugin's logger. By default it writes JSON to stderr,
// which the host re-levels and adds to its own log.
func WithLogger(log hclog.Logger) ServeOpt { return func(o *serveOptions) { o.log = log } }

// WithDebug serves the plugin inside this process, for a test or a
// debugger, until ctx ends: the settings a host needs to reach it are sent
// on reattach, and closed (if not nil) is closed once it has stopped. A host
// reaches such a plugin through MBK_REATTACH_PLUGINS, or
// pluginhost.Options.Reattach in Go.
func WithDebug(ctx context.Context, reattach chan<- *plugin.ReattachConfig, closed chan<- struct{}) ServeOpt {
	return func(o *serveOptions) {
		o.debug = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	}
}

// WithManagedDebug serves the plugin inside this process (run it under a
// debugger: `dlv exec mbk-plugin-NAME -- -debug`) and prints the
// MBK_REATTACH_PLUGINS setting under which mbk uses it instead of starting
// the binary. It serves until interrupted (Ctrl-C).
func WithManagedDebug() ServeOpt { return func(o *serveOptions) { o.managed = true } }

// Main is the whole main function of a plugin binary: it serves the plugin
// named name (with -debug: in managed debug mode, see WithManagedDebug) and
// exits non-zero with the reason when serving fails.
func Main(name string, factory func(log hclog.Logger) Plugin) {
	fs := flag.NewFlagSet(filepath.Base(os.Args[0]), flag.ExitOnError)
	debug := fs.Bool("debug", false, "serve in this process for a debugger and print the MBK_REATTACH_PLUGINS setting for mbk")
	_ = fs.Parse(os.Args[1:])
	var opts []ServeOpt
	if *debug {
		opts = append(opts, WithManagedDebug())
	}
	if err := Serve(name, factory, opts...); err != nil {
		fmt.Fprintf(os.Stderr, "mbk-plugin-%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Serve runs the plugin named name. It returns when the host is done with
// it, or at once with an error when the plugin cannot be served: its
// Describe names another plugin or no kind, or a schema it declares is
// broken. Run by hand, the binary explains that it is a plugin and exits.
func Serve(name string, factory func(log hclog.Logger) Plugin, opts ...ServeOpt) error {
	LeanGC()
	var o serveOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr, JSONFormat: !o.managed})
	}
	srv := newServer(factory(o.log))
	if err := srv.check(name); err != nil {
		return err
	}
	cfg := &plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: {wire.PluginKey: &grpcPlugin{srv: srv}}},
		Logger:           o.log,
	}
	// Calls in flight are cancelled when the plugin is told to stop: a
	// plugin process of its own on SIGTERM, one in debug mode when its
	// context ends.
	var g *grace
	switch {
	case o.managed:
		// Ctrl-C cancels the calls in flight, then stops serving.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		g = &grace{ctx: ctx}
	case o.debug != nil:
		g = &grace{ctx: o.debug.Context}
	default:
		g = newGrace(o.log)
	}
	cfg.GRPCServer = func(opts []grpc.ServerOption) *grpc.Server {
		return grpc.NewServer(append(opts, grpc.UnaryInterceptor(g.intercept))...)
	}
	if o.managed {
		return serveManaged(g.ctx, name, cfg)
	}
	cfg.Test = o.debug
	plugin.Serve(cfg)
	return nil
}

// check refuses a plugin the core could not use, before any host sees it.
// It reads each kind's schema, once for the process.
func (srv *server) check(name string) error {
	info := srv.impl.Describe()
	if info.Name != name {
		return fmt.Errorf("Describe names plugin %q, but it is served as %q", info.Name, name)
	}
	if len(info.Kinds) == 0 {
		return fmt.Errorf("plugin %q serves no stage kind", name)
	}
	for _, k := range info.Kinds {
		if !slices.Contains(Kinds(), k) {
			return fmt.Errorf("plugin %q claims kind %q; the kinds are %v", name, k, Kinds())
		}
		s, err := srv.schema(k)
		if err != nil {
			return fmt.Errorf("plugin %q: schema of %s: %w", name, k, err)
		}
		if err := s.Check(); err != nil {
			return fmt.Errorf("plugin %q: schema of %s: %w", name, k, err)
		}
		if len(s.RestoreOptions) > 0 && k != KindDump && k != KindArchive {
			return fmt.Errorf("plugin %q: only dump and archive stages restore, but %s declares restore options", name, k)
		}
		if len(s.Events) > 0 && k != KindNotify {
			return fmt.Errorf("plugin %q: only notify stages hear events, but %s declares some", name, k)
		}
	}
	return nil
}

// serveManaged serves in this process and prints how to reach it.
func serveManaged(ctx context.Context, name string, cfg *plugin.ServeConfig) error {
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	go plugin.Serve(cfg)
	select {
	case rc := <-reattach:
		b, err := json.Marshal(map[string]reattachJSON{name: toReattachJSON(rc)})
		if err != nil {
			return err
		}
		fmt.Printf("Plugin %q is serving in debug mode. Run mbk with:\n\n\t%s='%s'\n\nCtrl-C stops it.\n", name, wire.ReattachEnv, b)
	case <-closed:
		return errors.New("the plugin stopped before it could be reached")
	}
	<-closed
	return nil
}

// reattachJSON is go-plugin's reattach settings in the form
// MBK_REATTACH_PLUGINS holds them (its Addr is an interface).
type reattachJSON struct {
	Protocol        string
	ProtocolVersion int
	Pid             int
	Test            bool
	Addr            struct{ Network, String string }
}

func toReattachJSON(rc *plugin.ReattachConfig) reattachJSON {
	r := reattachJSON{Protocol: string(rc.Protocol), ProtocolVersion: rc.ProtocolVersion, Pid: rc.Pid, Test: rc.Test}
	r.Addr.Network, r.Addr.String = rc.Addr.Network(), rc.Addr.String()
	return r
}

// graceTime is how long a plugin told to stop (SIGTERM) gives its calls in
// flight to clean up: the host sets SIGTERM as the plugin's parent-death
// signal, so this is what runs when mbk itself is killed.
const graceTime = 20 * time.Second

// grace cancels every call in flight on SIGTERM and lets them clean up (stop
// a dump inside a container, remove a helper container) before exiting.
type grace struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGrace(log hclog.Logger) *grace {
	g := &grace{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	go func() {
		<-ch
		log.Warn("terminating: cancelling calls in flight")
		g.cancel()
		done := make(chan struct{})
		go func() { g.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(graceTime):
			log.Error("calls still running after the grace period; exiting anyway")
		}
		os.Exit(1)
	}()
	return g
}

func (g *grace) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	g.wg.Add(1)
	defer g.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	return h(ctx, req)
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := p.srv
	pb.RegisterPluginServer(s, &pluginServer{server: srv})
	kinds := srv.impl.Describe().Kinds
	if src, ok := srv.impl.(Source); ok {
		if slices.Contains(kinds, KindDump) {
			pb.RegisterDumpServer(s, &dumpServer{sourceServer: sourceServer{srv, src}})
		}
		if slices.Contains(kinds, KindArchive) {
			pb.RegisterArchiveServer(s, &archiveServer{sourceServer: sourceServer{srv, src}})
		}
	}
	if c, ok := srv.impl.(Checksummer); ok && slices.Contains(kinds, KindChecksum) {
		pb.RegisterChecksumServer(s, &checksumServer{srv: srv, impl: c})
	}
	if r, ok := srv.impl.(Retainer); ok && slices.Contains(kinds, KindRetain) {
		pb.RegisterRetainServer(s, &retainServer{srv: srv, impl: r})
	}
	if st, ok := srv.impl.(Storer); ok && slices.Contains(kinds, KindStore) {
		pb.RegisterStoreServer(s, &storeServer{srv: srv, impl: st})
	}
	if n, ok := srv.impl.(Notifier); ok && slices.Contains(kinds, KindNotify) {
		pb.RegisterNotifyServer(s, &notifyServer{srv: srv, impl: n})
	}
	return nil
}

// GRPCClient belongs to the host (core/pluginhost).
func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the plugin side has no client")
}

// server decodes each stage's settings once: a run sends the same wire form
// for validation, planning and every artifact, and the plugin process lives
// for the whole run.
type server struct {
	impl Plugin

	mu      sync.Mutex
	schemas map[string]Schema
	configs map[string]Config // by kind and wire form
}

// maxConfigs bounds the decoded settings kept: a run has a few stages.
const maxConfigs = 64

func newServer(impl Plugin) *server {
	return &server{impl: impl, schemas: map[string]Schema{}, configs: map[string]Config{}}
}

func (s *server) schema(kind string) (Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc, ok := s.schemas[kind]; ok {
		return sc, nil
	}
	sc, err := s.impl.Schema(kind)
	if err != nil {
		return Schema{}, err
	}
	s.schemas[kind] = sc
	return sc, nil
}

func (s *server) config(p *pb.Config) (Config, error) {
	key := p.GetKind() + "\x00" + string(p.GetMsgpack())
	s.mu.Lock()
	c, ok := s.configs[key]
	s.mu.Unlock()
	if ok {
		return c, nil
	}
	schema, err := s.schema(p.GetKind())
	if err != nil {
		return Config{}, err
	}
	v, err := wire.DecodeValue(p.GetMsgpack(), schema.Attributes)
	if err != nil {
		return Config{}, fmt.Errorf("decode %s settings: %w", p.GetKind(), err)
	}
	c = Config{Kind: p.GetKind(), Value: withDefaults(v, schema.Attributes)}
	s.mu.Lock()
	if len(s.configs) >= maxConfigs {
		clear(s.configs)
	}
	s.configs[key] = c
	s.mu.Unlock()
	return c, nil
}

// restoreOptions decodes a restore's options against the kind's schema.
func (s *server) restoreOptions(kind string, b []byte) (Config, error) {
	schema, err := s.schema(kind)
	if err != nil {
		return Config{}, err
	}
	// None sent: every option left out.
	v, err := objectOf(schema.RestoreOptions, nil)
	if len(b) > 0 {
		v, err = wire.DecodeValue(b, schema.RestoreOptions)
	}
	if err != nil {
		return Config{}, fmt.Errorf("decode the restore options: %w", err)
	}
	return Config{Kind: restoreKind, Value: withDefaults(v, schema.RestoreOptions)}, nil
}

type pluginServer struct {
	pb.UnsafePluginServer
	*server
}

func (s *pluginServer) Describe(context.Context, *pb.Empty) (*pb.DescribeResponse, error) {
	i := s.impl.Describe()
	return &pb.DescribeResponse{Name: i.Name, Version: i.Version, Kinds: i.Kinds, Description: i.Description}, nil
}

func (s *pluginServer) GetSchema(_ context.Context, r *pb.SchemaRequest) (*pb.SchemaResponse, error) {
	schema, err := s.schema(r.GetKind())
	if err != nil {
		return nil, err
	}
	return wire.SchemaToProto(schema)
}

func (s *pluginServer) ValidateConfig(ctx context.Context, r *pb.ConfigRequest) (*pb.DiagnosticsResponse, error) {
	v, ok := s.impl.(Validator)
	if !ok {
		return &pb.DiagnosticsResponse{}, nil
	}
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	return wire.DiagsToProto(v.ValidateConfig(ctx, cfg)), nil
}

func (s *pluginServer) Preflight(ctx context.Context, r *pb.ConfigRequest) (*pb.DiagnosticsResponse, error) {
	v, ok := s.impl.(Preflighter)
	if !ok {
		return &pb.DiagnosticsResponse{}, nil
	}
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	return wire.DiagsToProto(v.Preflight(ctx, cfg)), nil
}

// sourceServer is shared by the dump and archive services: both produce
// artifacts and restore them, through the side channel.
type sourceServer struct {
	*server
	src Source
}

func (s sourceServer) Plan(ctx context.Context, r *pb.ConfigRequest) (*pb.PlanResponse, error) {
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	arts, err := s.src.Plan(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := &pb.PlanResponse{}
	for _, a := range arts {
		out.Artifacts = append(out.Artifacts, &pb.Artifact{Id: a.ID, Name: a.Name, Format: a.Format, Pool: a.Pool})
	}
	return out, nil
}

func (s sourceServer) Backup(ctx context.Context, r *pb.BackupRequest) (*pb.BackupResponse, error) {
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	conn, err := wire.Dial(r.GetSocket())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sw := wire.NewStreamWriter(conn)
	req := BackupRequest{Config: cfg, Artifact: r.GetArtifactId(), Set: r.GetSet()}
	if r.GetPoolSocket() != "" {
		pc, err := wire.DialPool(r.GetPoolSocket())
		if err != nil {
			return nil, err
		}
		defer pc.Close()
		req.Pool = pc
		req.CacheDir = r.GetCacheDir()
	}
	res, err := s.src.Backup(ctx, req, sw)
	if err != nil {
		return nil, err
	}
	if err := sw.Flush(); err != nil {
		return nil, fmt.Errorf("write the stream: %w", err)
	}
	// Close before answering, so that the core has seen every byte by the
	// time it reads our count.
	if err := conn.Close(); err != nil {
		return nil, fmt.Errorf("close the stream: %w", err)
	}
	details, err := json.Marshal(res.Details)
	if err != nil {
		return nil, fmt.Errorf("encode details: %w", err)
	}
	return &pb.BackupResponse{Bytes: sw.N, DetailsJson: details, InfoFile: res.InfoFile, InfoText: res.InfoText}, nil
}

// restoreInputs decodes what a restore and a restore check are given: the
// settings, the restore options and what the backup recorded.
func (s sourceServer) restoreInputs(c *pb.Config, options, detailsJSON []byte) (cfg, opts Config, details map[string]any, err error) {
	if cfg, err = s.config(c); err != nil {
		return
	}
	if opts, err = s.restoreOptions(c.GetKind(), options); err != nil {
		return
	}
	details, err = wire.DecodeDetails(detailsJSON)
	return
}

func (s sourceServer) Restore(ctx context.Context, r *pb.RestoreRequest) (*pb.RestoreResponse, error) {
	cfg, opts, details, err := s.restoreInputs(r.GetConfig(), r.GetOptionsMsgpack(), r.GetDetailsJson())
	if err != nil {
		return nil, err
	}
	conn, err := wire.Dial(r.GetSocket())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cr := &wire.CountingReader{R: conn}
	req := RestoreRequest{Config: cfg, Artifact: r.GetArtifactId(), Options: opts, Details: details}
	res, err := s.src.Restore(ctx, req, cr)
	if err != nil {
		return nil, err
	}
	var one [1]byte
	if n, _ := io.ReadFull(cr, one[:]); n > 0 {
		return nil, wire.ErrShortRead
	}
	return &pb.RestoreResponse{Bytes: cr.N, Summary: res.Summary}, nil
}

func (s sourceServer) Sandbox(ctx context.Context, r *pb.SandboxRequest) (*pb.SandboxResponse, error) {
	sb, ok := s.src.(Sandboxer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this plugin makes no drill sandboxes")
	}
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	details, err := wire.DecodeDetails(r.GetDetailsJson())
	if err != nil {
		return nil, err
	}
	box, err := sb.Sandbox(ctx, SandboxRequest{Config: cfg, Artifact: r.GetArtifactId(), Label: r.GetLabel(), Details: details})
	if err != nil {
		return nil, err
	}
	return &pb.SandboxResponse{Options: box.Options, Summary: box.Summary}, nil
}

func (s sourceServer) Teardown(ctx context.Context, r *pb.TeardownRequest) (*pb.TeardownResponse, error) {
	sb, ok := s.src.(Sandboxer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this plugin makes no drill sandboxes")
	}
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	sum, err := sb.Teardown(ctx, cfg, r.GetLabel())
	if err != nil {
		return nil, err
	}
	return &pb.TeardownResponse{Summary: sum}, nil
}

func (s sourceServer) Check(ctx context.Context, r *pb.CheckRequest) (*pb.CheckResponse, error) {
	ck, ok := s.src.(Checker)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this plugin has no restore checks")
	}
	cfg, opts, details, err := s.restoreInputs(r.GetConfig(), r.GetOptionsMsgpack(), r.GetDetailsJson())
	if err != nil {
		return nil, err
	}
	res, err := ck.Check(ctx, CheckRequest{
		Config: cfg, Artifact: r.GetArtifactId(), Options: opts, Details: details,
		RefsIn: r.GetRefsIn(), RefsOut: r.GetRefsOut(),
		Sample: Sample{Part: int(r.GetSamplePart()), Of: int(r.GetSampleOf()), Min: int(r.GetSampleMin())},
	})
	if err != nil {
		return nil, err
	}
	out := &pb.CheckResponse{}
	for _, c := range res.Checks {
		out.Checks = append(out.Checks, &pb.Check{Name: c.Name, Ok: c.OK, Summary: c.Summary, Problems: c.Problems})
	}
	return out, nil
}

// The dump and archive services have the same shape; sourceServer serves both.
type dumpServer struct {
	pb.UnsafeDumpServer
	sourceServer
}

type archiveServer struct {
	pb.UnsafeArchiveServer
	sourceServer
}

type checksumServer struct {
	pb.UnimplementedChecksumServer
	srv  *server
	impl Checksummer
}

func (s *checksumServer) Sum(ctx context.Context, r *pb.ChecksumRequest) (*pb.ChecksumResponse, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	sums, err := s.impl.Sum(ctx, cfg, r.GetDir(), r.GetFiles())
	if err != nil {
		return nil, err
	}
	out := &pb.ChecksumResponse{}
	for _, f := range sums {
		out.Sums = append(out.Sums, &pb.FileSum{File: f.File, Algorithm: f.Algorithm, Hex: f.Hex, Size: f.Size})
	}
	return out, nil
}

type retainServer struct {
	pb.UnimplementedRetainServer
	srv  *server
	impl Retainer
}

func (s *retainServer) Plan(ctx context.Context, r *pb.RetainRequest) (*pb.RetainResponse, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(r.GetTimezone())
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", r.GetTimezone(), err)
	}
	in := RetainInput{Current: r.GetCurrent(), Location: loc}
	for _, si := range r.GetSets() {
		t, err := time.Parse(time.RFC3339, si.GetTime())
		if err != nil {
			return nil, fmt.Errorf("set %q: bad time: %w", si.GetName(), err)
		}
		in.Sets = append(in.Sets, SetInfo{Name: si.GetName(), Time: t, Complete: si.GetComplete()})
	}
	ds, err := s.impl.Decide(ctx, cfg, in)
	if err != nil {
		return nil, err
	}
	out := &pb.RetainResponse{}
	for _, d := range ds {
		out.Decisions = append(out.Decisions, &pb.Decision{Set: d.Set, Keep: d.Keep, Reasons: d.Reasons})
	}
	return out, nil
}

type notifyServer struct {
	pb.UnimplementedNotifyServer
	srv  *server
	impl Notifier
}

func (s *notifyServer) Send(ctx context.Context, r *pb.NotifyRequest) (*pb.NotifyResponse, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(r.GetReportJson(), &rep); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	summary, err := s.impl.Notify(ctx, cfg, r.GetEvent(), rep)
	if err != nil {
		return nil, err
	}
	return &pb.NotifyResponse{Summary: summary}, nil
}

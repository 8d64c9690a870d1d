package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/mbk-backup/mbk/core/sdk/proto"
)

// Serve runs a plugin. It returns only when the host is done with it. Run by
// hand, the binary explains that it is a plugin and exits.
func Serve(factory func(log hclog.Logger) Plugin) {
	log := hclog.New(&hclog.LoggerOptions{
		Level:      hclog.Debug,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(ServeConfig(factory(log), log))
}

// ServeConfig is the go-plugin configuration Serve uses, for hosts that serve
// a plugin from inside their own binary.
func ServeConfig(impl Plugin, log hclog.Logger) *plugin.ServeConfig {
	g := newGrace(log)
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(impl),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.UnaryInterceptor(g.intercept))...)
		},
		Logger: log,
	}
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

// PluginSets is the go-plugin version map; impl is nil on the host side.
func PluginSets(impl Plugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {pluginKey: &grpcPlugin{impl: impl}},
	}
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: p.impl}
	pb.RegisterPluginServer(s, &pluginServer{server: srv})
	kinds := p.impl.Describe().Kinds
	if src, ok := p.impl.(Source); ok {
		if slices.Contains(kinds, KindDump) {
			pb.RegisterDumpServer(s, &dumpServer{sourceServer: sourceServer{srv, src}})
		}
		if slices.Contains(kinds, KindArchive) {
			pb.RegisterArchiveServer(s, &archiveServer{sourceServer: sourceServer{srv, src}})
		}
	}
	if c, ok := p.impl.(Checksummer); ok && slices.Contains(kinds, KindChecksum) {
		pb.RegisterChecksumServer(s, &checksumServer{srv: srv, impl: c})
	}
	if r, ok := p.impl.(Retainer); ok && slices.Contains(kinds, KindRetain) {
		pb.RegisterRetainServer(s, &retainServer{srv: srv, impl: r})
	}
	if st, ok := p.impl.(Storer); ok && slices.Contains(kinds, KindStore) {
		pb.RegisterStoreServer(s, &storeServer{srv: srv, impl: st})
	}
	if n, ok := p.impl.(Notifier); ok && slices.Contains(kinds, KindNotify) {
		pb.RegisterNotifyServer(s, &notifyServer{srv: srv, impl: n})
	}
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return newClient(c), nil
}

type server struct{ impl Plugin }

func (s *server) config(p *pb.Config) (Config, error) {
	schema, err := s.impl.Schema(p.GetKind())
	if err != nil {
		return Config{}, err
	}
	return decodeConfig(p, schema)
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
	schema, err := s.impl.Schema(r.GetKind())
	if err != nil {
		return nil, err
	}
	return schema.toProto()
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
	return diagsToProto(v.ValidateConfig(ctx, cfg)), nil
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
	return diagsToProto(v.Preflight(ctx, cfg)), nil
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
		out.Artifacts = append(out.Artifacts, &pb.Artifact{Id: a.ID, Name: a.Name, Format: a.Format})
	}
	return out, nil
}

func (s sourceServer) Backup(ctx context.Context, r *pb.BackupRequest) (*pb.BackupResponse, error) {
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	conn, err := dial(r.GetSocket())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sw := newStreamWriter(conn)
	res, err := s.src.Backup(ctx, BackupRequest{Config: cfg, Artifact: r.GetArtifactId(), Set: r.GetSet()}, sw)
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
	return &pb.BackupResponse{Bytes: sw.n, DetailsJson: details, InfoFile: res.InfoFile, InfoText: res.InfoText}, nil
}

func (s sourceServer) Restore(ctx context.Context, r *pb.RestoreRequest) (*pb.RestoreResponse, error) {
	cfg, err := s.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	var details map[string]any
	if len(r.GetDetailsJson()) > 0 {
		if err := json.Unmarshal(r.GetDetailsJson(), &details); err != nil {
			return nil, fmt.Errorf("decode details: %w", err)
		}
	}
	conn, err := dial(r.GetSocket())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cr := &countingReader{r: conn}
	res, err := s.src.Restore(ctx, RestoreRequest{Config: cfg, Artifact: r.GetArtifactId(), Options: r.GetOptions(), Details: details}, cr)
	if err != nil {
		return nil, err
	}
	var one [1]byte
	if n, _ := io.ReadFull(cr, one[:]); n > 0 {
		return nil, errShortRead
	}
	return &pb.RestoreResponse{Bytes: cr.n, Summary: res.Summary}, nil
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

func diagsToProto(ds Diagnostics) *pb.DiagnosticsResponse {
	out := &pb.DiagnosticsResponse{}
	for _, d := range ds {
		out.Diagnostics = append(out.Diagnostics, &pb.Diagnostic{Error: d.Error, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute})
	}
	return out
}

func diagsFromProto(p *pb.DiagnosticsResponse) Diagnostics {
	var out Diagnostics
	for _, d := range p.GetDiagnostics() {
		out = append(out, Diagnostic{Error: d.Error, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute})
	}
	return out
}

package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/spec"
)

// Client is the core's handle on a running plugin: every call of the
// protocol, with the side channel for bulk bytes. Stage settings travel in
// their wire form (*pb.Config), encoded once when the stage is prepared.
type Client struct {
	plugin   pb.PluginClient
	dump     pb.DumpClient
	archive  pb.ArchiveClient
	checksum pb.ChecksumClient
	retain   pb.RetainClient
	store    pb.StoreClient
	notify   pb.NotifyClient
}

func newClient(c *grpc.ClientConn) *Client {
	return &Client{
		plugin:   pb.NewPluginClient(c),
		dump:     pb.NewDumpClient(c),
		archive:  pb.NewArchiveClient(c),
		checksum: pb.NewChecksumClient(c),
		retain:   pb.NewRetainClient(c),
		store:    pb.NewStoreClient(c),
		notify:   pb.NewNotifyClient(c),
	}
}

// Describe asks the plugin who it is.
func (c *Client) Describe(ctx context.Context) (sdk.Info, error) {
	r, err := c.plugin.Describe(ctx, &pb.Empty{})
	if err != nil {
		return sdk.Info{}, wire.RPCError(err)
	}
	return sdk.Info{Name: r.Name, Version: r.Version, Kinds: r.Kinds, Description: r.Description}, nil
}

// Schema asks for the settings a kind accepts.
func (c *Client) Schema(ctx context.Context, kind string) (spec.Schema, error) {
	r, err := c.plugin.GetSchema(ctx, &pb.SchemaRequest{Kind: kind})
	if err != nil {
		return spec.Schema{}, wire.RPCError(err)
	}
	return wire.SchemaFromProto(r)
}

// ValidateConfig asks the plugin to check a decoded stage body.
func (c *Client) ValidateConfig(ctx context.Context, cfg *pb.Config) (spec.Diagnostics, error) {
	r, err := c.plugin.ValidateConfig(ctx, &pb.ConfigRequest{Config: cfg})
	if err != nil {
		return nil, wire.RPCError(err)
	}
	return wire.DiagsFromProto(r), nil
}

// Preflight asks the plugin to check the live world.
func (c *Client) Preflight(ctx context.Context, cfg *pb.Config) (spec.Diagnostics, error) {
	r, err := c.plugin.Preflight(ctx, &pb.ConfigRequest{Config: cfg})
	if err != nil {
		return nil, wire.RPCError(err)
	}
	return wire.DiagsFromProto(r), nil
}

type sourceClient interface {
	Plan(ctx context.Context, in *pb.ConfigRequest, opts ...grpc.CallOption) (*pb.PlanResponse, error)
	Backup(ctx context.Context, in *pb.BackupRequest, opts ...grpc.CallOption) (*pb.BackupResponse, error)
	Restore(ctx context.Context, in *pb.RestoreRequest, opts ...grpc.CallOption) (*pb.RestoreResponse, error)
	Sandbox(ctx context.Context, in *pb.SandboxRequest, opts ...grpc.CallOption) (*pb.SandboxResponse, error)
	Teardown(ctx context.Context, in *pb.TeardownRequest, opts ...grpc.CallOption) (*pb.TeardownResponse, error)
	Check(ctx context.Context, in *pb.CheckRequest, opts ...grpc.CallOption) (*pb.CheckResponse, error)
}

func (c *Client) source(kind string) (sourceClient, error) {
	switch kind {
	case sdk.KindDump:
		return c.dump, nil
	case sdk.KindArchive:
		return c.archive, nil
	}
	return nil, fmt.Errorf("kind %q does not produce artifacts", kind)
}

// Plan asks a dump or archive plugin which artifacts it will produce.
func (c *Client) Plan(ctx context.Context, cfg *pb.Config) ([]sdk.Artifact, error) {
	src, err := c.source(cfg.GetKind())
	if err != nil {
		return nil, err
	}
	r, err := src.Plan(ctx, &pb.ConfigRequest{Config: cfg})
	if err != nil {
		return nil, wire.RPCError(err)
	}
	var out []sdk.Artifact
	for _, a := range r.GetArtifacts() {
		out = append(out, sdk.Artifact{ID: a.Id, Name: a.Name, Format: a.Format, Pool: a.Pool})
	}
	return out, nil
}

// BackupReply is what a plugin said about one artifact it produced.
type BackupReply struct {
	Bytes    int64
	Details  json.RawMessage
	InfoFile string
	InfoText string
}

// Backup asks a dump or archive plugin for one artifact and copies the raw
// stream into w. It succeeds only when the call returned OK and the bytes w
// received match the count the plugin reported: end of stream alone proves
// nothing.
func (c *Client) Backup(ctx context.Context, cfg *pb.Config, artifactID, set string, w io.Writer) (BackupReply, error) {
	return c.BackupPooled(ctx, cfg, artifactID, set, w, nil, "")
}

// PoolBackend is the core's pool as a plugin's backup reaches it (service
// Pool on a socket of its own).
type PoolBackend = wire.PoolBackend

// Blob names a pooled file's content.
type Blob = wire.Blob

// BackupPooled is Backup for an artifact planned with Pool: the plugin is
// served pool while it writes the stream, and may keep a cache in cacheDir
// ("" for none).
func (c *Client) BackupPooled(ctx context.Context, cfg *pb.Config, artifactID, set string, w io.Writer, pool PoolBackend, cacheDir string) (BackupReply, error) {
	src, err := c.source(cfg.GetKind())
	if err != nil {
		return BackupReply{}, err
	}
	poolSocket := ""
	if pool != nil {
		ps, err := wire.ServePool(pool)
		if err != nil {
			return BackupReply{}, err
		}
		defer ps.Stop()
		poolSocket = ps.Socket()
	}
	var r *pb.BackupResponse
	n, err := wire.Pull(ctx, w, "the stream", func(ctx context.Context, socket string) (int64, error) {
		r, err = src.Backup(ctx, &pb.BackupRequest{Config: cfg, ArtifactId: artifactID, Socket: socket, Set: set, PoolSocket: poolSocket, CacheDir: cacheDir})
		return r.GetBytes(), err
	})
	if err != nil {
		return BackupReply{}, err
	}
	return BackupReply{Bytes: n, Details: r.GetDetailsJson(), InfoFile: r.GetInfoFile(), InfoText: r.GetInfoText()}, nil
}

// RestoreReply is what a plugin said after a restore.
type RestoreReply struct {
	Bytes   int64
	Summary string
}

// Restore streams r (raw, uncompressed) into a dump or archive plugin, which
// puts it back where options (the stage's restore options, in wire form:
// see EncodeRestoreOptions) say. A pooled artifact's stream is given
// whole (core/pool's Expand).
func (c *Client) Restore(ctx context.Context, cfg *pb.Config, artifactID string, options []byte, details json.RawMessage, r io.Reader) (RestoreReply, error) {
	src, err := c.source(cfg.GetKind())
	if err != nil {
		return RestoreReply{}, err
	}
	var resp *pb.RestoreResponse
	send := func(conn *net.UnixConn) (int64, error, bool) {
		n, err := io.Copy(conn, r)
		if err == nil {
			err = conn.CloseWrite()
		}
		return n, err, false
	}
	n, err := wire.Push(ctx, send, func(ctx context.Context, socket string) (int64, error) {
		resp, err = src.Restore(ctx, &pb.RestoreRequest{Config: cfg, ArtifactId: artifactID, Socket: socket, OptionsMsgpack: options, DetailsJson: details})
		return resp.GetBytes(), err
	})
	if err != nil {
		return RestoreReply{}, err
	}
	return RestoreReply{Bytes: n, Summary: resp.GetSummary()}, nil
}

// ErrUnsupported says the plugin does not offer an optional call (a drill
// sandbox, restore checks).
var ErrUnsupported = errors.New("not offered by this plugin")

func optional(err error) error {
	if status.Code(err) == codes.Unimplemented {
		return ErrUnsupported
	}
	return wire.RPCError(err)
}

// Sandbox asks a dump or archive plugin for a throwaway target for a drill;
// ErrUnsupported when it makes none.
func (c *Client) Sandbox(ctx context.Context, cfg *pb.Config, artifactID, label string, details json.RawMessage) (sdk.Sandbox, error) {
	src, err := c.source(cfg.GetKind())
	if err != nil {
		return sdk.Sandbox{}, err
	}
	r, err := src.Sandbox(ctx, &pb.SandboxRequest{Config: cfg, ArtifactId: artifactID, Label: label, DetailsJson: details})
	if err != nil {
		return sdk.Sandbox{}, optional(err)
	}
	return sdk.Sandbox{Options: r.GetOptions(), Summary: r.GetSummary()}, nil
}

// Teardown asks a dump or archive plugin to remove what its sandboxes under
// label made; ErrUnsupported when it makes none.
func (c *Client) Teardown(ctx context.Context, cfg *pb.Config, label string) (string, error) {
	src, err := c.source(cfg.GetKind())
	if err != nil {
		return "", err
	}
	r, err := src.Teardown(ctx, &pb.TeardownRequest{Config: cfg, Label: label})
	if err != nil {
		return "", optional(err)
	}
	return r.GetSummary(), nil
}

// CheckArgs is what a restore check is asked about.
type CheckArgs struct {
	ArtifactID string
	Options    []byte // restore options in wire form (EncodeRestoreOptions)
	Details    json.RawMessage
	RefsIn     string
	RefsOut    string
	Sample     sdk.Sample
}

// Check asks a dump or archive plugin to check a restored artifact;
// ErrUnsupported when it has no checks.
func (c *Client) Check(ctx context.Context, cfg *pb.Config, a CheckArgs) ([]sdk.Check, error) {
	src, err := c.source(cfg.GetKind())
	if err != nil {
		return nil, err
	}
	r, err := src.Check(ctx, &pb.CheckRequest{
		Config: cfg, ArtifactId: a.ArtifactID, OptionsMsgpack: a.Options, DetailsJson: a.Details,
		RefsIn: a.RefsIn, RefsOut: a.RefsOut,
		SamplePart: int32(a.Sample.Part), SampleOf: int32(a.Sample.Of), SampleMin: int32(a.Sample.Min),
	})
	if err != nil {
		return nil, optional(err)
	}
	var out []sdk.Check
	for _, ch := range r.GetChecks() {
		out = append(out, sdk.Check{Name: ch.GetName(), OK: ch.GetOk(), Summary: ch.GetSummary(), Problems: ch.GetProblems()})
	}
	return out, nil
}

// Sum asks a checksum plugin to hash files in dir.
func (c *Client) Sum(ctx context.Context, cfg *pb.Config, dir string, files []string) ([]sdk.FileSum, error) {
	r, err := c.checksum.Sum(ctx, &pb.ChecksumRequest{Config: cfg, Dir: dir, Files: files})
	if err != nil {
		return nil, wire.RPCError(err)
	}
	var out []sdk.FileSum
	for _, s := range r.GetSums() {
		out = append(out, sdk.FileSum{File: s.File, Algorithm: s.Algorithm, Hex: s.Hex, Size: s.Size})
	}
	return out, nil
}

// Retain asks a retain plugin to decide which sets to keep.
func (c *Client) Retain(ctx context.Context, cfg *pb.Config, in sdk.RetainInput) ([]sdk.Decision, error) {
	req := &pb.RetainRequest{Config: cfg, Current: in.Current, Timezone: in.Location.String()}
	for _, s := range in.Sets {
		req.Sets = append(req.Sets, &pb.SetInfo{Name: s.Name, Time: s.Time.Format(time.RFC3339), Complete: s.Complete})
	}
	r, err := c.retain.Plan(ctx, req)
	if err != nil {
		return nil, wire.RPCError(err)
	}
	var out []sdk.Decision
	for _, d := range r.GetDecisions() {
		out = append(out, sdk.Decision{Set: d.Set, Keep: d.Keep, Reasons: d.Reasons})
	}
	return out, nil
}

// Notify asks a notify plugin to send a report.
func (c *Client) Notify(ctx context.Context, cfg *pb.Config, event string, rep sdk.Report) (string, error) {
	b, err := json.Marshal(rep)
	if err != nil {
		return "", err
	}
	r, err := c.notify.Send(ctx, &pb.NotifyRequest{Config: cfg, Event: event, ReportJson: b})
	if err != nil {
		return "", wire.RPCError(err)
	}
	return r.GetSummary(), nil
}

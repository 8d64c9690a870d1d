// Package wire is what both ends of the plugin protocol share and nobody
// else sees: the handshake, the generated gRPC code (pb), the side channel
// that carries bulk bytes, and the conversions between the protocol's
// messages and the SDK's types. It is internal to core: core/sdk (the
// plugin's end) and core/pluginhost (the host's end) import it; a plugin
// author never does.
package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"github.com/zclconf/go-cty/cty/msgpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/spec"
)

// ProtocolVersion is bumped on any incompatible change to pb/mbk.proto.
// 2: typed restore options declared by the plugin; whole-number settings.
const ProtocolVersion = 2

// PluginKey is the single go-plugin entry every mbk plugin serves.
const PluginKey = "mbk"

// Handshake makes a plugin binary run by hand explain itself instead of
// waiting silently for a host.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "MBK_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "mbk-plugin-7c1f0d5e-moodle-backups",
}

// ReattachEnv names the environment variable through which a host finds
// plugins already running (under a debugger): a JSON object of plugin name
// to go-plugin reattach configuration, printed by a plugin in debug mode.
const ReattachEnv = "MBK_REATTACH_PLUGINS"

// RPCError turns a gRPC status into the plugin's own words.
func RPCError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("the plugin process stopped answering (crashed or killed): %s", st.Message())
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Unimplemented:
		return fmt.Errorf("the plugin does not implement this: %s", st.Message())
	}
	return errors.New(st.Message())
}

// ---- schemas ----------------------------------------------------------------

func attrsToProto(as []spec.Attribute) ([]*pb.Attribute, error) {
	var out []*pb.Attribute
	for _, a := range as {
		tj, err := ctyjson.MarshalType(a.Type.Cty())
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		out = append(out, &pb.Attribute{
			Name: a.Name, TypeJson: tj, Required: a.Required, Whole: a.Type.Whole(),
			Sensitive: a.Sensitive, Description: a.Description, Flag: a.Flag,
		})
	}
	return out, nil
}

func attrsFromProto(ps []*pb.Attribute) ([]spec.Attribute, error) {
	var out []spec.Attribute
	for _, a := range ps {
		t, err := ctyjson.UnmarshalType(a.TypeJson)
		if err != nil {
			return nil, fmt.Errorf("attribute %q has a bad type: %w", a.Name, err)
		}
		out = append(out, spec.Attribute{
			Name: a.Name, Type: spec.TypeOf(t, a.Whole), Required: a.Required,
			Sensitive: a.Sensitive, Description: a.Description, Flag: a.Flag,
		})
	}
	return out, nil
}

// SchemaToProto is a plugin's schema as it travels. Defaults stay behind:
// they are the plugin's business.
func SchemaToProto(s spec.Schema) (*pb.SchemaResponse, error) {
	attrs, err := attrsToProto(s.Attributes)
	if err != nil {
		return nil, err
	}
	restore, err := attrsToProto(s.RestoreOptions)
	if err != nil {
		return nil, fmt.Errorf("restore option: %w", err)
	}
	return &pb.SchemaResponse{Attributes: attrs, RestoreOptions: restore, Events: s.Events}, nil
}

// SchemaFromProto is the host's copy of a plugin's schema.
func SchemaFromProto(p *pb.SchemaResponse) (spec.Schema, error) {
	attrs, err := attrsFromProto(p.GetAttributes())
	if err != nil {
		return spec.Schema{}, err
	}
	restore, err := attrsFromProto(p.GetRestoreOptions())
	if err != nil {
		return spec.Schema{}, fmt.Errorf("restore option: %w", err)
	}
	return spec.Schema{Attributes: attrs, RestoreOptions: restore, Events: p.GetEvents()}, nil
}

// ---- values -----------------------------------------------------------------

// EncodeValue is an object value of the attributes' implied type, in
// msgpack: a stage body or a set of restore options.
func EncodeValue(v cty.Value, attrs []spec.Attribute) ([]byte, error) {
	return msgpack.Marshal(v, spec.ObjectType(attrs))
}

// DecodeValue is EncodeValue's inverse.
func DecodeValue(b []byte, attrs []spec.Attribute) (cty.Value, error) {
	return msgpack.Unmarshal(b, spec.ObjectType(attrs))
}

// EncodeConfig is a decoded stage body in its wire form.
func EncodeConfig(kind string, v cty.Value, s spec.Schema) (*pb.Config, error) {
	b, err := EncodeValue(v, s.Attributes)
	if err != nil {
		return nil, err
	}
	return &pb.Config{Kind: kind, Msgpack: b}, nil
}

// ---- diagnostics ------------------------------------------------------------

// DiagsToProto is a plugin's verdict as it travels.
func DiagsToProto(ds spec.Diagnostics) *pb.DiagnosticsResponse {
	out := &pb.DiagnosticsResponse{}
	for _, d := range ds {
		out.Diagnostics = append(out.Diagnostics, &pb.Diagnostic{Error: d.Error, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute})
	}
	return out
}

// DiagsFromProto is DiagsToProto's inverse.
func DiagsFromProto(p *pb.DiagnosticsResponse) spec.Diagnostics {
	var out spec.Diagnostics
	for _, d := range p.GetDiagnostics() {
		out = append(out, spec.Diagnostic{Error: d.Error, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute})
	}
	return out
}

// DecodeDetails reads what a backup recorded about an artifact.
func DecodeDetails(b []byte) (map[string]any, error) {
	var details map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &details); err != nil {
			return nil, fmt.Errorf("decode details: %w", err)
		}
	}
	return details, nil
}

// ---- the two ends' own errors -------------------------------------------------

// ErrWriter remembers the first error of the writer it wraps, to tell the
// core's write failures from the plugin's.
type ErrWriter struct {
	W   io.Writer
	Err error
}

func (e *ErrWriter) Write(p []byte) (int, error) {
	n, err := e.W.Write(p)
	if err != nil && e.Err == nil {
		e.Err = err
	}
	return n, err
}

// ReadFrom copies r to its end: the core's writer reads the stream itself
// when it can (into its compressor's buffers), else through a buffer of
// StreamBuf. Its own failures are kept apart from the stream's.
func (e *ErrWriter) ReadFrom(r io.Reader) (int64, error) {
	src := &ErrReader{R: r}
	var n int64
	var err error
	if rf, ok := e.W.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.CopyBuffer(struct{ io.Writer }{e.W}, src, make([]byte, StreamBuf))
	}
	if err != nil && (src.Err == nil || !errors.Is(err, src.Err)) && e.Err == nil {
		e.Err = err
	}
	return n, err
}

// ErrReader remembers the first error of the reader it wraps, to tell the
// core's read failures from the plugin's.
type ErrReader struct {
	R   io.Reader
	Err error
}

func (e *ErrReader) Read(p []byte) (int, error) {
	n, err := e.R.Read(p)
	if err != nil && err != io.EOF && e.Err == nil {
		e.Err = err
	}
	return n, err
}

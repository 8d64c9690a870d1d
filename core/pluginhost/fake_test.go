package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

// fakeSchema covers the types a real plugin declares, with defaults.
var fakeSchema = sdk.Schema{RestoreOptions: fakeRestoreOptions, Attributes: []sdk.Attribute{
	{Name: "container", Type: sdk.String, Required: true, Description: "Database container name."},
	{Name: "port", Type: sdk.Int, Default: cty.NumberIntVal(3306), Description: "TCP port."},
	{Name: "password", Type: sdk.String, Sensitive: true, Description: "Database password."},
	{Name: "databases", Type: sdk.List(sdk.String), Default: cty.ListVal([]cty.Value{cty.StringVal("moodle")})},
	{Name: "labels", Type: sdk.Map(sdk.String)},
	{Name: "verify", Type: sdk.Bool, Default: cty.True},
}}

// fakeRestoreOptions are what the fake's restore accepts.
var fakeRestoreOptions = []sdk.Attribute{
	{Name: "target_database", Type: sdk.String, Flag: "target-database"},
	{Name: "clean", Type: sdk.Bool, Flag: "clean", Default: cty.False},
	{Name: "jobs", Type: sdk.Int, Default: cty.NumberIntVal(2)},
}

// fakeSettings is what the plugin decodes fakeSchema into.
type fakeSettings struct {
	Container string            `cty:"container"`
	Port      int               `cty:"port"`
	Password  string            `cty:"password"`
	Databases []string          `cty:"databases"`
	Labels    map[string]string `cty:"labels"`
	Verify    bool              `cty:"verify"`
	Untagged  string
}

// source is a fake dump/archive, checksum and notify plugin whose behaviour
// each test sets through the function fields.
type source struct {
	kinds    []string
	validate func(sdk.Config) sdk.Diagnostics
	backup   func(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error)
	restore  func(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error)

	mu          sync.Mutex
	settings    fakeSettings   // from the last Plan
	schemaCalls map[string]int // by kind
	event       string
	report      sdk.Report
}

var (
	_ sdk.Source      = (*source)(nil)
	_ sdk.Checksummer = (*source)(nil)
	_ sdk.Notifier    = (*source)(nil)
	_ sdk.Validator   = (*source)(nil)
)

func (s *source) Describe() sdk.Info {
	kinds := s.kinds
	if kinds == nil {
		kinds = []string{sdk.KindDump, sdk.KindArchive, sdk.KindChecksum, sdk.KindNotify}
	}
	return sdk.Info{Name: "fake", Version: "1.2.3", Kinds: kinds, Description: "A fake plugin for protocol tests."}
}

func (s *source) Schema(kind string) (sdk.Schema, error) {
	s.mu.Lock()
	if s.schemaCalls == nil {
		s.schemaCalls = map[string]int{}
	}
	s.schemaCalls[kind]++
	s.mu.Unlock()
	switch kind {
	case sdk.KindDump, sdk.KindArchive:
		return fakeSchema, nil
	case sdk.KindChecksum:
		return sdk.Schema{}, nil
	case sdk.KindNotify:
		// A notifier that wants to hear of each run's start by default.
		return sdk.Schema{Events: []string{sdk.EventStart, sdk.EventFailure}}, nil
	}
	return sdk.Schema{}, fmt.Errorf("fake serves no %q stage", kind)
}

func (s *source) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	if s.validate == nil {
		return nil
	}
	return s.validate(cfg)
}

func (s *source) Plan(_ context.Context, cfg sdk.Config) ([]sdk.Artifact, error) {
	st := fakeSettings{Password: "preset", Untagged: "untouched"}
	if err := cfg.Decode(&st); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.settings = st
	s.mu.Unlock()
	var out []sdk.Artifact
	for _, db := range st.Databases {
		out = append(out, sdk.Artifact{ID: "db:" + db, Name: db, Format: "sql"})
	}
	return out, nil
}

func (s *source) Backup(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
	return s.backup(ctx, req, w)
}

func (s *source) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	return s.restore(ctx, req, r)
}

func (s *source) Sum(_ context.Context, _ sdk.Config, dir string, files []string) ([]sdk.FileSum, error) {
	var out []sdk.FileSum
	for i, f := range files {
		out = append(out, sdk.FileSum{File: dir + "/" + f, Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i), Size: int64(i * 100)})
	}
	return out, nil
}

func (s *source) Notify(_ context.Context, _ sdk.Config, event string, r sdk.Report) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.event, s.report = event, r
	if event == "fail" {
		return "", errors.New(`send mail to "ops@example.org": 554 5.7.1 relay denied`)
	}
	return "sent to ops@example.org", nil
}

// retainer is a fake retain plugin. It cannot be the same type as source:
// sdk.Retainer and sdk.Source both name their method Plan.
type retainer struct {
	mu  sync.Mutex
	cfg sdk.Config
	in  sdk.RetainInput
}

var _ sdk.Retainer = (*retainer)(nil)

func (r *retainer) Describe() sdk.Info {
	return sdk.Info{Name: "keepall", Version: "0.1", Kinds: []string{sdk.KindRetain}}
}

func (r *retainer) Schema(string) (sdk.Schema, error) {
	return sdk.Schema{Attributes: []sdk.Attribute{{Name: "keep_last", Type: sdk.Int, Default: cty.NumberIntVal(1)}}}, nil
}

func (r *retainer) Decide(_ context.Context, cfg sdk.Config, in sdk.RetainInput) ([]sdk.Decision, error) {
	r.mu.Lock()
	r.cfg, r.in = cfg, in
	r.mu.Unlock()
	var out []sdk.Decision
	for i, s := range in.Sets {
		out = append(out, sdk.Decision{Set: s.Name, Keep: i%2 == 0, Reasons: []string{"reason " + s.Name, "second"}})
	}
	return out, nil
}

// connect serves impl in this process over a real gRPC connection, through
// sdk.Serve in debug mode, and returns the host's client for it, reached
// the way a debugger's plugin is (pluginhost.Options.Reattach).
func connect(t testing.TB, impl sdk.Plugin) *pluginhost.Client {
	t.Helper()
	h := serve(t, impl)
	c, _, err := h.Get(context.Background(), impl.Describe().Name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serve serves impl in this process, as mbk serves its built-in plugins
// (sdk.Serve's debug mode, reached by reattaching over the protocol), and
// returns a host that reaches it. It stops at the end of the test.
func serve(t testing.TB, impl sdk.Plugin) *pluginhost.Host {
	t.Helper()
	h := pluginhost.New(pluginhost.Options{Logger: hclog.NewNullLogger(), Builtins: map[string]func(hclog.Logger) sdk.Plugin{
		impl.Describe().Name: func(hclog.Logger) sdk.Plugin { return impl },
	}})
	t.Cleanup(h.Close)
	return h
}

// wire encodes a stage body as the core sends it: attributes left out are
// null, never their default (defaults stay inside the plugin).
func encode(t testing.TB, kind string, schema sdk.Schema, attrs map[string]cty.Value) *pb.Config {
	t.Helper()
	obj := map[string]cty.Value{}
	for _, a := range schema.Attributes {
		if v, ok := attrs[a.Name]; ok {
			obj[a.Name] = v
		} else {
			obj[a.Name] = cty.NullVal(a.Type.Cty())
		}
	}
	v := cty.EmptyObjectVal
	if len(obj) > 0 {
		v = cty.ObjectVal(obj)
	}
	cfg, err := wire.EncodeConfig(kind, v, schema)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func dumpConfig(t *testing.T) *pb.Config {
	return encode(t, sdk.KindDump, fakeSchema, map[string]cty.Value{"container": cty.StringVal("db")})
}

var (
	payloadOnce sync.Once
	payload     []byte
)

// bigPayload is 50 MiB of reproducible random bytes.
func bigPayload() []byte {
	payloadOnce.Do(func() {
		payload = make([]byte, 50<<20)
		rand.NewChaCha8([32]byte{42}).Read(payload)
	})
	return payload
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeChunks writes p in uneven chunks, as a dump tool's output arrives.
func writeChunks(ctx context.Context, w io.Writer, p []byte) error {
	for i := 0; len(p) > 0; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(p), 1+(i*104729)%(256<<10))
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// hashWriter counts and hashes what the core receives.
type hashWriter struct {
	n int64
	s hash.Hash
}

func newHashWriter() *hashWriter { return &hashWriter{s: sha256.New()} }

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.s.Write(p)
}

func (w *hashWriter) sum() string { return hex.EncodeToString(w.s.Sum(nil)) }

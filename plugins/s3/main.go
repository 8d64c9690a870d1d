// Command mbk-plugin-s3 is the store plugin that copies committed sets to an
// S3-compatible service (AWS, MinIO, Ceph RGW, Backblaze B2, Wasabi, ...)
// with streaming multipart uploads in bounded memory.
package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

const (
	version       = "0.1.0"
	defaultRegion = "us-east-1"
)

func main() {
	sdk.Main("s3", func(log hclog.Logger) sdk.Plugin { return &plugin{log: log} })
}

type plugin struct {
	log hclog.Logger

	mu      sync.Mutex
	clients map[clientKey]*s3.Client // one a server and key, for the plugin's life
}

// clientKey is what an S3 client depends on. Calls with the same settings
// share one client, and with it its pool of open connections: a pool's
// blobs are thousands of calls, each of which otherwise loaded the
// configuration and opened a connection (a TLS handshake, on a real
// server) of its own.
type clientKey struct {
	endpoint, region, accessKey, secretKey, caFile string
	insecure, pathStyle                            bool
}

var (
	_ sdk.Plugin      = (*plugin)(nil)
	_ sdk.Storer      = (*plugin)(nil)
	_ sdk.FileDeleter = (*plugin)(nil)
	_ sdk.Validator   = (*plugin)(nil)
	_ sdk.Preflighter = (*plugin)(nil)
)

func (p *plugin) Describe() sdk.Info {
	return sdk.Info{
		Name:        "s3",
		Version:     version,
		Kinds:       []string{sdk.KindStore},
		Description: "Copies backup sets to an S3-compatible bucket.",
	}
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "endpoint", Type: sdk.String,
		Description: "S3-compatible server as host[:port] or https://host[:port]; empty for AWS."},
	{Name: "region", Type: sdk.String, Default: cty.StringVal(defaultRegion),
		Description: "Region the requests are signed for."},
	{Name: "bucket", Type: sdk.String, Required: true,
		Description: "Bucket the sets go to; it must exist."},
	{Name: "prefix", Type: sdk.String,
		Description: "Key prefix inside the bucket, without a leading slash: files go to <prefix>/<set>/<file>."},
	{Name: "access_key", Type: sdk.String, Sensitive: true,
		Description: "Access key ID; when unset, AWS_ACCESS_KEY_ID and the AWS shared files (~/.aws) are used."},
	{Name: "secret_key", Type: sdk.String, Sensitive: true,
		Description: "Secret access key, with access_key."},
	{Name: "path_style", Type: sdk.Bool,
		Description: "Address the bucket in the path (https://host/bucket/key) instead of the host name; default true when endpoint is set."},
	{Name: "ca_file", Type: sdk.String,
		Description: "PEM file of extra CAs to trust, for a server with a private CA."},
	{Name: "insecure", Type: sdk.Bool, Default: cty.False,
		Description: "Plain HTTP to the endpoint (a local MinIO): anyone on the path can read the backups."},
	{Name: "object_lock", Type: sdk.Object(map[string]sdk.Type{"mode": sdk.String, "days": sdk.Int}),
		Description: "S3 Object Lock sent with every object: object_lock { mode = \"governance\" or \"compliance\", days = N }. The bucket must have been created with Object Lock."},
}}

func (p *plugin) Schema(kind string) (sdk.Schema, error) {
	if kind != sdk.KindStore {
		return sdk.Schema{}, fmt.Errorf("the s3 plugin serves only the %s kind, not %q", sdk.KindStore, kind)
	}
	return schema, nil
}

func (p *plugin) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	_, d := load(cfg)
	return d
}

// Preflight checks that the bucket answers and its keys can be listed with
// these credentials, and that it has Object Lock when object_lock asks for
// it. It writes nothing.
func (p *plugin) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	s, d := load(cfg)
	if d.HasErrors() {
		return d
	}
	b, err := connect(ctx, s, p.log)
	if err != nil {
		return append(d, sdk.Errorf("", "%v", err))
	}
	if err := b.check(ctx); err != nil {
		return append(d, sdk.Errorf("bucket", "%v", err))
	}
	if s.lock != nil {
		if err := b.checkLock(ctx); err != nil {
			return append(d, sdk.Errorf("object_lock", "%v", err))
		}
	}
	return d
}

// open loads a config for a store call, its diagnostics the error, and
// takes the client for its settings, made on first use. (Preflight makes
// its own: it checks that a new connection can be made.)
func (p *plugin) open(ctx context.Context, cfg sdk.Config) (*bucket, error) {
	s, d := load(cfg)
	for _, x := range d {
		if x.Error {
			return nil, fmt.Errorf("s3 settings: %s", x.Summary)
		}
	}
	k := clientKey{s.endpoint, s.Region, s.AccessKey, s.SecretKey, s.CAFile, s.Insecure, s.pathStyle}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[k]; ok {
		return &bucket{s: s, c: c, log: p.log}, nil
	}
	b, err := connect(ctx, s, p.log)
	if err != nil {
		return nil, err
	}
	if p.clients == nil {
		p.clients = map[clientKey]*s3.Client{}
	}
	p.clients[k] = b.c
	return b, nil
}

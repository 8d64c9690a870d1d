package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

const prefix = "backups/moodle/"

func harness(t *testing.T, srv *storetest.S3) storetest.Harness {
	return storetest.Harness{
		Storer: newPlugin(t),
		Config: stageConfig(t, srv, nil),
		Deleted: func(t *testing.T) []string {
			var out []string
			for _, r := range srv.Requests(t) {
				if r.Op == "DeleteObject" && r.Status < 300 {
					out = append(out, strings.TrimPrefix(r.Key, prefix))
				}
			}
			return out
		},
		Leftovers: func(t *testing.T) []string {
			up, err := srv.Client(t).ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, u := range up.Uploads {
				out = append(out, "multipart upload of "+aws.ToString(u.Key))
			}
			return out
		},
		// One 16 MiB part in memory, plus the collector's slack.
		MaxHeap: 40 << 20,
	}
}

func TestConformance(t *testing.T) {
	srv := storetest.StartS3(t)
	storetest.Conformance(t, harness(t, srv))
	// What reached the disk is what List said: no object under a
	// temporary name survived the failed uploads.
	var files []string
	filepath.WalkDir(filepath.Join(srv.Dir, srv.Bucket), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) > 0 {
		t.Errorf("files left in the bucket after every set was deleted: %q", files)
	}
}

// Over HTTPS the server's certificate is checked: with ca_file it is
// trusted, without it the upload is refused.
func TestTLS(t *testing.T) {
	srv := storetest.StartS3TLS(t)
	p := newPlugin(t)
	ctx := context.Background()
	loc, err := p.Put(ctx, stageConfig(t, srv, nil), "2024-03-01_03-00-00", "SHA256SUMS", 3, strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "s3://" + srv.Bucket + "/backups/moodle/2024-03-01_03-00-00/SHA256SUMS"; loc != want {
		t.Errorf("location %q, want %q", loc, want)
	}
	var got strings.Builder
	if err := p.Get(ctx, stageConfig(t, srv, nil), "2024-03-01_03-00-00", "SHA256SUMS", &got); err != nil || got.String() != "abc" {
		t.Errorf("Get: %q, %v", got.String(), err)
	}

	cfg := stageConfig(t, srv, map[string]cty.Value{"ca_file": cty.NullVal(cty.String)})
	_, err = p.Put(ctx, cfg, "2024-03-01_03-00-00", "other", 3, strings.NewReader("abc"))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without ca_file: %v; want a certificate error", err)
	}
}

// Without keys in the settings the plugin takes them where AWS tools do.
func TestCredentialsFromTheEnvironment(t *testing.T) {
	srv := storetest.StartS3(t)
	noKeys := map[string]cty.Value{"access_key": cty.NullVal(cty.String), "secret_key": cty.NullVal(cty.String)}
	tests := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"environment", func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		}},
		{"shared credentials file", func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "credentials")
			body := "[default]\naws_access_key_id = " + srv.AccessKey + "\naws_secret_access_key = " + srv.SecretKey + "\n"
			if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", f)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			if _, err := newPlugin(t).Put(context.Background(), stageConfig(t, srv, noKeys), "s1", "f", 1, strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Wrong credentials fail with the server's words and never show the secret.
func TestWrongCredentials(t *testing.T) {
	srv := storetest.StartS3(t)
	const wrongSecret = "Wr0ngSecretThatMustNotLeak/abcdefghijklmnop"
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  string
	}{
		{"wrong secret", map[string]cty.Value{"secret_key": cty.StringVal(wrongSecret)}, "SignatureDoesNotMatch"},
		// AWS answers InvalidAccessKeyId; versitygw its own code, with
		// words to the same effect.
		{"unknown access key", map[string]cty.Value{"access_key": cty.StringVal("AKUNKNOWN0000000"), "secret_key": cty.StringVal(wrongSecret)}, "access key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlugin(t)
			cfg := stageConfig(t, srv, tt.attrs)
			_, err := p.Put(context.Background(), cfg, "s1", "f", 1, strings.NewReader("x"))
			if err == nil {
				t.Fatal("Put succeeded")
			}
			t.Logf("Put: %v", err)
			ds := p.Preflight(context.Background(), cfg)
			if !ds.HasErrors() {
				t.Fatal("Preflight found nothing wrong")
			}
			t.Logf("Preflight: %s", ds[0].Summary)
			for _, msg := range []string{err.Error(), ds[0].Summary} {
				if !strings.Contains(msg, tt.want) {
					t.Errorf("%q does not say %s", msg, tt.want)
				}
				if strings.Contains(msg, wrongSecret) || strings.Contains(msg, srv.SecretKey) {
					t.Errorf("%q shows the secret", msg)
				}
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	srv := storetest.StartS3(t)
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  string // "" for no diagnostic
	}{
		{"ok", nil, ""},
		{"missing bucket", map[string]cty.Value{"bucket": cty.StringVal("no-such-bucket")}, "bucket no-such-bucket does not exist at http://" + srv.Host},
		{"server down", map[string]cty.Value{"endpoint": cty.StringVal("127.0.0.1:1")}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newPlugin(t).Preflight(context.Background(), stageConfig(t, srv, tt.attrs))
			if tt.want == "" {
				if len(ds) > 0 {
					t.Errorf("diagnostics: %+v", ds)
				}
				return
			}
			if len(ds) != 1 || !ds[0].Error || !strings.Contains(ds[0].Summary, tt.want) {
				t.Errorf("diagnostics: %+v\nwant one error saying %q", ds, tt.want)
			}
		})
	}
	// Preflight changes nothing.
	for _, r := range srv.Requests(t) {
		if r.Op != "CreateBucket" && r.Op != "ListObjectsV2" {
			t.Errorf("Preflight sent %s %s", r.Op, r.Key)
		}
	}
}

// A run killed mid-upload leaves a multipart upload behind; deleting the set
// ends it.
func TestDeleteAbortsUnfinishedUploads(t *testing.T) {
	srv := storetest.StartS3(t)
	h := harness(t, srv)
	ctx := context.Background()
	for _, key := range []string{prefix + "s1/moodledata.tar.gz", prefix + "s2/moodledata.tar.gz"} {
		if _, err := srv.Client(t).CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Storer.Delete(ctx, h.Config, "s1"); err != nil {
		t.Fatal(err)
	}
	if left := h.Leftovers(t); len(left) != 1 || !strings.Contains(left[0], "s2/") {
		t.Errorf("left %q; want only the upload of the other set", left)
	}
}

// Calls with the same settings share one client and its connections; other
// keys get a client of their own. Counted by the HTTP client itself: a
// connection it did not take from its idle ones is a new one.
func TestConnectionsReused(t *testing.T) {
	srv := storetest.StartS3(t)
	p := newPlugin(t)
	cfg := stageConfig(t, srv, nil)
	var fresh, reused atomic.Int32
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused.Add(1)
		} else {
			fresh.Add(1)
		}
	}})
	const set = "2024-03-01_03-00-00"
	for i := range 20 {
		if _, err := p.Put(ctx, cfg, set, fmt.Sprintf("f%d", i), 1, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := p.Get(ctx, cfg, set, fmt.Sprintf("f%d", i), &buf); err != nil || buf.String() != "x" {
			t.Fatalf("Get f%d: %q, %v", i, buf.String(), err)
		}
	}
	if fresh.Load() != 1 || reused.Load() < 39 {
		t.Errorf("40 calls one after the other opened %d connections and reused one %d times; want 1 and at least 39", fresh.Load(), reused.Load())
	}
	other := stageConfig(t, srv, map[string]cty.Value{"access_key": cty.StringVal("nobody")})
	if _, err := p.Put(ctx, other, set, "g", 1, strings.NewReader("x")); err == nil {
		t.Error("a Put with another access key went through the first key's client")
	}
}

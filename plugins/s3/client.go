package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
)

// bucket is one configured bucket and a client for it.
type bucket struct {
	s   settings
	c   *s3.Client
	log hclog.Logger
}

// connect makes a client; it sends no request. Credentials come from the
// settings, else from the usual AWS chain (environment, shared files, SSO,
// instance roles).
func connect(ctx context.Context, s settings, log hclog.Logger) (*bucket, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(s.Region),
		// Checksums only where S3 demands them: many S3-compatible servers
		// reject the newer default trailers. Each body is still signed
		// with its SHA-256 and carries a Content-MD5.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if s.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")))
	}
	if s.CAFile != "" && !s.Insecure {
		pool, err := certPool(s.CAFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.RootCAs = pool
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration: %w", err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
		o.UsePathStyle = s.pathStyle
	})
	return &bucket{s: s, c: c, log: log}, nil
}

// certPool is the system's CAs plus those of file.
func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// check makes sure the bucket answers and can be listed, changing nothing.
// A listing rather than HeadBucket: an answer to HEAD has no body, so it
// cannot say why it failed.
func (b *bucket) check(ctx context.Context) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(b.s.Bucket), MaxKeys: aws.Int32(1)}
	if b.s.Prefix != "" {
		in.Prefix = aws.String(b.s.Prefix + "/")
	}
	if _, err := b.c.ListObjectsV2(ctx, in); err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
			return fmt.Errorf("bucket %s does not exist at %s", b.s.Bucket, b.where())
		}
		return fmt.Errorf("list %s at %s: %w", b.s.location(aws.ToString(in.Prefix)), b.where(), explain(err))
	}
	return nil
}

// checkLock makes sure the bucket has Object Lock, which only a bucket
// created with it can have: without it every upload would be refused.
func (b *bucket) checkLock(ctx context.Context) error {
	out, err := b.c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(b.s.Bucket)})
	if err == nil && out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled {
		return nil
	}
	msg := fmt.Sprintf("bucket %s has no Object Lock: object_lock needs a bucket created with Object Lock enabled", b.s.Bucket)
	if err != nil && !lockNotConfigured(err) {
		return fmt.Errorf("%s (%v)", msg, explain(err))
	}
	return errors.New(msg)
}

// lockNotConfigured reports whether err says the bucket has no Object Lock.
func lockNotConfigured(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError"
}

// until is when an object uploaded at now may be deleted.
func (l *lockSettings) until(now time.Time) *time.Time {
	t := now.Add(time.Duration(l.days) * 24 * time.Hour).UTC()
	return &t
}

// where names the server for errors.
func (b *bucket) where() string {
	if b.s.endpoint != "" {
		return b.s.endpoint
	}
	return "AWS region " + b.s.Region
}

// explain shortens the SDK's errors to the server's own words:
// "AccessDenied: Access Denied (HTTP 403)" instead of a line that also
// carries the operation, request and host IDs. Other errors (network,
// credentials, cancellation) pass unchanged.
func explain(err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := ae.ErrorCode()
	if m := ae.ErrorMessage(); m != "" {
		msg += ": " + m
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		msg += fmt.Sprintf(" (HTTP %d)", re.HTTPStatusCode())
	}
	return &apiError{msg: msg, err: err}
}

type apiError struct {
	msg string
	err error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

// notFound reports whether err says the object or bucket is not there.
func notFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return true
		}
	}
	return false
}

package storetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a running S3 gateway with one empty bucket.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT, or https:// from StartS3TLS
	Host      string // 127.0.0.1:PORT
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	// CAFile is the PEM certificate the TLS gateway presents (it is its own
	// CA); empty for a plain-HTTP gateway.
	CAFile string
	// Dir is the gateway's root: each bucket is a directory in it, each
	// object a file, so tests can see what really reached the disk.
	Dir string

	accessLog string
}

// Request is one request the gateway served, from its access log.
type Request struct {
	Op     string // the S3 operation: PutObject, DeleteObject, ...
	Bucket string
	Key    string // "" for bucket operations
	Status int    // HTTP status of the answer
}

// Requests returns the requests the gateway has served so far, oldest first.
func (s *S3) Requests(t testing.TB) []Request {
	t.Helper()
	b, err := os.ReadFile(s.accessLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("storetest: %v", err)
	}
	var out []Request
	for _, line := range strings.Split(string(b), "\n") {
		// OWNER BUCKET [DATE ZONE] IP REQUESTER ID s3_OP KEY URI STATUS ...
		f := strings.Fields(line)
		if len(f) < 11 || !strings.HasPrefix(f[7], "s3_") {
			continue
		}
		r := Request{Op: strings.TrimPrefix(f[7], "s3_"), Bucket: f[1], Key: f[8]}
		if r.Key == "-" {
			r.Key = ""
		}
		r.Status, _ = strconv.Atoi(f[10])
		out = append(out, r)
	}
	return out
}

// StartS3 runs versitygw over plain HTTP on 127.0.0.1 with a fresh directory
// and random credentials, and creates a bucket.
func StartS3(t testing.TB) *S3 { t.Helper(); return startS3(t, false) }

// StartS3TLS is StartS3 over HTTPS, with a self-signed certificate for
// 127.0.0.1 in CAFile.
func StartS3TLS(t testing.TB) *S3 { t.Helper(); return startS3(t, true) }

func startS3(t testing.TB, useTLS bool) *S3 {
	t.Helper()
	bin := versitygw(t)
	base := t.TempDir()
	s := &S3{
		Region:    "us-east-1",
		Bucket:    "mbk-test-" + randomString(10, lowerAlnum),
		AccessKey: "AK" + randomString(18, upperAlnum),
		SecretKey: randomString(40, mixedAlnum),
		Dir:       filepath.Join(base, "root"),
		accessLog: filepath.Join(base, "access.log"),
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	var tlsArgs []string
	scheme := "http"
	if useTLS {
		cert, key, err := selfSigned(base)
		if err != nil {
			t.Fatalf("storetest: %v", err)
		}
		s.CAFile = cert
		tlsArgs = []string{"--cert", cert, "--key", key}
		scheme = "https"
	}
	srv := start(t, "versitygw", base, "address already in use", func(port int) *exec.Cmd {
		// --keep-alive: as S3 itself, keep a connection open for the next
		// request (versitygw closes each one by default).
		args := append([]string{"--port", fmt.Sprintf("127.0.0.1:%d", port), "--region", s.Region, "--quiet", "--keep-alive", "--access-log", s.accessLog}, tlsArgs...)
		cmd := exec.Command(bin, append(args, "posix", s.Dir)...)
		// Credentials through the environment keep them out of ps.
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
		return cmd
	})
	s.Host = srv.addr()
	s.Endpoint = scheme + "://" + s.Host

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := s.Client(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("storetest: create bucket %s on %s: %v", s.Bucket, s.Endpoint, err)
	}
	return s
}

// NewLockedBucket creates another bucket, with Object Lock enabled, and
// returns its name. The gateway enforces the lock: an object uploaded with a
// mode and a retain-until date may not be deleted or overwritten before the
// date (in governance mode, unless the request bypasses it with the right
// to; in compliance mode, at all).
func (s *S3) NewLockedBucket(t testing.TB) string {
	t.Helper()
	name := "mbk-locked-" + randomString(10, lowerAlnum)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := s.Client(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("storetest: create bucket %s with Object Lock on %s: %v", name, s.Endpoint, err)
	}
	return name
}

// Client is an S3 client of the gateway with its root credentials, for
// tests that look behind a plugin's back.
func (s *S3) Client(t testing.TB) *s3.Client {
	t.Helper()
	httpc := &http.Client{Transport: http.DefaultTransport}
	if s.CAFile != "" {
		pemBytes, err := os.ReadFile(s.CAFile)
		if err != nil {
			t.Fatalf("storetest: %v", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		httpc.Transport = tr
	}
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   httpc,
	})
}

// selfSigned writes a certificate for 127.0.0.1 and localhost that is its
// own CA, and its key, into dir.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return "", "", err
	}
	// Backdated so that a clock a little behind still accepts it.
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mbk storetest"},
		NotBefore:             now,
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Stage is the body of an s3 store stage that reaches this gateway's bucket
// under prefix, its keys read with env("S3_KEY") and env("S3_SECRET") (see
// Env), as SFTP.Stage is for the SFTP server.
func (s *S3) Stage(bucket, prefix string) string {
	return fmt.Sprintf(`endpoint   = %q
    bucket     = %q
    prefix     = %q
    access_key = env("S3_KEY")
    secret_key = env("S3_SECRET")
    insecure   = true`, s.Endpoint, bucket, prefix)
}

// Env is the environment Stage's settings read the keys from.
func (s *S3) Env() []string { return []string{"S3_KEY=" + s.AccessKey, "S3_SECRET=" + s.SecretKey} }

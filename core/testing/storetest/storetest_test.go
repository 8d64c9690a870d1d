package storetest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

func TestS3(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(testing.TB) *storetest.S3
	}{{"http", storetest.StartS3}, {"https", storetest.StartS3TLS}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(t)
			ctx := context.Background()
			c := srv.Client(t)
			body := []byte("hello")
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("a/b.txt"), Body: bytes.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("a/b.txt")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("read back %q, %v", got, err)
			}
			var ops []string
			for _, r := range srv.Requests(t) {
				ops = append(ops, fmt.Sprintf("%s %s %s %d", r.Op, r.Bucket, r.Key, r.Status))
			}
			if want := []string{"CreateBucket " + srv.Bucket + "  200", "PutObject " + srv.Bucket + " a/b.txt 200", "GetObject " + srv.Bucket + " a/b.txt 200"}; !reflect.DeepEqual(ops, want) {
				t.Errorf("requests %q\nwant %q", ops, want)
			}
			// The posix backend keeps the object as a file.
			if b, err := os.ReadFile(filepath.Join(srv.Dir, srv.Bucket, "a", "b.txt")); err != nil || !bytes.Equal(b, body) {
				t.Errorf("on disk: %q, %v", b, err)
			}
		})
	}
}

func TestS3WrongSecretRefused(t *testing.T) {
	srv := storetest.StartS3(t)
	srv.SecretKey = "wrong"
	_, err := srv.Client(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket)})
	if err == nil {
		t.Fatal("the gateway accepted a wrong secret")
	}
}

func TestSFTP(t *testing.T) {
	srv := storetest.StartSFTP(t)
	key, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: check})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.Create(srv.Dir + "/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(srv.Dir, "x")); err != nil || string(b) != "hi" {
		t.Errorf("on disk: %q, %v", b, err)
	}

	// Another key is refused until it is authorized.
	other := filepath.Join(t.TempDir(), "other")
	pub, err := storetest.NewKey(other, "pass phrase")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(other)
	otherSigner, err := ssh.ParsePrivateKeyWithPassphrase(b, []byte("pass phrase"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(otherSigner)}, HostKeyCallback: check}
	if c, err := ssh.Dial("tcp", srv.Addr(), cfg); err == nil {
		c.Close()
		t.Fatal("an unknown key logged in")
	}
	srv.Authorize(t, pub)
	c2, err := ssh.Dial("tcp", srv.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
}

func TestSFTPOperations(t *testing.T) {
	srv := storetest.StartSFTP(t)
	key, _ := os.ReadFile(srv.KeyFile)
	signer, _ := ssh.ParsePrivateKey(key)
	check, _ := knownhosts.New(srv.KnownHosts)
	conn, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: check})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := c.Create(srv.Dir + "/x")
	f.Close()
	c.PosixRename(srv.Dir+"/x", srv.Dir+"/y")
	c.Remove(srv.Dir + "/y")
	c.Close()
	want := []string{
		fmt.Sprintf(`posix-rename old "%s/x" new "%s/y"`, srv.Dir, srv.Dir),
		fmt.Sprintf(`remove name "%s/y"`, srv.Dir),
	}
	// The server logs the session's end after the client has gone.
	var got []string
	for _, l := range srv.Operations(t) {
		if strings.HasPrefix(l, "posix-rename") || strings.HasPrefix(l, "remove") {
			got = append(got, l)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("operations %q\nwant %q", got, want)
	}
}

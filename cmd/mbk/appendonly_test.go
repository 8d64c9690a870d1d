package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// appendOnlyFaulty is a pipeline of the faulty plugin (no Docker) that keeps
// one set and copies each to a store stage with the given body.
func appendOnlyFaulty(root, kind, store string) string {
	return fmt.Sprintf(`plugin_dir = %q

pipeline "offsite" {
  root    = %q
  timeout = "2m"

  stage "dump" "faulty" {
    mode        = "ok"
    size        = %d
    compression = "none"
  }
  stage "retain" "policy" {
    keep_last = 1
  }
  stage "store" %q {
    %s
  }
}
`, filepath.Join(binDir, "extra"), root, artifactSize, kind, store)
}

// artifactSize is more than one part of the s3 plugin's uploads (16 MiB,
// compression "none"), so that multipart uploads carry the lock too.
const artifactSize = 17 << 20

// storedSets counts the sets mbk list --store shows.
func storedSets(t *testing.T, file, store string, env ...string) int {
	t.Helper()
	l := mbk(t, runOpts{env: env}, "list", file, "--store", store, "--json")
	if l.code != 0 {
		t.Fatalf("list --store %s: %s", store, l)
	}
	return strings.Count(l.stdout, `"set":`)
}

// TestAppendOnlySFTP: with delete = false, mbk uploads to an SFTP account
// whose server refuses remove and rmdir, and never asks it to delete: every
// run succeeds, retention only says what it would delete, and the server
// logs no remove or rmdir. The same account with delete left on fails, so
// the server does refuse. A trusted host with an account that may delete
// expires the old sets with mbk prune --store.
func TestAppendOnlySFTP(t *testing.T) {
	srv := storetest.StartSFTPDenying(t, "remove", "rmdir")
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	file := writeFile(t, dir, "offsite.hcl", appendOnlyFaulty(root, "sftp", srv.Stage(srv.Dir)+"\n    delete      = false"))

	for i := 0; i < 3; i++ {
		r := mbk(t, runOpts{}, "run", file)
		if r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
		if i > 0 && !strings.Contains(r.stderr, "delete = false") {
			t.Fatalf("run %d does not say what it left in the store: %s", i, r)
		}
	}
	if n := len(sets(t, root)); n != 1 {
		t.Fatalf("%d local sets, want 1 (keep_last = 1 applies on disk)", n)
	}
	if n := storedSets(t, file, "sftp"); n != 3 {
		t.Fatalf("the store holds %d sets, want all 3", n)
	}
	for _, op := range srv.Operations(t) {
		if strings.Contains(op, "remove") || strings.Contains(op, "rmdir") {
			t.Fatalf("mbk asked the server to delete: %q", op)
		}
	}
	p := mbk(t, runOpts{}, "prune", file, "--store", "sftp")
	if p.code != 0 || strings.Count(p.stdout, "would delete") != 2 || !strings.Contains(p.stderr, "delete = false") {
		t.Fatalf("prune --store on a delete = false store: %s", p)
	}

	t.Run("the account may not delete", func(t *testing.T) {
		withDelete := writeFile(t, t.TempDir(), "offsite.hcl", appendOnlyFaulty(root, "sftp", srv.Stage(srv.Dir)))
		p := mbk(t, runOpts{}, "prune", withDelete, "--store", "sftp")
		if p.code != 1 || !strings.Contains(strings.ToLower(p.stderr), "permission denied") {
			t.Fatalf("prune with an account that may not delete: %s", p)
		}
		if n := storedSets(t, file, "sftp"); n != 3 {
			t.Fatalf("the store holds %d sets after a refused delete, want 3", n)
		}
	})

	t.Run("a trusted host with its own account expires old sets", func(t *testing.T) {
		trusted := storetest.StartSFTP(t)
		tfile := writeFile(t, t.TempDir(), "offsite.hcl", appendOnlyFaulty(filepath.Join(t.TempDir(), "none"), "sftp", trusted.Stage(srv.Dir)))
		p := mbk(t, runOpts{}, "prune", tfile, "--store", "sftp")
		if p.code != 0 || strings.Count(p.stdout, "delete  ") != 2 || !strings.Contains(p.stdout, "2 set(s) deleted") {
			t.Fatalf("prune --store from the trusted host: %s", p)
		}
		if n := storedSets(t, file, "sftp"); n != 1 {
			t.Fatalf("the store holds %d sets after the trusted prune, want 1", n)
		}
	})
}

// TestObjectLockedStore: an s3 store stage with object_lock sends the mode
// and a retain-until date days ahead with every object, small or uploaded
// in parts, to a bucket the gateway created with Object Lock; the gateway
// then refuses to delete them before the date: a plain delete with its root
// credentials, in compliance mode one that bypasses governance too, and
// mbk's own retention when the stage lets it delete. With delete = false
// mbk sends no delete at all. A bucket without Object Lock is refused by
// validate --preflight.
func TestObjectLockedStore(t *testing.T) {
	gw := storetest.StartS3(t)
	bucket := gw.NewLockedBucket(t)
	client := gw.Client(t)
	env := gw.Env()
	stage := func(bucket, prefix, extra string) string {
		return gw.Stage(bucket, prefix) + "\n    " + extra
	}
	deleted := func() int {
		n := 0
		for _, r := range gw.Requests(t) {
			if strings.HasPrefix(r.Op, "Delete") {
				n++
			}
		}
		return n
	}

	for _, mode := range []string{"governance", "compliance"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			lock := fmt.Sprintf("object_lock {\n      mode = %q\n      days = 1\n    }", mode)
			file := writeFile(t, dir, "offsite.hcl", appendOnlyFaulty(filepath.Join(dir, "backups"), "s3", stage(bucket, mode, lock+"\n    delete     = false")))
			before := deleted()
			for i := 0; i < 2; i++ {
				if r := mbk(t, runOpts{env: env}, "run", file); r.code != 0 {
					t.Fatalf("run %d: %s", i, r)
				}
			}
			if n := storedSets(t, file, "s3", env...); n != 2 {
				t.Fatalf("the store holds %d sets, want 2", n)
			}
			if n := deleted(); n != before {
				t.Fatalf("with delete = false mbk sent %d delete requests", n-before)
			}

			ctx := context.Background()
			list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(mode + "/")})
			if err != nil || len(list.Contents) == 0 {
				t.Fatalf("list: %v", err)
			}
			multipart := false
			for _, o := range list.Contents {
				key := aws.ToString(o.Key)
				multipart = multipart || aws.ToInt64(o.Size) > 16<<20
				r, err := client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err != nil {
					t.Fatalf("%s: no retention: %v", key, err)
				}
				until := aws.ToTime(r.Retention.RetainUntilDate)
				if !strings.EqualFold(string(r.Retention.Mode), mode) || until.Before(time.Now().Add(23*time.Hour)) || until.After(time.Now().Add(25*time.Hour)) {
					t.Fatalf("%s: retention %s until %s, want %s a day ahead", key, r.Retention.Mode, until, mode)
				}
				_, err = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if !accessDenied(err) {
					t.Fatalf("%s: a delete before the date: %v, want AccessDenied", key, err)
				}
				if mode == "compliance" {
					_, err = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), BypassGovernanceRetention: aws.Bool(true)})
					if !accessDenied(err) {
						t.Fatalf("%s: a delete bypassing governance: %v, want AccessDenied", key, err)
					}
				}
			}
			if !multipart {
				t.Fatal("no object was uploaded in parts")
			}

			withDelete := writeFile(t, t.TempDir(), "offsite.hcl", appendOnlyFaulty(filepath.Join(dir, "backups"), "s3", stage(bucket, mode, lock)))
			r := mbk(t, runOpts{env: env}, "run", withDelete)
			if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "object lock") {
				t.Fatalf("a run whose retention deletes on the locked bucket: %s", r)
			}
			if n := storedSets(t, file, "s3", env...); n != 3 {
				t.Fatalf("the store holds %d sets, want 3: nothing deleted before the date", n)
			}
		})
	}

	t.Run("a bucket without Object Lock", func(t *testing.T) {
		dir := t.TempDir()
		file := writeFile(t, dir, "offsite.hcl", appendOnlyFaulty(filepath.Join(dir, "backups"), "s3",
			stage(gw.Bucket, "plain", "object_lock {\n      mode = \"governance\"\n      days = 1\n    }")))
		v := mbk(t, runOpts{env: env}, "validate", "--preflight", file)
		if v.code != 1 || !strings.Contains(v.stderr, "has no Object Lock") {
			t.Fatalf("validate --preflight: %s", v)
		}
	})
}

func accessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

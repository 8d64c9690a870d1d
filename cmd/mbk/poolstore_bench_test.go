package main

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/testing/mbktest"
	"github.com/mbk-backup/mbk/core/testing/storetest"
)

// poolStoreBlobs is how many filedir files BenchmarkPoolStore backs up.
const poolStoreBlobs = 5000

// BenchmarkPoolStore times the pool's way to and from S3 (versitygw on
// this host) for a filedir of 5,000 files of 100 B to 20 KB: a run that
// uploads every blob (upload-s), a restore from the store on a fresh
// machine (restore-s), and the same through a proxy that holds back each
// answer 10 ms, a store far away (restore-10ms-s). Per blob, the calls
// through the plugin and the store's latency are the cost, not the bytes.
//
//	go test -run '^$' -bench BenchmarkPoolStore -benchtime 1x ./cmd/mbk/
func BenchmarkPoolStore(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "moodledata")
	rng := rand.New(rand.NewPCG(7, 7))
	for range poolStoreBlobs {
		data := make([]byte, 100+rng.IntN(20000))
		for i := range data {
			data[i] = byte('a' + rng.IntN(16)) // text-like: it compresses
		}
		h := sha1.Sum(data)
		name := hex.EncodeToString(h[:])
		d := filepath.Join(src, "filedir", name[:2], name[2:4])
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s3 := storetest.StartS3(b)
	slow := storetest.SlowProxy(b, s3.Host, 10*time.Millisecond)
	env := append(mbktest.Env(b), s3.Env()...)
	pipeline := func(root, host, prefix string) string {
		return mbktest.WriteFile(b, dir, filepath.Base(root)+".hcl", fmt.Sprintf(`pipeline "bench" {
  root    = %q
  timeout = "30m"
  stage "archive" "volume" {
    path    = %q
    filedir = "pool"
  }
  stage "store" "s3" {
    endpoint   = %q
    bucket     = %q
    prefix     = %q
    access_key = env("S3_KEY")
    secret_key = env("S3_SECRET")
    insecure   = true
  }
}
`, root, src, host, s3.Bucket, prefix))
	}
	run := func(args ...string) time.Duration {
		start := time.Now()
		if r := mbktest.Run(b, filepath.Join(binDir, "mbk"), env, "", args...); r.Code != 0 {
			b.Fatalf("mbk %v: %s", args, r)
		}
		return time.Since(start)
	}
	var up, down, far time.Duration
	for i := range b.N {
		prefix := fmt.Sprintf("bench/%d", i)
		up += run("run", pipeline(filepath.Join(dir, fmt.Sprintf("root%d", i)), s3.Host, prefix))
		for _, via := range []struct {
			host string
			d    *time.Duration
		}{{s3.Host, &down}, {slow, &far}} {
			fresh := filepath.Join(dir, fmt.Sprintf("fresh%d-%s", i, filepath.Base(via.host)))
			*via.d += run("restore", pipeline(fresh, via.host, prefix), "--from", "s3", "--yes", "--no-safety-copy", "--target-path", fresh+"-out")
		}
	}
	n := float64(b.N)
	b.ReportMetric(up.Seconds()/n, "upload-s")
	b.ReportMetric(down.Seconds()/n, "restore-s")
	b.ReportMetric(far.Seconds()/n, "restore-10ms-s")
	b.ReportMetric(poolStoreBlobs, "blobs")
}

package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mbk-backup/mbk/core/sdk"
)

const (
	// partSize is the memory one upload holds: a file is sent in parts of
	// this size, one at a time.
	partSize = 16 << 20
	// maxParts and maxObject are S3's limits on one object.
	maxParts  = 10000
	maxObject = 5 << 40
	// abortTimeout bounds the clean-up of a failed multipart upload, which
	// runs even when the call's context has ended.
	abortTimeout = 30 * time.Second
)

// partSizeFor keeps a file within S3's 10,000 parts: larger files
// get larger parts, whole MiB each (16 MiB parts reach 156 GiB).
func partSizeFor(size int64) int64 {
	need := (size + maxParts - 1) / maxParts
	need = (need + 1<<20 - 1) &^ (1<<20 - 1)
	return max(partSize, need)
}

// Put uploads the file: in one request when it fits in a part, else as a
// multipart upload whose object appears only when CompleteMultipartUpload
// succeeds, so a failed or cancelled upload leaves no object behind.
func (p *plugin) Put(ctx context.Context, cfg sdk.Config, set, file string, size int64, r io.Reader) (string, error) {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return "", err
	}
	key := b.s.key(set, file)
	loc := b.s.location(key)
	if size > maxObject {
		return "", fmt.Errorf("upload %s: %d bytes is more than the 5 TiB an S3 object may hold", loc, size)
	}
	if size <= partSize {
		err = b.putSmall(ctx, key, size, r)
	} else {
		err = b.putMultipart(ctx, key, size, r)
	}
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", loc, err)
	}
	return loc, nil
}

// readPart fills buf from r; a stream that ends early is an error.
func readPart(r io.Reader, buf []byte, done, size int64) error {
	if n, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("the file ended after %d of its %d bytes", done+int64(n), size)
		}
		return fmt.Errorf("read the file: %w", err)
	}
	return nil
}

// atEnd checks that r holds nothing past the announced size.
func atEnd(r io.Reader, size int64) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return fmt.Errorf("the file holds more than the %d bytes announced", size)
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("read the file: %w", err)
	}
	return nil
}

func contentMD5(b []byte) *string {
	sum := md5.Sum(b)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

func (b *bucket) putSmall(ctx context.Context, key string, size int64, r io.Reader) error {
	buf := make([]byte, size)
	if err := readPart(r, buf, 0, size); err != nil {
		return err
	}
	if err := atEnd(r, size); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(b.s.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(buf), ContentLength: aws.Int64(size), ContentMD5: contentMD5(buf),
	}
	if l := b.s.lock; l != nil {
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.mode, l.until(time.Now())
	}
	_, err := b.c.PutObject(ctx, in)
	return explain(err)
}

func (b *bucket) putMultipart(ctx context.Context, key string, size int64, r io.Reader) (err error) {
	in := &s3.CreateMultipartUploadInput{Bucket: aws.String(b.s.Bucket), Key: aws.String(key)}
	if l := b.s.lock; l != nil {
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.mode, l.until(time.Now())
	}
	up, err := b.c.CreateMultipartUpload(ctx, in)
	if err != nil {
		return fmt.Errorf("start a multipart upload: %w", explain(err))
	}
	defer func() {
		if err != nil {
			b.abort(ctx, key, up.UploadId)
		}
	}()
	buf := make([]byte, partSizeFor(size))
	var parts []types.CompletedPart
	for done, n := int64(0), int32(1); done < size; n++ {
		part := buf[:min(int64(len(buf)), size-done)]
		if err := readPart(r, part, done, size); err != nil {
			return err
		}
		out, err := b.c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(b.s.Bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(part),
			ContentLength: aws.Int64(int64(len(part))), ContentMD5: contentMD5(part),
		})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", n, explain(err))
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		done += int64(len(part))
		b.log.Debug("uploaded part", "key", key, "part", n, "bytes", done, "of", size)
	}
	if err := atEnd(r, size); err != nil {
		return err
	}
	_, err = b.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(b.s.Bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete the multipart upload: %w", explain(err))
	}
	return nil
}

// abort frees the parts of a failed upload, even after a cancel: they cost
// storage and never become an object.
func (b *bucket) abort(ctx context.Context, key string, id *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := b.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(b.s.Bucket), Key: aws.String(key), UploadId: id})
	if err != nil && !notFound(err) {
		b.log.Warn("could not abort a failed multipart upload; its parts stay until a lifecycle rule removes them",
			"location", b.s.location(key), "error", explain(err).Error())
	}
}

func (p *plugin) Get(ctx context.Context, cfg sdk.Config, set, file string, w io.Writer) error {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	key := b.s.key(set, file)
	out, err := b.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.s.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("download %s: %w", b.s.location(key), explain(err))
	}
	defer out.Body.Close()
	n, err := io.Copy(w, out.Body)
	if err != nil {
		return fmt.Errorf("download %s: %w", b.s.location(key), err)
	}
	if out.ContentLength != nil && n != *out.ContentLength {
		return fmt.Errorf("download %s: got %d of %d bytes", b.s.location(key), n, *out.ContentLength)
	}
	return nil
}

// List groups the objects under the prefix by set. Keys that are not
// <prefix>/<set>/<file> are not the core's and are left out, and so are the
// pool's blobs (ListFiles lists them): keys come in byte order, so the
// listing stops at the pool's first key and starts again after its last.
func (p *plugin) List(ctx context.Context, cfg sdk.Config) ([]sdk.StoredSet, error) {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if b.s.Prefix != "" {
		prefix = b.s.Prefix + "/"
	}
	poolKeys := prefix + sdk.PoolSet + "/"
	var sets []sdk.StoredSet
	index := map[string]int{}
	atPool := false
	add := func(o types.Object) bool {
		key := aws.ToString(o.Key)
		if strings.HasPrefix(key, poolKeys) {
			atPool = true
			return false
		}
		set, file, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		if !ok || sdk.CheckStoreName(set) != nil || sdk.CheckStoreName(file) != nil {
			return true
		}
		i, ok := index[set]
		if !ok {
			i = len(sets)
			index[set] = i
			sets = append(sets, sdk.StoredSet{Name: set})
		}
		sets[i].Files = append(sets[i].Files, sdk.StoredFile{Name: file, Size: aws.ToInt64(o.Size)})
		return true
	}
	if err := b.objects(ctx, prefix, "", add); err != nil {
		return nil, err
	}
	if !atPool {
		return sets, nil
	}
	// '0' follows '/': every pool key sorts before this one, every key of
	// a later set after it.
	if err := b.objects(ctx, prefix, prefix+sdk.PoolSet+"0", add); err != nil {
		return nil, err
	}
	return sets, nil
}

// ListFiles calls fn for each file of a set, a page of 1,000 keys at a
// time. (The SDK leaves out names no set may hold, such as a/b.)
func (p *plugin) ListFiles(ctx context.Context, cfg sdk.Config, set string, fn func(sdk.StoredFile) error) error {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	prefix := b.s.setPrefix(set)
	var ferr error
	err = b.objects(ctx, prefix, "", func(o types.Object) bool {
		ferr = fn(sdk.StoredFile{Name: strings.TrimPrefix(aws.ToString(o.Key), prefix), Size: aws.ToInt64(o.Size)})
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// objects calls f for every object whose key starts with prefix, from
// the first key after startAfter (all when empty), in key order, until f
// returns false.
func (b *bucket) objects(ctx context.Context, prefix, startAfter string, f func(types.Object) bool) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(b.s.Bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	pages := s3.NewListObjectsV2Paginator(b.c, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", b.s.location(prefix), explain(err))
		}
		for _, o := range page.Contents {
			if !f(o) {
				return nil
			}
		}
	}
	return nil
}

// Delete removes manifest.json first, so that a set half deleted (an error,
// a cancel) no longer looks complete; then the other objects and any
// unfinished uploads under the set. One request per object: the batch call
// needs checksums that some S3-compatible servers reject.
func (p *plugin) Delete(ctx context.Context, cfg sdk.Config, set string) error {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	if err := b.remove(ctx, b.s.key(set, sdk.ManifestFile)); err != nil {
		return err
	}
	var keys []string
	if err := b.objects(ctx, b.s.setPrefix(set), "", func(o types.Object) bool { keys = append(keys, aws.ToString(o.Key)); return true }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.remove(ctx, k); err != nil {
			return err
		}
	}
	return b.abortUploads(ctx, b.s.setPrefix(set))
}

func (b *bucket) remove(ctx context.Context, key string) error {
	_, err := b.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.s.Bucket), Key: aws.String(key)})
	if err != nil && !notFound(err) {
		return fmt.Errorf("delete %s: %w", b.s.location(key), explain(err))
	}
	return nil
}

// abortUploads ends unfinished multipart uploads under prefix: what a
// killed run may have left.
func (b *bucket) abortUploads(ctx context.Context, prefix string) error {
	pages := s3.NewListMultipartUploadsPaginator(b.c, &s3.ListMultipartUploadsInput{Bucket: aws.String(b.s.Bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list unfinished uploads under %s: %w", b.s.location(prefix), explain(err))
		}
		for _, u := range page.Uploads {
			_, err := b.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(b.s.Bucket), Key: u.Key, UploadId: u.UploadId})
			if err != nil && !notFound(err) {
				return fmt.Errorf("abort the unfinished upload of %s: %w", b.s.location(aws.ToString(u.Key)), explain(err))
			}
		}
	}
	return nil
}

// DeleteFiles removes some objects of a set (the core's pool sweep), one
// request each, as Delete does.
func (p *plugin) DeleteFiles(ctx context.Context, cfg sdk.Config, set string, files []string) error {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.remove(ctx, b.s.key(set, f)); err != nil {
			return err
		}
	}
	return nil
}

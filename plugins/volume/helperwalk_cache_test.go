package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWalkCacheFrames: the walk cache's way into a helper and back, without
// a container. The last cache arrives whole in a directory of the helper's;
// a helper that can write none consumes the frames and walks without one;
// a frame out of place is an error. The plugin keeps the helper's new cache
// only once its end has come, and keeps the last one otherwise; a cache
// directory it cannot write into gives the helper none.
func TestWalkCacheFrames(t *testing.T) {
	log := newTestPlugin(t).log
	dir := t.TempDir()
	last := append([]byte(walkCacheMagic+"\n"), bytes.Repeat([]byte("a line of the last cache\n"), 6000)...) // 3 frames
	must(t, os.WriteFile(filepath.Join(dir, "walk"), last, 0o600))

	var in bytes.Buffer
	must(t, sendWalkCache(&in, dir))
	in.WriteString("after")
	r := bufio.NewReader(bytes.NewReader(in.Bytes()))
	got, err := takeWalkCache(r, log)
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(got, "walk")); err != nil || !bytes.Equal(b, last) {
		t.Errorf("the helper's copy of the last cache: %d bytes, %v; want the %d sent", len(b), err, len(last))
	}
	must(t, os.RemoveAll(got))
	if rest, _ := r.ReadString(0); rest != "after" {
		t.Errorf("after the cache's end the helper's input holds %q, want what follows it", rest)
	}

	// No directory to write it into: the frames are read, no cache.
	t.Setenv("TMPDIR", filepath.Join(dir, "walk")) // a file
	r = bufio.NewReader(bytes.NewReader(in.Bytes()))
	if got, err := takeWalkCache(r, log); err != nil || got != "" {
		t.Errorf("an unwritable temporary directory: %q, %v; want no cache and no error", got, err)
	}
	if rest, _ := r.ReadString(0); rest != "after" {
		t.Errorf("without a cache directory the helper's input holds %q after the cache, want what follows it", rest)
	}
	var bad bytes.Buffer
	must(t, writeFrame(&bad, frameCache, []byte("x")))
	must(t, writeFrame(&bad, frameAnswer, []byte("1234")))
	if _, err := takeWalkCache(bufio.NewReader(&bad), log); err == nil || !strings.Contains(err.Error(), "before the walk cache's end") {
		t.Errorf("an answer before the cache's end: %v", err)
	}

	// The helper's new cache, back: kept only with its end.
	newCache := filepath.Join(t.TempDir(), "walk")
	must(t, os.WriteFile(newCache, bytes.Repeat([]byte("a line of the new cache\n"), 6000), 0o600))
	var out bytes.Buffer
	c := &walkConn{w: bufio.NewWriter(&out)}
	must(t, c.sendNewCache(newCache))
	must(t, c.w.Flush())
	frames := func(end bool) {
		t.Helper()
		wc := receiveWalkCache(dir, log)
		if wc == nil {
			t.Fatal("no cache to receive into")
		}
		r := bufio.NewReader(bytes.NewReader(out.Bytes()))
		for {
			typ, b, err := readFrame(r, nil)
			if err != nil {
				break
			}
			if typ == frameNewCacheEnd && !end {
				continue
			}
			wc.receive(b, typ == frameNewCacheEnd)
		}
		wc.commit()
	}
	frames(false)
	if b, _ := os.ReadFile(filepath.Join(dir, "walk")); !bytes.Equal(b, last) {
		t.Error("a cache that came without its end replaced the last one")
	}
	if _, err := os.Lstat(filepath.Join(dir, "walk.new")); err == nil {
		t.Error("a cache that came without its end was left as walk.new")
	}
	frames(true)
	want, _ := os.ReadFile(newCache)
	if b, _ := os.ReadFile(filepath.Join(dir, "walk")); !bytes.Equal(b, want) {
		t.Errorf("the new cache, whole: %d bytes kept, want its %d", len(b), len(want))
	}

	must(t, os.Mkdir(filepath.Join(dir, "walk.new"), 0o700))
	if wc := receiveWalkCache(dir, log); wc != nil {
		t.Error("a cache directory that cannot take walk.new still received a cache")
	}
}

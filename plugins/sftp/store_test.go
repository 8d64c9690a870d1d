package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/storetest"
)

var removeOp = regexp.MustCompile(`^remove name "(.*)"$`)

func harness(t *testing.T, srv *storetest.SFTP) storetest.Harness {
	return storetest.Harness{
		Storer: newPlugin(t),
		Config: stageConfig(t, srv, nil),
		Deleted: func(t *testing.T) []string {
			var out []string
			for _, op := range srv.Operations(t) {
				if m := removeOp.FindStringSubmatch(op); m != nil {
					out = append(out, strings.TrimPrefix(m[1], base(srv)+"/"))
				}
			}
			return out
		},
		Leftovers: func(t *testing.T) []string {
			var out []string
			filepath.WalkDir(base(srv), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") {
					rel, _ := filepath.Rel(base(srv), p)
					out = append(out, rel)
				}
				return nil
			})
			return out
		},
		// The client keeps at most 64 writes of 32 KiB in flight.
		MaxHeap: 16 << 20,
	}
}

var openOp = regexp.MustCompile(`^open "(.*)" flags ([A-Z,]+)`)

func TestConformance(t *testing.T) {
	srv := storetest.StartSFTP(t)
	storetest.Conformance(t, harness(t, srv))
	// Every file was written under its temporary name: a final name only
	// ever came from a rename of a finished file.
	writes := 0
	for _, op := range srv.Operations(t) {
		m := openOp.FindStringSubmatch(op)
		if m == nil || !strings.Contains(m[2], "WRITE") {
			continue
		}
		writes++
		if name := filepath.Base(m[1]); !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".part") {
			t.Errorf("the server opened %s for writing under its final name: %s", name, op)
		}
	}
	if writes == 0 {
		t.Error("the server logged no writes: the check above checked nothing")
	}
	if entries, err := os.ReadDir(base(srv)); err != nil || len(entries) > 0 {
		t.Errorf("left in the base directory after every set was deleted: %v, %v", entries, err)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

// corruptPool writes n blobs whose content does not match their names,
// so that every blob a check reads is a problem naming it.
func corruptPool(t *testing.T, root string, n int) []string {
	t.Helper()
	var rels []string
	for i := range n {
		h := sha1hex(fmt.Appendf(nil, "name %d", i))
		rel := blobPath("filedir", h)
		writeAs(t, root, rel, []byte("not what the name says"))
		rels = append(rels, filepath.ToSlash(rel))
	}
	return rels
}

// TestBlobSampleRotation: with the pool split in four, four drills with
// parts 1 to 4 read every blob exactly once between them; a minimum widens
// a part to the groups after it.
func TestBlobSampleRotation(t *testing.T) {
	p := newTestPlugin(t)
	root := t.TempDir()
	const n = 120
	all := corruptPool(t, root, n)
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(root)})
	reads := map[string]int{}
	for part := 1; part <= 4; part++ {
		c := runCheck(t, p, cfg, checkReq{sample: sdk.Sample{Part: part, Of: 4}})[checkBlobHashes]
		if c.OK || !strings.Contains(c.Summary, fmt.Sprintf("group %d of 4", part)) {
			t.Errorf("part %d: %+v", part, c)
		}
		for _, pr := range c.Problems {
			rel, _, _ := strings.Cut(pr, ":")
			reads[rel]++
		}
	}
	for _, rel := range all {
		if reads[rel] != 1 {
			t.Errorf("%s read %d times over the four parts", rel, reads[rel])
		}
	}
	if len(reads) != n {
		t.Errorf("%d blobs read, want %d", len(reads), n)
	}

	c := runCheck(t, p, cfg, checkReq{sample: sdk.Sample{Part: 2, Of: 4, Min: 70}})[checkBlobHashes]
	if len(c.Problems) < 70 || !strings.Contains(c.Summary, "to reach 70") {
		t.Errorf("with a minimum of 70: %d read: %s", len(c.Problems), c.Summary)
	}
	c = runCheck(t, p, cfg, checkReq{sample: sdk.Sample{}})[checkBlobHashes]
	if !c.OK || !strings.HasPrefix(c.Summary, "skipped") {
		t.Errorf("no sample: %+v", c)
	}
}

// TestReferencesCases covers when references are skipped, fail or pass, on
// a host directory.
func TestReferencesCases(t *testing.T) {
	p := newTestPlugin(t)
	blob := []byte("content\n")
	h := sha1hex(blob)
	ref := sdk.Ref{Hash: "sha1:" + h, Label: "mod_page/content/0/a.txt"}
	var many []sdk.Ref
	for i := range 250 {
		many = append(many, sdk.Ref{Hash: "sha1:" + sha1hex(fmt.Appendf(nil, "absent %d", i)), Label: fmt.Sprintf("f%d", i)})
	}
	for _, tc := range []struct {
		name    string
		tree    func(root string)
		refs    []sdk.Ref // nil: no RefsIn
		ok      bool
		summary string
		first   string // the first problem
	}{
		{"no references", func(string) {}, nil, true, "skipped: no stage before this one", ""},
		{"no references and no filedir", func(string) {}, []sdk.Ref{}, true, "skipped: no SHA-1 references and no filedir", ""},
		{"references and no filedir", func(string) {}, []sdk.Ref{ref}, false,
			"no filedir in the restored tree, yet 1 references name blobs in it: 1 missing", "missing blob " + h + ": mod_page/content/0/a.txt"},
		{"only in trashdir", func(root string) {
			writeAs(t, root, "filedir/warning.txt", nil)
			writeAs(t, root, blobPath("trashdir", h), blob)
		}, []sdk.Ref{ref}, true, "all 1 references have their blob (1 only in trashdir)", ""},
		{"other algorithms are another stage's", func(root string) {
			writeAs(t, root, blobPath("filedir", h), blob)
		}, []sdk.Ref{ref, {Hash: "sha256:abcd", Label: "x"}}, true, "references that are not SHA-1 ignored", ""},
		{"not a SHA-1", func(root string) { writeAs(t, root, "filedir/warning.txt", nil) },
			[]sdk.Ref{{Hash: "sha1:ABC", Label: "x"}}, false, "1 of 1 references have no blob", "reference sha1:ABC is not a SHA-1 content hash"},
		{"a directory in the blob's place", func(root string) {
			must(t, os.MkdirAll(filepath.Join(root, blobPath("filedir", h)), 0o750))
		}, []sdk.Ref{ref}, false, "1 of 1", "missing blob " + h + " (filedir/" + h[:2] + "/" + h[2:4] + "/" + h + " is a directory, not a file)"},
		{"problems capped", func(root string) { writeAs(t, root, "filedir/warning.txt", nil) },
			many, false, "250 of 250 references have no blob (the first 200 listed)", "missing blob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.tree(root)
			var refsIn string
			if tc.refs != nil {
				refsIn = writeRefs(t, tc.refs)
			}
			cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(root)})
			c := runCheck(t, p, cfg, checkReq{refsIn: refsIn})[checkReferences]
			if c.OK != tc.ok || !strings.Contains(c.Summary, tc.summary) {
				t.Errorf("got ok=%v %q, want ok=%v %q", c.OK, c.Summary, tc.ok, tc.summary)
			}
			if tc.first != "" && (len(c.Problems) == 0 || !strings.HasPrefix(c.Problems[0], tc.first)) {
				t.Errorf("problems %q, want the first to start with %q", c.Problems, tc.first)
			}
			if tc.name == "problems capped" && len(c.Problems) != problemsKept {
				t.Errorf("%d problems listed, want %d", len(c.Problems), problemsKept)
			}
		})
	}
}

// TestFilesCheckSkipsWithoutFigures: details without counts skip the check;
// what the backup excluded (caches, the maintenance flag) is not counted.
func TestFilesCheckFigures(t *testing.T) {
	p := newTestPlugin(t)
	root := t.TempDir()
	writeAs(t, root, "muc/config.php", []byte("12345"))
	writeAs(t, root, "cache/x", []byte("regenerated"))
	writeAs(t, root, "climaintenance.html", []byte("on"))
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(root)})
	if c := runCheck(t, p, cfg, checkReq{details: map[string]any{"source": "x"}})[checkFiles]; !c.OK || !strings.HasPrefix(c.Summary, "skipped") {
		t.Errorf("no figures: %+v", c)
	}
	d := map[string]any{"files": float64(1), "bytes": float64(5), "exclude_patterns": []any{"cache", "climaintenance.html"}}
	if c := runCheck(t, p, cfg, checkReq{details: d})[checkFiles]; !c.OK {
		t.Errorf("with the backup's exclusions: %+v", c)
	}
	d["bytes"] = float64(6)
	if c := runCheck(t, p, cfg, checkReq{details: d})[checkFiles]; c.OK || len(c.Problems) != 1 {
		t.Errorf("a byte short: %+v", c)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

func sha1hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

func blobPath(area, h string) string { return filepath.Join(area, h[:2], h[2:4], h) }

// writeAs writes a file below root, with its directories, owned by www-data.
func writeAs(t *testing.T, root, rel string, data []byte) {
	t.Helper()
	full := filepath.Join(root, rel)
	must(t, os.MkdirAll(filepath.Dir(full), 0o750))
	must(t, os.WriteFile(full, data, 0o640))
}

// blobTree writes a small Moodle dataroot into root: n blobs in filedir
// named by the SHA-1 of their content, one in trashdir, filedir's
// warning.txt, muc/config.php with a hard link, a symlink, all owned by
// www-data. It returns a reference, as the database names it, to each blob.
func blobTree(t *testing.T, root string, n int) []sdk.Ref {
	t.Helper()
	var refs []sdk.Ref
	for i := range n {
		content := bytes.Repeat(fmt.Appendf(nil, "blob %d\n", i), i%50+1)
		h := sha1hex(content)
		writeAs(t, root, blobPath("filedir", h), content)
		refs = append(refs, sdk.Ref{Hash: "sha1:" + h, Label: fmt.Sprintf("mod_resource/content/%d/file %d.pdf", i, i)})
	}
	deleted := []byte("a deleted file, recoverable until the trash is emptied\n")
	writeAs(t, root, blobPath("trashdir", sha1hex(deleted)), deleted)
	refs = append(refs, sdk.Ref{Hash: "sha1:" + sha1hex(deleted), Label: "user/draft/5/deleted.txt"})
	writeAs(t, root, "filedir/warning.txt", []byte("This directory contains the content of uploaded files.\n"))
	writeAs(t, root, "muc/config.php", []byte("<?php $configuration = array();\n"))
	writeAs(t, root, "lang/en/langconfig.php", []byte("<?php\n"))
	must(t, os.Link(filepath.Join(root, "muc/config.php"), filepath.Join(root, "muc/config-hardlink.php")))
	must(t, os.Symlink("en", filepath.Join(root, "lang/current")))
	must(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 33, 33)
	}))
	return refs
}

func writeRefs(t *testing.T, refs []sdk.Ref) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "refs")
	w, err := sdk.NewRefWriter(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		must(t, w.Add(r))
	}
	must(t, w.Close())
	return file
}

// viaJSON gives details the form they reach a plugin in from the manifest.
func viaJSON(t *testing.T, d map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	must(t, json.Unmarshal(b, &out))
	return out
}

func mountpoint(t *testing.T, vol string) string {
	t.Helper()
	v, err := testenv.Docker(t).VolumeInspect(context.Background(), vol)
	if err != nil {
		t.Fatal(err)
	}
	return v.Mountpoint
}

// checkReq is a Check's request in the tests.
type checkReq struct {
	opts    map[string]string
	details map[string]any
	refsIn  string
	sample  sdk.Sample
}

// runCheck runs Check and returns its checks by name, failing on an error.
func runCheck(t *testing.T, p *plugin, cfg sdk.Config, r checkReq) map[string]sdk.Check {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := p.Check(ctx, sdk.CheckRequest{Config: cfg, Artifact: artifactID, Options: ropts(t, r.opts),
		Details: r.details, RefsIn: r.refsIn, Sample: r.sample})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	out := map[string]sdk.Check{}
	var names []string
	for _, c := range res.Checks {
		t.Logf("check %s ok=%v: %s %q", c.Name, c.OK, c.Summary, c.Problems)
		out[c.Name] = c
		names = append(names, c.Name)
	}
	if want := []string{checkReferences, checkBlobHashes, checkFiles}; !slices.Equal(names, want) {
		t.Fatalf("checks %v, want %v", names, want)
	}
	return out
}

// newDrill returns a fresh drill label whose leftovers are torn down at
// cleanup, also when the test fails.
func newDrill(t *testing.T, p *plugin) string {
	t.Helper()
	label := testenv.UniqueName(t, "mbktest-drill")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := p.Teardown(ctx, sdk.Config{}, label); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return label
}

func sandbox(t *testing.T, p *plugin, cfg sdk.Config, label string) sdk.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	box, err := p.Sandbox(ctx, sdk.SandboxRequest{Config: cfg, Artifact: artifactID, Label: label})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	t.Logf("sandbox: %s", box.Summary)
	return box
}

func teardown(t *testing.T, p *plugin, label string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := p.Teardown(ctx, sdk.Config{}, label)
	if err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	t.Logf("teardown: %s", sum)
	return sum
}

// labelled lists what the Engine holds under a drill's label.
func labelled(t *testing.T, label string) (ctrs, vols, imgs []string) {
	t.Helper()
	cli := testenv.Docker(t)
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", drillLabel+"="+label))
	cl, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	must(t, err)
	for _, c := range cl {
		ctrs = append(ctrs, c.Names...)
	}
	vl, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	must(t, err)
	for _, v := range vl.Volumes {
		vols = append(vols, v.Name)
	}
	il, err := cli.ImageList(ctx, image.ListOptions{Filters: f})
	must(t, err)
	for _, im := range il {
		imgs = append(imgs, im.ID)
	}
	return ctrs, vols, imgs
}

// TestDrillRoundTrip backs up a Moodle-shaped dataroot from each kind of
// source, makes a sandbox, restores into it with the options the sandbox
// returned, checks the restored tree (every reference resolves, every blob
// re-hashed to its name, the file count and bytes as recorded) and tears
// the sandbox down, twice. "engine" reads, restores and checks through
// helper containers; the others straight from the volume's directory.
func TestDrillRoundTrip(t *testing.T) {
	const blobs = 60
	cases := []struct {
		name string
		// source fills a source with blobTree and returns its settings.
		source func(t *testing.T) (map[string]cty.Value, []sdk.Ref)
	}{
		{"volume", func(t *testing.T) (map[string]cty.Value, []sdk.Ref) {
			vol := testenv.UniqueName(t, "mbktest-drillsrc")
			testenv.CreateVolume(t, vol)
			return map[string]cty.Value{"volume": cty.StringVal(vol)}, blobTree(t, mountpoint(t, vol), blobs)
		}},
		{"volume through the engine", func(t *testing.T) (map[string]cty.Value, []sdk.Ref) {
			vol := testenv.UniqueName(t, "mbktest-drillsrc")
			testenv.CreateVolume(t, vol)
			return map[string]cty.Value{"volume": cty.StringVal(vol), "read": cty.StringVal("engine")}, blobTree(t, mountpoint(t, vol), blobs)
		}},
		{"container path", func(t *testing.T) (map[string]cty.Value, []sdk.Ref) {
			vol := testenv.UniqueName(t, "mbktest-drillsrc")
			testenv.CreateVolume(t, vol)
			refs := blobTree(t, mountpoint(t, vol), blobs)
			app := testenv.StartApp(t, vol, moodleDataroot)
			return map[string]cty.Value{"container": cty.StringVal(app), "path": cty.StringVal(moodleDataroot)}, refs
		}},
		{"host path", func(t *testing.T) (map[string]cty.Value, []sdk.Ref) {
			dir := filepath.Join(t.TempDir(), "moodledata")
			return map[string]cty.Value{"path": cty.StringVal(dir)}, blobTree(t, dir, blobs)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPlugin(t)
			attrs, refs := tc.source(t)
			cfg := testConfig(t, p, attrs)
			file, res := mustBackup(t, p, cfg)
			details := viaJSON(t, res.Details)

			label := newDrill(t, p)
			box := sandbox(t, p, cfg, label)
			vol := box.Options["target_volume"]
			if want := label + "-moodledata"; vol != want || len(box.Options) != 1 {
				t.Fatalf("sandbox options %v, want target_volume=%s", box.Options, want)
			}
			if !strings.Contains(box.Summary, vol) {
				t.Errorf("summary %q does not name the volume", box.Summary)
			}
			v, err := testenv.Docker(t).VolumeInspect(context.Background(), vol)
			if err != nil || v.Labels[drillLabel] != label {
				t.Fatalf("sandbox volume: labels %v, %v", v.Labels, err)
			}
			if names, err := readNames(v.Mountpoint); err != nil || len(names) > 0 {
				t.Fatalf("the sandbox volume holds %v (%v), want nothing", names, err)
			}

			if _, err := restoreFile(t, p, cfg, box.Options, file); err != nil {
				t.Fatalf("Restore into the sandbox: %v", err)
			}
			checks := runCheck(t, p, cfg, checkReq{opts: box.Options, details: details,
				refsIn: writeRefs(t, refs), sample: sdk.Sample{Part: 1, Of: 1}})
			for name, c := range checks {
				if !c.OK || len(c.Problems) > 0 {
					t.Errorf("check %s failed: %s %q", name, c.Summary, c.Problems)
				}
			}
			for name, want := range map[string]string{
				checkReferences: fmt.Sprintf("all %d references have their blob (1 only in trashdir)", blobs+1),
				checkBlobHashes: fmt.Sprintf("re-hashed %d of %d blobs", blobs+1, blobs+1),
				checkFiles:      fmt.Sprintf("%v files", details["files"]),
			} {
				if !strings.Contains(checks[name].Summary, want) {
					t.Errorf("%s: summary %q lacks %q", name, checks[name].Summary, want)
				}
			}
			if !strings.Contains(checks[checkFiles].Summary, "as the backup recorded") {
				t.Errorf("files: %q", checks[checkFiles].Summary)
			}
			if left := helpersLeft(t, vol); len(left) > 0 {
				t.Errorf("helper containers left behind: %v", left)
			}
			if ctrs, _, imgs := labelled(t, label); len(ctrs)+len(imgs) > 0 {
				t.Errorf("left under the drill's label: containers %v, images %v", ctrs, imgs)
			}

			if _, ok := attrs["container"]; ok {
				// The container's own path, through its mounts.
				src := runCheck(t, p, cfg, checkReq{details: details, refsIn: writeRefs(t, refs), sample: sdk.Sample{Part: 1, Of: 1}})
				for name, c := range src {
					if !c.OK {
						t.Errorf("check %s of the container path failed: %s %q", name, c.Summary, c.Problems)
					}
				}
			}

			sum := teardown(t, p, label)
			if !strings.Contains(sum, "removed 1 volume") || !strings.Contains(sum, vol) {
				t.Errorf("teardown summary %q", sum)
			}
			if _, err := testenv.Docker(t).VolumeInspect(context.Background(), vol); !client.IsErrNotFound(err) {
				t.Errorf("the sandbox volume is still there: %v", err)
			}
			if sum := teardown(t, p, label); !strings.Contains(sum, "nothing left") {
				t.Errorf("second teardown: %q", sum)
			}
		})
	}
}

// TestDrillCheckFaults damages a restored sandbox and checks that each
// check names what is wrong, straight from the volume's directory and
// through a helper container.
func TestDrillCheckFaults(t *testing.T) {
	for _, read := range []string{"auto", "engine"} {
		t.Run(read, func(t *testing.T) {
			var logs logBuf
			p := &plugin{log: hclog.New(&hclog.LoggerOptions{Name: "volume", Output: io.MultiWriter(&logs, testLog{t}), Level: hclog.Debug})}
			src := filepath.Join(t.TempDir(), "moodledata")
			refs := blobTree(t, src, 40)
			cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(src), "read": cty.StringVal(read)})
			file, res := mustBackup(t, p, cfg)
			details := viaJSON(t, res.Details)
			label := newDrill(t, p)
			box := sandbox(t, p, cfg, label)
			// The sandbox is a volume: the stage reads it as `read` says.
			vcfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(box.Options["target_volume"]), "read": cty.StringVal(read)})
			if _, err := restoreFile(t, p, vcfg, nil, file); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			dir := mountpoint(t, box.Options["target_volume"])

			// A blob whose content no longer matches its name, same size.
			victim := strings.TrimPrefix(refs[7].Hash, "sha1:")
			bad := bytes.Repeat([]byte("X"), 8*len(fmt.Sprintf("blob %d\n", 7)))
			must(t, os.WriteFile(filepath.Join(dir, blobPath("filedir", victim)), bad, 0o640))
			// A file that is no blob name.
			writeAs(t, dir, "filedir/"+victim[:2]+"/"+victim[2:4]+"/notahash", []byte("x"))
			// A reference whose blob the tree lacks.
			absent := sha1hex([]byte("never uploaded"))
			withAbsent := append(slices.Clone(refs), sdk.Ref{Hash: "sha1:" + absent, Label: "mod_resource/content/0/Plan.pdf"})
			// A blob directory that is a symlink to a directory outside the
			// tree holding a well-named blob: neither check goes through it.
			outside := t.TempDir()
			var escaped string
			for i := 0; escaped == ""; i++ {
				c := fmt.Appendf(nil, "outside %d", i)
				h := sha1hex(c)
				if _, err := os.Lstat(filepath.Join(dir, "filedir", h[:2])); os.IsNotExist(err) {
					escaped = h
					writeAs(t, outside, filepath.Join(h[2:4], h), c)
				}
			}
			must(t, os.Symlink(outside, filepath.Join(dir, "filedir", escaped[:2])))
			withAbsent = append(withAbsent, sdk.Ref{Hash: "sha1:" + escaped, Label: "mod_folder/content/1/escaped.txt"})

			checks := runCheck(t, p, vcfg, checkReq{details: details, refsIn: writeRefs(t, withAbsent), sample: sdk.Sample{Part: 1, Of: 1}})
			for _, c := range checks {
				if c.OK {
					t.Errorf("check %s passed a damaged tree: %s", c.Name, c.Summary)
				}
			}
			wantProblems := map[string][]string{
				checkReferences: {
					"missing blob " + absent + ": mod_resource/content/0/Plan.pdf",
					"missing blob " + escaped + ": mod_folder/content/1/escaped.txt",
				},
				checkBlobHashes: {
					"filedir/" + escaped[:2] + " is a symlink: Moodle's file pool has none",
					"filedir/" + victim[:2] + "/" + victim[2:4] + "/notahash: not a blob name (Moodle names blobs by their SHA-1: 40 lowercase hex digits)",
					"filedir/" + victim[:2] + "/" + victim[2:4] + "/" + victim + ": its content hashes to " + sha1hex(bad),
				},
				checkFiles: {
					fmt.Sprintf("restored %d files, the backup recorded %v", int(details["files"].(float64))+1, details["files"]),
					fmt.Sprintf("restored %d bytes of files, the backup recorded %v", int(details["bytes"].(float64))+1, details["bytes"]),
				},
			}
			for name, want := range wantProblems {
				got := slices.Clone(checks[name].Problems)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s problems:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			if s := checks[checkReferences].Summary; !strings.HasPrefix(s, fmt.Sprintf("2 of %d references have no blob", len(withAbsent))) {
				t.Errorf("references summary %q", s)
			}
			if s := checks[checkBlobHashes].Summary; !strings.HasPrefix(s, "re-hashed 41 of 41 blobs") {
				t.Errorf("blob-hashes summary %q", s)
			}
			way := map[string]string{"auto": "checking the volume's directory directly", "engine": "checking through a helper container"}[read]
			if !strings.Contains(logs.String(), way) {
				t.Errorf("the check did not say %q", way)
			}
			if left := helpersLeft(t, box.Options["target_volume"]); len(left) > 0 {
				t.Errorf("helper containers left behind: %v", left)
			}
		})
	}
}

// TestTeardownSweepsLeftovers: what a killed drill left (a helper
// container still mounting the sandbox, a helper image) carries the
// drill's label, and Teardown removes all of it.
func TestTeardownSweepsLeftovers(t *testing.T) {
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(t.TempDir())})
	label := newDrill(t, p)
	vol := sandbox(t, p, cfg, label).Options["target_volume"]
	e, err := newEngine(p.log)
	must(t, err)
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// As a restore and a check killed midway leave them.
	if _, _, err := e.createHelper(ctx, vol, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.importSelf(ctx, "test leftover", e.labelsFor(ctx, vol)); err != nil {
		t.Fatal(err)
	}
	ctrs, vols, imgs := labelled(t, label)
	if len(ctrs) != 1 || len(vols) != 1 || len(imgs) != 1 {
		t.Fatalf("under the label: containers %v, volumes %v, images %v; want one of each", ctrs, vols, imgs)
	}
	sum := teardown(t, p, label)
	if want := fmt.Sprintf("removed 1 volume %q, 1 helper container, 1 helper image", vol); sum != want {
		t.Errorf("summary %q, want %q", sum, want)
	}
	if ctrs, vols, imgs := labelled(t, label); len(ctrs)+len(vols)+len(imgs) > 0 {
		t.Errorf("left: containers %v, volumes %v, images %v", ctrs, vols, imgs)
	}
	if sum := teardown(t, p, label); sum != "nothing left under mbk.drill="+label {
		t.Errorf("second teardown: %q", sum)
	}
}

func TestSandboxRefuses(t *testing.T) {
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(t.TempDir())})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, label := range []string{"", "-x", "a/b", "a b"} {
		if _, err := p.Sandbox(ctx, sdk.SandboxRequest{Config: cfg, Artifact: artifactID, Label: label}); err == nil || !strings.Contains(err.Error(), "drill label") {
			t.Errorf("Sandbox with label %q: %v", label, err)
		}
		if _, err := p.Teardown(ctx, cfg, label); err == nil {
			t.Errorf("Teardown with label %q succeeded", label)
		}
	}
	// A volume of that name that the drill did not make is never used.
	label := newDrill(t, p)
	testenv.CreateVolume(t, label+"-moodledata")
	_, err := p.Sandbox(ctx, sdk.SandboxRequest{Config: cfg, Artifact: artifactID, Label: label})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Sandbox over an existing volume: %v", err)
	}
	if sum := teardown(t, p, label); !strings.Contains(sum, "nothing left") {
		t.Errorf("teardown touched a volume the drill did not make: %q", sum)
	}
}

// TestCheckContainerOwnFilesystem: a container path that is on none of the
// container's mounts cannot be reached by a helper, and Check says so.
func TestCheckContainerOwnFilesystem(t *testing.T) {
	vol := testenv.UniqueName(t, "mbktest-ownfs")
	testenv.CreateVolume(t, vol)
	app := testenv.StartApp(t, vol, moodleDataroot)
	if _, stderr, code := testenv.Exec(t, app, nil, "mkdir", "-p", "/srv/moodledata"); code != 0 {
		t.Fatal(stderr)
	}
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"container": cty.StringVal(app), "path": cty.StringVal("/srv/moodledata")})
	_, err := p.Check(context.Background(), sdk.CheckRequest{Config: cfg, Artifact: artifactID, Sample: sdk.Sample{Part: 1, Of: 1}})
	if err == nil || !strings.Contains(err.Error(), "not on a volume or bind mount") {
		t.Fatalf("Check: %v", err)
	}
}

// TestCheckCancelledThroughEngine cancels a check whose helper waits for
// references that never end: Check returns promptly, and neither the
// helper container nor its image is left.
func TestCheckCancelledThroughEngine(t *testing.T) {
	p := newTestPlugin(t)
	cfg := testConfig(t, p, map[string]cty.Value{"path": cty.StringVal(t.TempDir()), "read": cty.StringVal("engine")})
	label := newDrill(t, p)
	vol := sandbox(t, p, cfg, label).Options["target_volume"]
	blobTree(t, mountpoint(t, vol), 5)
	fifo := filepath.Join(t.TempDir(), "refs")
	must(t, syscall.Mkfifo(fifo, 0o600))
	// Held open for writing, never closed before the test ends: the
	// references never end.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	must(t, err)
	t.Cleanup(func() { w.Close() })
	fmt.Fprintf(w, "sha1:%s\tmod_page/content/0/a.txt\n", sha1hex([]byte("x")))

	vcfg := testConfig(t, p, map[string]cty.Value{"volume": cty.StringVal(vol), "read": cty.StringVal("engine")})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = p.Check(ctx, sdk.CheckRequest{Config: vcfg, Artifact: artifactID, RefsIn: fifo, Sample: sdk.Sample{Part: 1, Of: 1}})
	if err == nil {
		t.Fatal("Check returned no error")
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Check took %v after its context ended", d)
	}
	if left := helpersLeft(t, vol); len(left) > 0 {
		t.Errorf("helper containers left behind: %v", left)
	}
	if ctrs, _, imgs := labelled(t, label); len(ctrs)+len(imgs) > 0 {
		t.Errorf("left under the drill's label: containers %v, images %v", ctrs, imgs)
	}
}

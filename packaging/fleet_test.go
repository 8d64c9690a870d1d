package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// TestFleetNomadJob: the Nomad job in docs/fleet.md parses with the HCL
// library and is what the page says: a periodic sysbatch job that runs the
// mbk image with the Docker socket, with no overlap.
func TestFleetNomadJob(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "fleet.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```hcl\n(job .*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 1 {
		t.Fatalf("docs/fleet.md has %d hcl blocks starting with job, want 1", len(blocks))
	}
	src := blocks[0][1]
	f, diags := hclsyntax.ParseConfig(src, "fleet.md", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("the Nomad job does not parse: %s", diags)
	}
	body := f.Body.(*hclsyntax.Body)
	if len(body.Blocks) != 1 || body.Blocks[0].Type != "job" {
		t.Fatalf("want one job block")
	}
	job := body.Blocks[0].Body
	literal := func(b *hclsyntax.Body, name string) string {
		t.Helper()
		a, ok := b.Attributes[name]
		if !ok {
			t.Fatalf("no attribute %s", name)
		}
		v, d := a.Expr.Value(nil)
		if d.HasErrors() {
			t.Fatalf("%s: %s", name, d)
		}
		return v.GoString()
	}
	child := func(b *hclsyntax.Body, typ string) *hclsyntax.Body {
		t.Helper()
		for _, c := range b.Blocks {
			if c.Type == typ {
				return c.Body
			}
		}
		t.Fatalf("no %s block", typ)
		return nil
	}
	if got := literal(job, "type"); got != `cty.StringVal("sysbatch")` {
		t.Errorf("job type %s, want sysbatch", got)
	}
	periodic := child(job, "periodic")
	if got := literal(periodic, "prohibit_overlap"); got != "cty.True" {
		t.Errorf("prohibit_overlap = %s", got)
	}
	literal(periodic, "crons")
	task := child(child(job, "group"), "task")
	if got := literal(task, "driver"); got != `cty.StringVal("docker")` {
		t.Errorf("driver %s, want docker", got)
	}
	config := child(task, "config")
	for name, want := range map[string]*regexp.Regexp{
		"image":   regexp.MustCompile(`mbk:`),
		"args":    regexp.MustCompile(`"run"`),
		"volumes": regexp.MustCompile(`/var/run/docker.sock:/var/run/docker.sock`),
	} {
		if got := literal(config, name); !want.MatchString(got) {
			t.Errorf("config.%s = %s, want %s in it", name, got, want)
		}
	}
	if _, ok := child(task, "env").Attributes["MBK_HOST"]; !ok {
		t.Errorf("the task does not set MBK_HOST, which the per-host S3 prefix needs")
	}
}

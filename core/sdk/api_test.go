package sdk_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The SDK's exported API names no generated protocol type and no host-side
// type: a plugin author sees what a plugin needs, and the wire can change
// under it. go doc prints every exported declaration with its signature.
func TestPublicAPI(t *testing.T) {
	out, err := exec.Command("go", "doc", "-all", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go doc: %v\n%s", err, out)
	}
	doc := string(out)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`\bpb\.`),                 // generated wire types
		regexp.MustCompile(`\bproto\.`),              // protobuf
		regexp.MustCompile(`\bgrpc\.`),               // gRPC
		regexp.MustCompile(`\bpluginhost\.[A-Z]\w*`), // the host (a doc comment may name the package)
		regexp.MustCompile(`(?m)^func .*\bClient\b`), // a host client
		regexp.MustCompile(`(?m)^type \w*(Client|Reply)\b`),
	} {
		if loc := bad.FindStringIndex(doc); loc != nil && !inComment(doc, loc[0]) {
			t.Errorf("the SDK's exported API shows %q:\n%s", doc[loc[0]:loc[1]], lineAt(doc, loc[0]))
		}
	}
	for _, want := range []string{"func Serve(name string, factory func(log hclog.Logger) Plugin, opts ...ServeOpt) error", "func Main(", "func (c Config) Decode(", "Int    = spec.Int", "func WithDebug("} {
		if !strings.Contains(doc, want) {
			t.Errorf("the SDK's API lacks %q", want)
		}
	}
}

// inComment reports whether the text at i is in an indented doc comment.
func inComment(doc string, i int) bool {
	return strings.HasPrefix(lineAt(doc, i), "    ")
}

func lineAt(doc string, i int) string {
	start := strings.LastIndexByte(doc[:i], '\n') + 1
	end := strings.IndexByte(doc[i:], '\n')
	if end < 0 {
		return doc[start:]
	}
	return doc[start : i+end]
}

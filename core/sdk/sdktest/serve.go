package sdktest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/pluginhost"
	"github.com/mbk-backup/mbk/core/sdk"
)

// DefaultTimeout is how long a kit lets a cancelled call take to return
// when the case sets no Timeout. It is no timing assertion: only a hang, by
// a wide margin, fails.
const DefaultTimeout = 30 * time.Second

// callTimeout bounds every call that is not meant to be cancelled, so that a
// hang fails the test instead of blocking it.
const callTimeout = 10 * time.Minute

// serve serves impl in this process, as mbk serves its built-in plugins
// (sdk.Serve's debug mode, reached by reattaching over the protocol), and
// returns the host's client for it. The plugin stops at the end of the test.
func serve(t testing.TB, impl sdk.Plugin, timeout time.Duration) *pluginhost.Client {
	t.Helper()
	name := impl.Describe().Name
	h := pluginhost.New(pluginhost.Options{Logger: hclog.NewNullLogger(), Builtins: map[string]func(hclog.Logger) sdk.Plugin{
		name: func(hclog.Logger) sdk.Plugin { return impl },
	}})
	t.Cleanup(h.Close)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, _, err := h.Get(ctx, name)
	if err != nil {
		t.Fatalf("serve plugin %q and reach it through the protocol: %v", name, err)
	}
	return c
}

// describe checks what the plugin says of itself through the protocol.
func describe(t testing.TB, c *pluginhost.Client, p sdk.Plugin, kind string) sdk.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	info, err := c.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if want := p.Describe().Name; info.Name != want {
		t.Errorf("Describe through the protocol names %q, want %q", info.Name, want)
	}
	if !slices.Contains(info.Kinds, kind) {
		t.Fatalf("Describe lists the kinds %v, not %q", info.Kinds, kind)
	}
	if info.Version == "" {
		t.Errorf("Describe gives no version")
	}
	if info.Description == "" {
		t.Errorf("Describe gives no description (`mbk plugins` shows it)")
	}
	return info
}

// secretName matches setting names that hold a secret. Those that name
// where a secret is (a file, an environment variable) do not.
var (
	secretName   = regexp.MustCompile(`(^|_)(password|passwd|passphrase|secret|token|api_key|access_key|secret_key|private_key|key)($|_)`)
	secretHolder = regexp.MustCompile(`_(file|path|env|command|id)$`)
)

// schema checks a kind's schema, as the plugin declares it and as it
// arrives through the protocol, and returns the plugin's own (with its
// defaults, which stay inside the plugin).
func schema(t testing.TB, c *pluginhost.Client, p sdk.Plugin, kind string) sdk.Schema {
	t.Helper()
	s, err := p.Schema(kind)
	if err != nil {
		t.Fatalf("Schema(%q): %v", kind, err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Schema(%q) is broken: %v", kind, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	got, err := c.Schema(ctx, kind)
	if err != nil {
		t.Fatalf("Schema(%q) through the protocol: %v", kind, err)
	}
	sameAttrs(t, "setting", s.Attributes, got.Attributes)
	sameAttrs(t, "restore option", s.RestoreOptions, got.RestoreOptions)
	for _, as := range [][]sdk.Attribute{s.Attributes, s.RestoreOptions} {
		for _, a := range as {
			if !a.Sensitive && secretName.MatchString(a.Name) && !secretHolder.MatchString(a.Name) {
				t.Errorf("%q looks like a secret but is not Sensitive: the core would show and log it", a.Name)
			}
		}
	}
	return s
}

// sameAttrs checks that attributes arrive through the protocol as declared.
func sameAttrs(t testing.TB, what string, want, got []sdk.Attribute) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%d %ss declared, %d arrived through the protocol", len(want), what, len(got))
		return
	}
	for i, w := range want {
		g := got[i]
		if w.Name != g.Name || w.Type != g.Type || w.Required != g.Required || w.Sensitive != g.Sensitive || w.Flag != g.Flag {
			t.Errorf("%s %q arrived through the protocol as %q (%s, required %v, sensitive %v, flag %q), declared %s, required %v, sensitive %v, flag %q",
				what, w.Name, g.Name, g.Type, g.Required, g.Sensitive, g.Flag, w.Type, w.Required, w.Sensitive, w.Flag)
		}
	}
}

// encode is a stage body as the core sends it: checked against the schema
// as a pipeline file would be (unknown settings, required ones, types and
// whole numbers), the settings left out null. Defaults stay inside the
// plugin.
func encode(kind string, s sdk.Schema, attrs map[string]cty.Value) (*pb.Config, error) {
	if _, err := sdk.NewConfig(kind, s, attrs); err != nil {
		return nil, err
	}
	v, err := object(s.Attributes, attrs)
	if err != nil {
		return nil, err
	}
	return wire.EncodeConfig(kind, v, s)
}

// object is the value of attrs, typed as declared, null where left out.
func object(as []sdk.Attribute, attrs map[string]cty.Value) (cty.Value, error) {
	obj := map[string]cty.Value{}
	for _, a := range as {
		v, ok := attrs[a.Name]
		if !ok {
			obj[a.Name] = cty.NullVal(a.Type.Cty())
			continue
		}
		cv, err := convertTo(v, a)
		if err != nil {
			return cty.NilVal, err
		}
		obj[a.Name] = cv
	}
	if len(obj) == 0 {
		return cty.EmptyObjectVal, nil
	}
	return cty.ObjectVal(obj), nil
}

// validate has the plugin check the settings, as `mbk validate` does, and
// fails the test on an error diagnostic.
func validate(t testing.TB, c *pluginhost.Client, cfg *pb.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	diags, err := c.ValidateConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("ValidateConfig: %v", err)
	}
	for _, d := range diags {
		if !d.Error {
			t.Logf("ValidateConfig warns: %s: %s", d.Attribute, d.Summary)
		}
	}
	if err := diags.Err(); err != nil {
		t.Fatalf("ValidateConfig refuses the settings: %v", err)
	}
}

// secrets lists the values of the sensitive settings in attrs: strings, and
// the strings in lists and maps. Values shorter than minSecret are left out:
// they would turn up in any text by chance.
func secrets(s sdk.Schema, attrs map[string]cty.Value) []string {
	var out []string
	for _, a := range s.Attributes {
		v, ok := attrs[a.Name]
		if !ok || !a.Sensitive {
			continue
		}
		_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
			if x.Type() == cty.String && x.IsKnown() && !x.IsNull() && len(x.AsString()) >= minSecret {
				out = append(out, x.AsString())
			}
			return true, nil
		})
	}
	return out
}

// minSecret is the shortest secret the kits look for.
const minSecret = 6

// noSecret fails the test when text holds one of secrets.
func noSecret(t testing.TB, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s holds the value of a sensitive setting (%s…): %s", what, s[:3], strings.ReplaceAll(text, s, "<SECRET>"))
		}
	}
}

// wait waits for ch, or fails the test after timeout with what.
func wait[T any](t testing.TB, ch <-chan T, timeout time.Duration, format string, args ...any) (T, bool) {
	t.Helper()
	select {
	case v := <-ch:
		return v, true
	case <-time.After(timeout):
		t.Errorf(format+" (waited %v)", append(args, timeout)...)
		var zero T
		return zero, false
	}
}

// convertTo converts v to the attribute's type, as the core does with a
// value from a pipeline file.
func convertTo(v cty.Value, a sdk.Attribute) (cty.Value, error) {
	cv, err := convert.Convert(v, a.Type.Cty())
	if err == nil {
		err = a.Type.Check(cv)
	}
	if err != nil {
		return cty.NilVal, fmt.Errorf("%q: %w", a.Name, err)
	}
	return cv, nil
}

func timeoutOr(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return DefaultTimeout
}

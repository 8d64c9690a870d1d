package sdk

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Config is a stage body (or a restore's options) as the plugin receives
// it: an object value of the schema's attributes, with those the user left
// out set to their default (or null when there is none).
type Config struct {
	Kind  string
	Value cty.Value
}

// Decode copies the config into a struct whose fields carry `cty:"name"`
// tags. Null attributes leave their field untouched, so a caller can preset
// values. An Int attribute decodes into any Go integer type.
func (c Config) Decode(into any) error {
	rv := reflect.ValueOf(into)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("Decode needs a pointer to a struct, got %T", into)
	}
	rv = rv.Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		tag := rt.Field(i).Tag.Get("cty")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" || c.Value.IsNull() || !c.Value.Type().IsObjectType() || !c.Value.Type().HasAttribute(name) {
			continue
		}
		v := c.Value.GetAttr(name)
		if v.IsNull() {
			continue
		}
		if err := gocty.FromCtyValue(v, rv.Field(i).Addr().Interface()); err != nil {
			return fmt.Errorf("setting %q: %w", name, err)
		}
	}
	return nil
}

// withDefaults replaces null attributes by their defaults.
func withDefaults(v cty.Value, attrs []Attribute) cty.Value {
	if v.IsNull() || !v.Type().IsObjectType() {
		return v
	}
	vals := v.AsValueMap()
	if vals == nil {
		vals = map[string]cty.Value{}
	}
	for _, a := range attrs {
		cur, ok := vals[a.Name]
		if (!ok || cur.IsNull()) && a.Default != cty.NilVal {
			vals[a.Name] = a.Default
		}
	}
	if len(vals) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(vals)
}

// NewConfig builds a Config from Go-side values, as the core would after
// decoding a stage body: for a plugin's own tests. Missing attributes become
// null, then take their default; a value that does not fit its attribute's
// type (1.5 for an Int) is an error, as it would be in a pipeline file.
func NewConfig(kind string, s Schema, attrs map[string]cty.Value) (Config, error) {
	v, err := objectOf(s.Attributes, attrs)
	if err != nil {
		return Config{}, err
	}
	return Config{Kind: kind, Value: withDefaults(v, s.Attributes)}, nil
}

// NewRestoreOptions builds a restore's options as `mbk restore` would from
// the values on its command line: for a plugin's own tests.
func NewRestoreOptions(s Schema, opts map[string]string) (Config, error) {
	vals := make(map[string]cty.Value, len(opts))
	for k, v := range opts {
		vals[k] = cty.StringVal(v)
	}
	v, err := objectOf(s.RestoreOptions, vals)
	if err != nil {
		return Config{}, err
	}
	return Config{Kind: restoreKind, Value: withDefaults(v, s.RestoreOptions)}, nil
}

// restoreKind is the Kind of a restore's options.
const restoreKind = "restore"

func objectOf(as []Attribute, vals map[string]cty.Value) (cty.Value, error) {
	obj := map[string]cty.Value{}
	for _, a := range as {
		v, ok := vals[a.Name]
		if !ok {
			if a.Required {
				return cty.NilVal, fmt.Errorf("setting %q is required", a.Name)
			}
			obj[a.Name] = cty.NullVal(a.Type.Cty())
			continue
		}
		cv, err := convert.Convert(v, a.Type.Cty())
		if err != nil {
			return cty.NilVal, fmt.Errorf("setting %q: %w", a.Name, err)
		}
		if err := a.Type.Check(cv); err != nil {
			return cty.NilVal, fmt.Errorf("setting %q: %w", a.Name, err)
		}
		obj[a.Name] = cv
	}
	for name := range vals {
		if !hasAttr(as, name) {
			return cty.NilVal, fmt.Errorf("unknown setting %q", name)
		}
	}
	if len(obj) == 0 {
		return cty.EmptyObjectVal, nil
	}
	return cty.ObjectVal(obj), nil
}

func hasAttr(as []Attribute, name string) bool {
	for _, a := range as {
		if a.Name == name {
			return true
		}
	}
	return false
}

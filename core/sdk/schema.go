package sdk

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"github.com/zclconf/go-cty/cty/msgpack"

	pb "github.com/mbk-backup/mbk/core/sdk/proto"
)

// Attribute is one setting a plugin accepts in a stage body.
type Attribute struct {
	Name        string
	Type        cty.Type
	Required    bool
	Sensitive   bool // never logged, never shown; passwords and tokens
	Description string
	// Default is used by Config.Decode when the user left the attribute out.
	// It stays inside the plugin; the core sees a null.
	Default cty.Value
}

// Schema is the set of attributes one stage kind of a plugin accepts.
type Schema struct {
	Attributes []Attribute
}

// ImpliedType is the object type a decoded stage body has.
func (s Schema) ImpliedType() cty.Type {
	attrs := make(map[string]cty.Type, len(s.Attributes))
	for _, a := range s.Attributes {
		attrs[a.Name] = a.Type
	}
	return cty.Object(attrs)
}

// Spec is the hcldec specification the core decodes a stage body with.
func (s Schema) Spec() hcldec.ObjectSpec {
	spec := hcldec.ObjectSpec{}
	for _, a := range s.Attributes {
		spec[a.Name] = &hcldec.AttrSpec{Name: a.Name, Type: a.Type, Required: a.Required}
	}
	return spec
}

// Attribute returns the named attribute.
func (s Schema) Attribute(name string) (Attribute, bool) {
	for _, a := range s.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

func (s Schema) toProto() (*pb.SchemaResponse, error) {
	out := &pb.SchemaResponse{}
	for _, a := range s.Attributes {
		tj, err := ctyjson.MarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		out.Attributes = append(out.Attributes, &pb.Attribute{
			Name: a.Name, TypeJson: tj, Required: a.Required,
			Sensitive: a.Sensitive, Description: a.Description,
		})
	}
	return out, nil
}

func schemaFromProto(p *pb.SchemaResponse) (Schema, error) {
	var s Schema
	for _, a := range p.GetAttributes() {
		t, err := ctyjson.UnmarshalType(a.TypeJson)
		if err != nil {
			return Schema{}, fmt.Errorf("attribute %q has a bad type: %w", a.Name, err)
		}
		s.Attributes = append(s.Attributes, Attribute{
			Name: a.Name, Type: t, Required: a.Required,
			Sensitive: a.Sensitive, Description: a.Description,
		})
	}
	return s, nil
}

// Config is a stage body as the plugin receives it: an object value of the
// schema's implied type, with attributes the user left out set to their
// default (or null when there is none).
type Config struct {
	Kind  string
	Value cty.Value
}

// Decode copies the config into a struct whose fields carry `cty:"name"` tags.
// Null attributes leave their field untouched, so a caller can preset values.
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
		if name == "" || name == "-" || !c.Value.Type().IsObjectType() || !c.Value.Type().HasAttribute(name) {
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

// withDefaults replaces null attributes by the schema's defaults.
func withDefaults(v cty.Value, s Schema) cty.Value {
	if v.IsNull() || !v.Type().IsObjectType() {
		return v
	}
	attrs := v.AsValueMap()
	if attrs == nil {
		attrs = map[string]cty.Value{}
	}
	for _, a := range s.Attributes {
		cur, ok := attrs[a.Name]
		if (!ok || cur.IsNull()) && a.Default != cty.NilVal {
			attrs[a.Name] = a.Default
		}
	}
	return cty.ObjectVal(attrs)
}

// EncodeConfig turns a decoded stage body into its wire form.
func EncodeConfig(kind string, v cty.Value, s Schema) (*pb.Config, error) {
	b, err := msgpack.Marshal(v, s.ImpliedType())
	if err != nil {
		return nil, err
	}
	return &pb.Config{Kind: kind, Msgpack: b}, nil
}

func decodeConfig(p *pb.Config, s Schema) (Config, error) {
	v, err := msgpack.Unmarshal(p.GetMsgpack(), s.ImpliedType())
	if err != nil {
		return Config{}, fmt.Errorf("decode %s settings: %w", p.GetKind(), err)
	}
	return Config{Kind: p.GetKind(), Value: withDefaults(v, s)}, nil
}

// NewConfig builds a Config from Go-side values, as the core would after
// decoding a stage body: for plugin tests and for hosts that serve a plugin
// in-process. Missing attributes become null, then take their default.
func NewConfig(kind string, s Schema, attrs map[string]cty.Value) (Config, error) {
	obj := map[string]cty.Value{}
	for _, a := range s.Attributes {
		v, ok := attrs[a.Name]
		if !ok {
			if a.Required {
				return Config{}, fmt.Errorf("setting %q is required", a.Name)
			}
			obj[a.Name] = cty.NullVal(a.Type)
			continue
		}
		cv, err := convertValue(v, a.Type)
		if err != nil {
			return Config{}, fmt.Errorf("setting %q: %w", a.Name, err)
		}
		obj[a.Name] = cv
	}
	for name := range attrs {
		if _, ok := s.Attribute(name); !ok {
			return Config{}, fmt.Errorf("unknown setting %q", name)
		}
	}
	return Config{Kind: kind, Value: withDefaults(cty.ObjectVal(obj), s)}, nil
}

func convertValue(v cty.Value, t cty.Type) (cty.Value, error) { return convert.Convert(v, t) }

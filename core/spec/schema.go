package spec

import (
	"fmt"
	"slices"

	"github.com/zclconf/go-cty/cty"
)

// Type is the type of a setting. It is a cty type, plus whether the numbers
// in it must be whole: HCL has one number type, and a port or a count
// decoded as a float is a bug waiting for "3306.5".
type Type struct {
	ty    cty.Type
	whole bool
}

// The types a setting can have.
var (
	String = Type{ty: cty.String}
	Bool   = Type{ty: cty.Bool}
	Number = Type{ty: cty.Number}
	// Int is a whole number: the core refuses 1.5 with the file and line.
	Int = Type{ty: cty.Number, whole: true}
)

// List is a list of elem.
func List(elem Type) Type { return Type{ty: cty.List(elem.ty), whole: elem.whole} }

// Map is a map of string keys to elem.
func Map(elem Type) Type { return Type{ty: cty.Map(elem.ty), whole: elem.whole} }

// Object is a group of settings a user writes as a block named for the
// attribute, `object_lock { mode = "governance", days = 30 }`: each of its
// attributes is optional there (null when left out; the plugin says which
// it needs). The protocol carries one whole-number flag per setting, so an
// Object's numbers are all whole when one of its attributes is an Int.
func Object(attrs map[string]Type) Type {
	tys := make(map[string]cty.Type, len(attrs))
	whole := false
	for name, t := range attrs {
		tys[name] = t.ty
		whole = whole || t.whole
	}
	return Type{ty: cty.Object(tys), whole: whole}
}

// Block reports whether the setting is written as a block (an Object).
func (t Type) Block() bool { return t.ty.IsObjectType() }

// TypeOf is a Type from its cty type and whether its numbers are whole: for
// the core, which receives both over the wire.
func TypeOf(ty cty.Type, whole bool) Type { return Type{ty: ty, whole: whole} }

// Cty is the cty type the core decodes the setting as.
func (t Type) Cty() cty.Type { return t.ty }

// Whole reports whether the numbers in the type must be whole.
func (t Type) Whole() bool { return t.whole }

// Valid reports whether the type was set.
func (t Type) Valid() bool { return t.ty != cty.NilType }

// String names the type as a user reads it in a message: "string",
// "whole number", "list of whole number".
func (t Type) String() string {
	if !t.Valid() {
		return "no type"
	}
	if t.Block() {
		return "block"
	}
	name := t.ty.FriendlyName()
	if t.whole {
		return fmtWhole(t.ty)
	}
	return name
}

func fmtWhole(ty cty.Type) string {
	switch {
	case ty == cty.Number:
		return "whole number"
	case ty.IsListType():
		return "list of " + fmtWhole(ty.ElementType())
	case ty.IsMapType():
		return "map of " + fmtWhole(ty.ElementType())
	}
	return ty.FriendlyName()
}

// Check says why a value of the type's cty type does not fit it (a number
// that is not whole), or returns nil. Null and unknown values fit.
func (t Type) Check(v cty.Value) error {
	if !t.whole || v.IsNull() || !v.IsWhollyKnown() {
		return nil
	}
	var bad error
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if bad == nil && x.Type() == cty.Number && !x.IsNull() && x.IsKnown() && !x.AsBigFloat().IsInt() {
			bad = fmt.Errorf("%s is not a whole number", x.AsBigFloat().Text('g', -1))
		}
		return bad == nil, nil
	})
	return bad
}

// Attribute is one setting a plugin accepts in a stage body.
type Attribute struct {
	Name        string
	Type        Type
	Required    bool
	Sensitive   bool // never logged, never shown; passwords and tokens
	Description string
	// Default is used by Config.Decode when the user left the attribute
	// out. It stays inside the plugin; the core sees a null.
	Default cty.Value
	// Flag, for a restore option only, is the common `mbk restore` flag
	// that sets it: "target-database", "target-volume", "target-path",
	// "clean" or "keep-special" (the last two Bools). Any option can also be set with
	// --restore-opt STAGE.NAME=VALUE.
	Flag string
}

// Schema is what one stage kind of a plugin accepts.
type Schema struct {
	// Attributes are the settings of the stage body.
	Attributes []Attribute
	// RestoreOptions (dump and archive) are what `mbk restore` may ask of
	// the stage: where to put an artifact back, whether to replace what is
	// there. The core knows none of their names; the plugin declares them.
	RestoreOptions []Attribute
	// Events (notify only) are the events a stage hears when its `on` is
	// not set; none means DefaultEvents. A dead-man ping wants the start
	// of every run, an e-mail does not.
	Events []string
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

// ImpliedType is the object type a decoded stage body has.
func (s Schema) ImpliedType() cty.Type { return ObjectType(s.Attributes) }

// ObjectType is the object type of values of these attributes.
func ObjectType(as []Attribute) cty.Type {
	attrs := make(map[string]cty.Type, len(as))
	for _, a := range as {
		attrs[a.Name] = a.Type.ty
	}
	return cty.Object(attrs)
}

// RestoreFlags are the common `mbk restore` flags a restore option can
// answer, with the type the option must have.
var RestoreFlags = map[string]Type{
	"target-database": String,
	"target-volume":   String,
	"target-path":     String,
	"clean":           Bool,
	"keep-special":    Bool,
}

// Check says what is wrong with the schema itself (a plugin bug), or returns
// nil: every attribute named once and typed, each default of its type, each
// restore flag known and answered by one option of its type.
func (s Schema) Check() error {
	if err := checkAttrs(s.Attributes, false); err != nil {
		return err
	}
	if err := checkAttrs(s.RestoreOptions, true); err != nil {
		return fmt.Errorf("restore option: %w", err)
	}
	for _, e := range s.Events {
		if !slices.Contains(Events(), e) {
			return fmt.Errorf("event %q is not one of %v", e, Events())
		}
	}
	return nil
}

func checkAttrs(as []Attribute, restore bool) error {
	seen := map[string]bool{}
	flags := map[string]string{}
	for _, a := range as {
		if a.Flag != "" {
			t, ok := RestoreFlags[a.Flag]
			switch {
			case !restore:
				return fmt.Errorf("attribute %q: only restore options answer a flag", a.Name)
			case !ok:
				return fmt.Errorf("attribute %q answers an unknown flag --%s", a.Name, a.Flag)
			case flags[a.Flag] != "":
				return fmt.Errorf("attributes %q and %q both answer --%s", flags[a.Flag], a.Name, a.Flag)
			case a.Type != t:
				return fmt.Errorf("attribute %q answers --%s, so it is a %s, not a %s", a.Name, a.Flag, t, a.Type)
			}
			flags[a.Flag] = a.Name
		}
		switch {
		case a.Name == "":
			return fmt.Errorf("an attribute has no name")
		case seen[a.Name]:
			return fmt.Errorf("attribute %q is declared twice", a.Name)
		case !a.Type.Valid():
			return fmt.Errorf("attribute %q has no type", a.Name)
		case a.Required && a.Default != cty.NilVal:
			return fmt.Errorf("attribute %q is required and has a default", a.Name)
		case restore && a.Type.Block():
			return fmt.Errorf("attribute %q is a block: a restore option is a single value", a.Name)
		}
		seen[a.Name] = true
		if a.Default != cty.NilVal {
			if !a.Default.Type().Equals(a.Type.ty) {
				return fmt.Errorf("attribute %q: the default is a %s, not a %s", a.Name, a.Default.Type().FriendlyName(), a.Type)
			}
			if err := a.Type.Check(a.Default); err != nil {
				return fmt.Errorf("attribute %q: the default: %v", a.Name, err)
			}
		}
	}
	return nil
}

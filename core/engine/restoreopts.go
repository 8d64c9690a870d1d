package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/spec"
)

// RestoreRequest is what a person asked of a restore, before any plugin's
// option names are known: the common flags (--target-database, --clean...)
// and the generic --restore-opt STAGE.NAME=VALUE settings. BindRestore maps
// them onto the options each stage's plugin declares.
type RestoreRequest struct {
	// Flags holds the common flags that were given: "target-database",
	// "target-volume", "target-path" (their values) and "clean" ("true").
	Flags map[string]string
	// Opts are STAGE.NAME=VALUE settings, STAGE being a stage's name.
	Opts []string
}

// BoundOptions are one step's restore options: what the plugin will be
// sent, and for people, each option set and its value.
type BoundOptions struct {
	Wire []byte
	Set  map[string]string
}

// BindRestore checks a restore request against the restore options each
// step's plugin declares and encodes them. A flag that no step answers, an
// option a plugin does not declare, a value of the wrong type or a required
// option left out is an error that names the stage (file and line) and the
// option.
func BindRestore(steps []RestoreStep, req RestoreRequest) (map[*Stage]BoundOptions, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vals := map[*Stage]map[string]string{}
	var stages []*Stage
	for _, st := range steps {
		if _, ok := vals[st.Stage]; !ok {
			vals[st.Stage] = map[string]string{}
			stages = append(stages, st.Stage)
		}
	}
	flags := make([]string, 0, len(req.Flags))
	for f := range req.Flags {
		flags = append(flags, f)
	}
	sort.Strings(flags)
	for _, flag := range flags {
		answered := false
		for _, s := range stages {
			for _, o := range s.Schema.RestoreOptions {
				if o.Flag == flag {
					vals[s][o.Name] = req.Flags[flag]
					answered = true
				}
			}
		}
		if !answered {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Restore flag not answered",
				Detail: fmt.Sprintf("--%s: no stage of this restore declares an option for it (%s).", flag, describeOptions(stages))})
		}
	}
	for _, kv := range req.Opts {
		s, name, value, err := parseRestoreOpt(stages, kv)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid --restore-opt", Detail: err.Error()})
			continue
		}
		vals[s][name] = value
	}
	out := map[*Stage]BoundOptions{}
	for _, s := range stages {
		b, d := bindStage(s, vals[s])
		diags = append(diags, d...)
		out[s] = b
	}
	return out, diags
}

func parseRestoreOpt(stages []*Stage, kv string) (*Stage, string, string, error) {
	key, value, ok := strings.Cut(kv, "=")
	stage, name, ok2 := strings.Cut(key, ".")
	if !ok || !ok2 || stage == "" || name == "" {
		return nil, "", "", fmt.Errorf("%q: expected STAGE.NAME=VALUE, e.g. mysql.target_database=moodle_copy", kv)
	}
	var match []*Stage
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
		if s.Name == stage {
			match = append(match, s)
		}
	}
	switch {
	case len(match) == 0:
		return nil, "", "", fmt.Errorf("%q: no stage of this restore is named %q (they are %s)", kv, stage, strings.Join(names, ", "))
	case len(match) > 1:
		return nil, "", "", fmt.Errorf("%q: %d stages of this restore are named %q: give them distinct names in the pipeline", kv, len(match), stage)
	}
	s := match[0]
	if !slices.ContainsFunc(s.Schema.RestoreOptions, func(o spec.Attribute) bool { return o.Name == name }) {
		if _, ok := s.Schema.Attribute(name); ok {
			return nil, "", "", fmt.Errorf("%q: %q is a setting of stage %s, not a restore option (%s)", kv, name, s.ID(), describeOptions(match))
		}
		return nil, "", "", fmt.Errorf("%q: stage %s declares no restore option %q (%s)", kv, s.ID(), name, describeOptions(match))
	}
	return s, name, value, nil
}

// describeOptions lists what the stages accept, for an error message.
func describeOptions(stages []*Stage) string {
	var parts []string
	for _, s := range stages {
		var opts []string
		for _, o := range s.Schema.RestoreOptions {
			d := o.Name
			if o.Flag != "" {
				d += " (--" + o.Flag + ")"
			}
			opts = append(opts, d)
		}
		if len(opts) == 0 {
			parts = append(parts, s.ID()+" declares no restore options")
			continue
		}
		parts = append(parts, s.ID()+" declares "+strings.Join(opts, ", "))
	}
	return strings.Join(parts, "; ")
}

// bindStage converts one stage's option values to their declared types.
func bindStage(s *Stage, vals map[string]string) (BoundOptions, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	bad := func(format string, args ...any) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid restore option",
			Detail: fmt.Sprintf("%s: ", s.ID()) + fmt.Sprintf(format, args...), Subject: s.DeclRange.Ptr()})
	}
	obj := map[string]cty.Value{}
	set := map[string]string{}
	for _, o := range s.Schema.RestoreOptions {
		raw, ok := vals[o.Name]
		if !ok {
			if o.Required {
				bad("the restore option %q is required: %s", o.Name, howToSet(s, o))
			}
			obj[o.Name] = cty.NullVal(o.Type.Cty())
			continue
		}
		v, err := convert.Convert(cty.StringVal(raw), o.Type.Cty())
		if err == nil {
			err = o.Type.Check(v)
		}
		if err != nil {
			bad("restore option %q is a %s, not %q", o.Name, o.Type, raw)
			obj[o.Name] = cty.NullVal(o.Type.Cty())
			continue
		}
		obj[o.Name] = v
		if o.Sensitive {
			raw = "(sensitive)"
		}
		set[o.Name] = raw
	}
	v := cty.EmptyObjectVal
	if len(obj) > 0 {
		v = cty.ObjectVal(obj)
	}
	if diags.HasErrors() {
		return BoundOptions{}, diags
	}
	b, err := wire.EncodeValue(v, s.Schema.RestoreOptions)
	if err != nil {
		bad("cannot encode the restore options: %v", err)
	}
	return BoundOptions{Wire: b, Set: set}, diags
}

func howToSet(s *Stage, o spec.Attribute) string {
	if o.Flag != "" {
		return fmt.Sprintf("give --%s or --restore-opt %s.%s=VALUE", o.Flag, s.Name, o.Name)
	}
	return fmt.Sprintf("give --restore-opt %s.%s=VALUE", s.Name, o.Name)
}

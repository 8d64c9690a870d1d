package config

import (
	"fmt"
	"os"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// envLookup finds a variable in the process environment first, then in the
// file's env_file: what the shell exports wins, like docker compose does.
type envLookup struct {
	file map[string]string
	// record learns which variables came from the file (CheckEnvFile).
	record *envFile
}

func (e envLookup) get(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	v, ok := e.file[name]
	if ok {
		e.record.use(name)
	}
	return v, ok
}

// envFunction is env("NAME") or env("NAME", "fallback"). It is not in the
// cty stdlib. An unset variable without a fallback is an error that names it.
func envFunction(env envLookup) function.Function {
	return function.New(&function.Spec{
		Description: "Reads an environment variable (or the file's env_file).",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "fallback", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if len(args) > 2 {
				return cty.NilVal, fmt.Errorf("env takes a name and at most one fallback")
			}
			if v, ok := env.get(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %s is not set (and no env_file sets it); set it or give env(%q, \"fallback\")", name, name)
		},
	})
}

func functions(env envLookup) map[string]function.Function {
	return map[string]function.Function{
		"env":        envFunction(env),
		"upper":      stdlib.UpperFunc,
		"lower":      stdlib.LowerFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"format":     stdlib.FormatFunc,
		"join":       stdlib.JoinFunc,
		"split":      stdlib.SplitFunc,
		"concat":     stdlib.ConcatFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"tostring":   stdlib.MakeToFunc(cty.String),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"tobool":     stdlib.MakeToFunc(cty.Bool),
		"max":        stdlib.MaxFunc,
		"min":        stdlib.MinFunc,
		"replace":    stdlib.ReplaceFunc,
		"substr":     stdlib.SubstrFunc,
		"length":     stdlib.LengthFunc,
		"contains":   stdlib.ContainsFunc,
		"merge":      stdlib.MergeFunc,
		"flatten":    stdlib.FlattenFunc,
		"distinct":   stdlib.DistinctFunc,
		"formatlist": stdlib.FormatListFunc,
	}
}

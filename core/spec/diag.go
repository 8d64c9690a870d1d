package spec

import (
	"errors"
	"fmt"
	"strings"
)

// Diagnostic is a problem a plugin found in a stage's settings. Attribute
// names the setting at fault ("" for the stage as a whole), so the core can
// point at its line in the user's file.
type Diagnostic struct {
	Error     bool // false: a warning
	Summary   string
	Detail    string
	Attribute string
}

// Diagnostics is a list of problems.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if x.Error {
			return true
		}
	}
	return false
}

// Err joins the errors (not the warnings) into one error, or returns nil:
// for a plugin that checks its settings again where it uses them.
func (d Diagnostics) Err() error {
	var errs []error
	for _, x := range d {
		if !x.Error {
			continue
		}
		msg := x.Summary
		if x.Attribute != "" {
			msg = x.Attribute + ": " + msg
		}
		if x.Detail != "" {
			msg += " (" + strings.TrimSuffix(x.Detail, ".") + ")"
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// Errorf returns an error diagnostic about an attribute ("" for the stage).
func Errorf(attribute, format string, args ...any) Diagnostic {
	return Diagnostic{Error: true, Summary: fmt.Sprintf(format, args...), Attribute: attribute}
}

// Warnf returns a warning diagnostic about an attribute ("" for the stage).
func Warnf(attribute, format string, args ...any) Diagnostic {
	return Diagnostic{Summary: fmt.Sprintf(format, args...), Attribute: attribute}
}

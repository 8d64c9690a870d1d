// Package sdk is what an mbk plugin imports, and all it needs: the stage
// interfaces, the settings schema and its types, Config with Decode,
// diagnostics, the run report a notifier receives, and Serve.
//
// A plugin is one binary named mbk-plugin-<name>, dropped into a plugin
// directory. It implements Plugin plus one interface per stage kind it serves
// (Source for dump and archive, Checksummer, Retainer, Storer, Notifier), and
// its main calls Main (or Serve, to handle the error itself):
//
//	func main() {
//		sdk.Main("webhook", func(log hclog.Logger) sdk.Plugin { return &webhook{log: log} })
//	}
//
// The conformance kits in core/sdk/sdktest check a plugin through the real
// protocol, as mbk will use it.
package sdk

import (
	"github.com/mbk-backup/mbk/core/spec"
)

// Stage kinds, in the order a pipeline runs them.
const (
	KindDump     = spec.KindDump
	KindArchive  = spec.KindArchive
	KindChecksum = spec.KindChecksum
	KindRetain   = spec.KindRetain
	KindStore    = spec.KindStore
	KindNotify   = spec.KindNotify
)

// Kinds lists every stage kind in run order.
func Kinds() []string { return spec.Kinds() }

// Info describes a plugin to the core.
type Info struct {
	// Name is the plugin's name: the binary is mbk-plugin-<Name>.
	Name        string
	Version     string
	Kinds       []string
	Description string
}

// Schema is what one stage kind of a plugin accepts: the settings of its
// stage body and, for dump and archive, the options of its restore.
type Schema = spec.Schema

// Attribute is one setting (or restore option).
type Attribute = spec.Attribute

// Type is a setting's type.
type Type = spec.Type

// The types a setting can have. Int is a whole number: the core refuses 1.5
// where an Int is expected, with the file and line, before the plugin sees it.
var (
	String = spec.String
	Bool   = spec.Bool
	Number = spec.Number
	Int    = spec.Int
)

// List is a list of elem.
func List(elem Type) Type { return spec.List(elem) }

// Map is a map of string keys to elem.
func Map(elem Type) Type { return spec.Map(elem) }

// Object is a group of settings written as a block named for the setting
// (`object_lock { mode = "governance", days = 30 }`); each of its
// attributes may be left out (null). Decode it into a pointer to a struct
// whose fields are pointers with `cty` tags. Its numbers are all whole when
// one of its attributes is an Int.
func Object(attrs map[string]Type) Type { return spec.Object(attrs) }

// Diagnostic is a problem found in a stage's settings; Attribute names the
// setting at fault, so the user is shown its file and line.
type Diagnostic = spec.Diagnostic

// Diagnostics is a list of problems. Its Err method joins the errors into
// one error, for a plugin that checks its settings again where it uses them.
type Diagnostics = spec.Diagnostics

// Errorf returns an error diagnostic about an attribute ("" for the stage).
func Errorf(attribute, format string, args ...any) Diagnostic {
	return spec.Errorf(attribute, format, args...)
}

// Warnf returns a warning diagnostic about an attribute ("" for the stage).
func Warnf(attribute, format string, args ...any) Diagnostic {
	return spec.Warnf(attribute, format, args...)
}

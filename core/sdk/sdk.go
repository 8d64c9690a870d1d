// Package sdk is what an mbk plugin imports: the stage interfaces, the settings
// schema, Serve, and the host-side client the core uses to talk to a plugin.
//
// A plugin is one binary named mbk-plugin-<name>. It implements Plugin plus one
// interface per stage kind it serves (Source for dump and archive, Checksummer,
// Retainer, Storer, Notifier) and calls Serve from main:
//
//	func main() {
//		sdk.Serve(func(log hclog.Logger) sdk.Plugin { return &webhook{log: log} })
//	}
package sdk

import (
	"github.com/hashicorp/go-plugin"
)

// Stage kinds, in the order a pipeline runs them.
const (
	KindDump     = "dump"
	KindArchive  = "archive"
	KindChecksum = "checksum"
	KindRetain   = "retain"
	KindStore    = "store"
	KindNotify   = "notify"
)

// Kinds lists every stage kind in run order.
var Kinds = []string{KindDump, KindArchive, KindChecksum, KindRetain, KindStore, KindNotify}

// ProtocolVersion is bumped on any incompatible change to proto/mbk.proto.
const ProtocolVersion = 1

// pluginKey is the single go-plugin entry every mbk plugin serves.
const pluginKey = "mbk"

// Handshake makes a plugin binary run by hand explain itself instead of
// waiting silently for a host.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "MBK_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "mbk-plugin-7c1f0d5e-moodle-backups",
}

// Info describes a plugin to the core.
type Info struct {
	Name        string
	Version     string
	Kinds       []string
	Description string
}

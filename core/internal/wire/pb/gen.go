// Package pb is the generated code of the wire protocol between mbk and its
// plugins (mbk.proto). Only core/sdk and the host (core/pluginhost) use it:
// it is internal to core, so no plugin and no exported SDK API can name it.
//
// `make proto` regenerates it with the pinned generators below; CI checks
// that the checked-in files match.
package pb

//go:generate bash ../../../../scripts/proto.sh gen

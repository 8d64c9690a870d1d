// Package sdktest is the conformance kit for mbk plugins, in the manner of
// restic's backend test suite: a plugin's own tests hand it the plugin and
// settings that point at a real server, and the kit checks, through the real
// protocol, what the core relies on.
//
// Each kit serves the plugin inside the test process with sdk.Serve in debug
// mode and reaches it through core/pluginhost, as mbk does: settings travel
// in their wire form, streams through the side channel, cancellation through
// gRPC. Nothing is called on the plugin directly.
//
//   - Notifier checks a notify plugin: Describe, the schema (it passes
//     Schema.Check, secret-looking settings are sensitive), ValidateConfig of
//     the given settings, one report per event (start, success, failure,
//     warning, drill, test) that the caller checks reached its server, no
//     sensitive value in a summary or an error, and a Notify that stops,
//     with an error, once its context is cancelled.
//   - Source checks a dump or archive plugin: Plan, a Backup of every
//     artifact (the bytes counted match the bytes that arrived), a Restore of
//     each stream that reads all of it and receives the restore options as
//     typed values, a caller's check of the restored state, and a Backup and
//     a Restore cancelled midway that return an error promptly, the plugin's
//     own method included; no sensitive setting's value in an error, a
//     summary, the details or the info text.
//
// Store plugins have their own kit, storetest.Conformance (package
// core/testing/storetest), which checks uploads, listings and deletes
// against a real server.
//
// Each kit takes a testing.TB and reports through it, without subtests: a
// kit's own tests run it under a testing.TB that records failures, to show
// that it catches a broken plugin.
package sdktest

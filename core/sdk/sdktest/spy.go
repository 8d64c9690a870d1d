package sdktest

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/mbk-backup/mbk/core/sdk"
)

// A host stops waiting for a call once its context is cancelled, whatever
// the plugin does; the plugin must stop too (it kills a dump it started,
// closes its connection). The spies wrap the plugin under test inside the
// served process to see how its own methods return, and what reached them,
// which the host cannot. They forward every call unchanged: the writer a
// Backup gets is still the SDK's (a FileSender), the reader of a Restore the
// SDK's counted one.

// returned is how one of the plugin's methods returned.
type returned struct {
	err     error
	options sdk.Config // a Restore's options
}

// calls is where a spy reports; buffered so that a spy never blocks.
type calls chan returned

func newCalls() calls { return make(calls, 1024) }

func (c calls) report(r returned) {
	select {
	case c <- r:
	default:
	}
}

// drain forgets what earlier calls reported.
func (c calls) drain() {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// base forwards the optional checks, which the SDK answers with no
// diagnostics for a plugin that has none.
type base struct{ sdk.Plugin }

func (b base) ValidateConfig(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	if v, ok := b.Plugin.(sdk.Validator); ok {
		return v.ValidateConfig(ctx, cfg)
	}
	return nil
}

func (b base) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	if v, ok := b.Plugin.(sdk.Preflighter); ok {
		return v.Preflight(ctx, cfg)
	}
	return nil
}

type notifySpy struct {
	base
	impl     sdk.Notifier
	notifies calls
	// precancel has Notify called with its context already cancelled.
	precancel atomic.Bool
}

func (s *notifySpy) Notify(ctx context.Context, cfg sdk.Config, event string, r sdk.Report) (string, error) {
	if s.precancel.Load() {
		c, cancel := context.WithCancel(ctx)
		cancel()
		ctx = c
	}
	summary, err := s.impl.Notify(ctx, cfg, event, r)
	s.notifies.report(returned{err: err})
	return summary, err
}

type sourceSpy struct {
	base
	impl     sdk.Source
	backups  calls
	restores calls
}

func (s *sourceSpy) Plan(ctx context.Context, cfg sdk.Config) ([]sdk.Artifact, error) {
	return s.impl.Plan(ctx, cfg)
}

func (s *sourceSpy) Backup(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
	res, err := s.impl.Backup(ctx, req, w)
	s.backups.report(returned{err: err})
	return res, err
}

func (s *sourceSpy) Restore(ctx context.Context, req sdk.RestoreRequest, r io.Reader) (sdk.RestoreResult, error) {
	res, err := s.impl.Restore(ctx, req, r)
	s.restores.report(returned{err: err, options: req.Options})
	return res, err
}

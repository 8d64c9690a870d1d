package engine

import (
	"context"

	"github.com/mbk-backup/mbk/core/pool"
)

// SweepStore is sweepStore, for the tests outside the package.
func SweepStore(ctx context.Context, s *Stage, dryRun bool) (*pool.Swept, error) {
	return sweepStore(ctx, s, dryRun, nil)
}

// OnSweepStoreMarked makes f run between a store sweep's marking and its
// second listing, until the test ends.
func OnSweepStoreMarked(t interface{ Cleanup(func()) }, f func()) {
	sweepStoreMarked = f
	t.Cleanup(func() { sweepStoreMarked = nil })
}

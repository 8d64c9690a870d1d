package sdk

import (
	"context"
	"io"

	"github.com/mbk-backup/mbk/core/internal/wire"
)

// ContextReader stops a copy between two reads once ctx ends: for a plugin
// that moves a stream through a library that takes no context.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return wire.ContextReader(ctx, r) }

// ContextWriter is ContextReader's counterpart for writes.
func ContextWriter(ctx context.Context, w io.Writer) io.Writer { return wire.ContextWriter(ctx, w) }

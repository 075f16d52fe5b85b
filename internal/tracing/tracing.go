// Package tracing tells hot paths whether anything receives their spans. Starting a span
// allocates even under OpenTelemetry's no-op provider, and a guarded call starts several: the
// guard and token validation skip them unless the binary installed a trace exporter.
package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

var on atomic.Bool

// Enable records whether a trace exporter is installed (the binary calls it once at start;
// tests that collect spans call it too).
func Enable(enabled bool) { on.Store(enabled) }

// On reports whether spans are wanted.
func On() bool { return on.Load() }

// Start starts a span with t when tracing is on; otherwise it returns ctx unchanged and a span
// that records nothing.
func Start(ctx context.Context, t trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, noop.Span{}
	}
	return t.Start(ctx, name, opts...)
}

package app

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/bduf/mcpauth/internal/tracing"
)

// mongoTracing is a driver command monitor that puts a span around every store call, child of
// the operation that made it (login, validation, a guard decision...). A span names the command
// and collection only, never the command's body (which holds hashes and user data).
// (OpenTelemetry's contrib instrumentation for driver v2 is not served by the module proxy here.)
func mongoTracing() *event.CommandMonitor {
	tracer := otel.Tracer("github.com/bduf/mcpauth/store")
	var spans sync.Map // request id → trace.Span
	end := func(id int64, err string) {
		if s, ok := spans.LoadAndDelete(id); ok {
			span := s.(trace.Span)
			if err != "" {
				span.SetStatus(codes.Error, err)
			}
			span.End()
		}
	}
	return &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			if !tracing.On() {
				return
			}
			attrs := []attribute.KeyValue{attribute.String("db.system", "mongodb"),
				attribute.String("db.operation", e.CommandName), attribute.String("db.name", e.DatabaseName)}
			if coll, ok := e.Command.Lookup(e.CommandName).StringValueOK(); ok {
				attrs = append(attrs, attribute.String("db.mongodb.collection", coll))
			}
			_, span := tracer.Start(ctx, "mongo."+e.CommandName, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
			spans.Store(e.RequestID, span)
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { end(e.RequestID, "") },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { end(e.RequestID, "command failed") },
	}
}

package app

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bduf/mcpauth/internal/tracing"
)

func TestShouldTraceStoreCallsWithoutTheirBodies(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	tracing.Enable(true)
	t.Cleanup(func() { otel.SetTracerProvider(prev); tracing.Enable(false) })

	m := mongoTracing()
	cmd, _ := bson.Marshal(bson.D{{Key: "find", Value: "users"}, {Key: "filter", Value: bson.D{{Key: "email", Value: "ada@example.com"}}}})
	m.Started(context.Background(), &event.CommandStartedEvent{Command: cmd, CommandName: "find", DatabaseName: "mcpauth", RequestID: 7})
	m.Succeeded(context.Background(), &event.CommandSucceededEvent{CommandFinishedEvent: event.CommandFinishedEvent{RequestID: 7}})
	m.Failed(context.Background(), &event.CommandFailedEvent{CommandFinishedEvent: event.CommandFinishedEvent{RequestID: 99}}) // unknown: ignored

	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "mongo.find" {
		t.Fatalf("spans = %+v, want one ended mongo.find", spans)
	}
	attrs := map[string]string{}
	for _, a := range spans[0].Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["db.mongodb.collection"] != "users" || attrs["db.operation"] != "find" {
		t.Fatalf("attributes = %v", attrs)
	}
	for _, v := range attrs {
		if v == "ada@example.com" {
			t.Fatal("a span carries the command's body")
		}
	}
}

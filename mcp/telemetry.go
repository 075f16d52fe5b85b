package mcp

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bduf/mcpauth/internal/tally"
)

// The guard's telemetry, through the global OpenTelemetry API (the binary installs providers).
var secondsBuckets = metric.WithExplicitBucketBoundaries(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
	0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

var (
	tracer = otel.Tracer("github.com/bduf/mcpauth/mcp")
	meter  = otel.Meter("github.com/bduf/mcpauth/mcp")

	decisionDuration, _ = meter.Float64Histogram("mcpauth.guard.decision.duration", metric.WithUnit("s"), secondsBuckets,
		metric.WithDescription("Time the guard takes to authenticate and authorize a tool call."))

	// A granted call's options, built once as a slice: passing it costs no allocation.
	grantedSet    = attribute.NewSet(attribute.String("outcome", "granted"))
	grantedRecord = []metric.RecordOption{metric.WithAttributeSet(grantedSet)}

	decisions = tally.New(meter, "mcpauth.guard.decisions",
		"Guarded tool calls by outcome (granted, or the error code).", "outcome", "granted")
)

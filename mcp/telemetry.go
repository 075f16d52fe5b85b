package mcp

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The guard's telemetry, through the global OpenTelemetry API (the binary installs providers).
var secondsBuckets = metric.WithExplicitBucketBoundaries(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
	0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

var (
	tracer = otel.Tracer("github.com/bduf/mcpauth/mcp")
	meter  = otel.Meter("github.com/bduf/mcpauth/mcp")

	decisions, _ = meter.Int64Counter("mcpauth.guard.decisions",
		metric.WithDescription("Guarded tool calls by outcome (granted, or the error code)."))
	decisionDuration, _ = meter.Float64Histogram("mcpauth.guard.decision.duration", metric.WithUnit("s"), secondsBuckets,
		metric.WithDescription("Time the guard takes to authenticate and authorize a tool call."))

	// A granted call's options, built once as slices: passing them costs no allocation.
	grantedSet    = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "granted")))
	grantedAdd    = []metric.AddOption{grantedSet}
	grantedRecord = []metric.RecordOption{grantedSet}
)

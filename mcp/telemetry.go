package mcp

import (
	"context"
	"sync"
	"sync/atomic"

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

	decisionDuration, _ = meter.Float64Histogram("mcpauth.guard.decision.duration", metric.WithUnit("s"), secondsBuckets,
		metric.WithDescription("Time the guard takes to authenticate and authorize a tool call."))

	// A granted call's options, built once as a slice: passing it costs no allocation.
	grantedSet    = attribute.NewSet(attribute.String("outcome", "granted"))
	grantedRecord = []metric.RecordOption{metric.WithAttributeSet(grantedSet)}

	decisions = &outcomeCounts{}
	_, _      = meter.Int64ObservableCounter("mcpauth.guard.decisions",
		metric.WithDescription("Guarded tool calls by outcome (granted, or the error code)."),
		metric.WithInt64Callback(decisions.observe))
)

// outcomeCounts counts decisions by outcome in atomics, read when metrics are collected: a
// synchronous counter costs a guarded call more than everything else the guard records.
type outcomeCounts struct {
	granted atomic.Int64
	others  sync.Map // outcome → *atomic.Int64 (few: the error codes)
}

func (c *outcomeCounts) add(outcome string) {
	if outcome == "granted" {
		c.granted.Add(1)
		return
	}
	n, _ := c.others.LoadOrStore(outcome, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (c *outcomeCounts) observe(_ context.Context, o metric.Int64Observer) error {
	o.Observe(c.granted.Load(), metric.WithAttributeSet(grantedSet))
	c.others.Range(func(k, v any) bool {
		o.Observe(v.(*atomic.Int64).Load(), metric.WithAttributes(attribute.String("outcome", k.(string))))
		return true
	})
	return nil
}

package mcp

import (
	"go.opentelemetry.io/otel"

	"github.com/bduf/mcpauth/internal/tally"
)

// The guard's telemetry, through the global OpenTelemetry API (the binary installs providers;
// its reader collects the histogram through tally.Producer).
const scope = "github.com/bduf/mcpauth/mcp"

var (
	tracer = otel.Tracer(scope)
	meter  = otel.Meter(scope)

	decisionDuration = tally.NewHistogram(scope, "mcpauth.guard.decision.duration",
		"Time the guard takes to authenticate and authorize a tool call.", "s", "outcome", "granted",
		0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

	decisions = tally.New(meter, "mcpauth.guard.decisions",
		"Guarded tool calls by outcome (granted, or the error code).", "outcome", "granted")
)

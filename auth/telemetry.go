package auth

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/internal/tally"
)

// Telemetry goes through the global OpenTelemetry API; the binary installs the providers (a
// Prometheus exporter, OTLP when configured). Attributes carry ids, codes and reasons, never a
// secret.
// secondsBuckets suit latencies from tens of microseconds (a cached decision) to a second.
var secondsBuckets = metric.WithExplicitBucketBoundaries(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

var (
	tracer = otel.Tracer("github.com/bduf/mcpauth/auth")
	meter  = otel.Meter("github.com/bduf/mcpauth/auth")

	loginCount = tally.New(meter, "mcpauth.auth.logins",
		"Login attempts by result (success, or the error code).", "result", "success")
	loginDuration, _ = meter.Float64Histogram("mcpauth.auth.login.duration", metric.WithUnit("s"), secondsBuckets,
		metric.WithDescription("Time to answer a login."))
	refreshDuration, _ = meter.Float64Histogram("mcpauth.auth.refresh.duration", metric.WithUnit("s"), secondsBuckets,
		metric.WithDescription("Time to rotate a refresh token."))
	refreshCount        = tally.New(meter, "mcpauth.auth.refreshes", "Refresh-token rotations by result.", "result", "success")
	validateDuration, _ = meter.Float64Histogram("mcpauth.auth.validate.duration", metric.WithUnit("s"), secondsBuckets,
		metric.WithDescription("Time to validate an access token or API key."))
	validateCount    = tally.New(meter, "mcpauth.auth.validations", "Credential validations by result.", "result", "success")
	rateLimitHits, _ = meter.Int64Counter("mcpauth.auth.rate_limited",
		metric.WithDescription("Requests refused by a rate limit, by limit."))
	authFailures, _ = meter.Int64Counter("mcpauth.auth.failures",
		metric.WithDescription("Failed logins by reason (USER_NOT_FOUND, INVALID_PASSWORD, ACCOUNT_INACTIVE, INVALID_MFA, SYSTEM_ERROR)."))
	lockouts, _ = meter.Int64Counter("mcpauth.auth.lockout_refusals",
		metric.WithDescription("Password checks refused because the account is locked."))
)

// resultOf names the outcome of an operation for metrics and spans.
func resultOf(err error) string {
	if err == nil {
		return "success"
	}
	return string(apierr.CodeOf(err))
}

// The options of a success are built once: the hot paths succeed, and options passed as a
// prebuilt slice cost no allocation per call.
var (
	succeededAttr   = attribute.String("result", "success")
	succeededRecord = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(succeededAttr))}
)

// observe ends a span and records a duration and a count with the result.
func observe(ctx context.Context, span trace.Span, start time.Time, err error, h metric.Float64Histogram, c *tally.Counter) {
	res, rec := succeededAttr, succeededRecord
	if err != nil {
		res = attribute.String("result", resultOf(err))
		rec = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(res))}
	}
	h.Record(ctx, time.Since(start).Seconds(), rec...)
	c.Add(res.Value.AsString())
	if span.IsRecording() {
		span.SetAttributes(res)
	}
	if err != nil && apierr.CodeOf(err) == apierr.Internal {
		span.SetStatus(codes.Error, "internal error")
	}
	span.End()
}

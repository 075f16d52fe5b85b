package auth

import (
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
// secret. The histograms are tally's, which the binary's reader collects through tally.Producer.
//
// secondsBuckets suit latencies from tens of microseconds (a cached decision) to a second.
var secondsBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

const scope = "github.com/bduf/mcpauth/auth"

var (
	tracer = otel.Tracer(scope)
	meter  = otel.Meter(scope)

	loginCount = tally.New(meter, "mcpauth.auth.logins",
		"Login attempts by result (success, or the error code).", "result", "success")
	loginDuration = tally.NewHistogram(scope, "mcpauth.auth.login.duration",
		"Time to answer a login.", "s", "result", "success", secondsBuckets...)
	refreshDuration = tally.NewHistogram(scope, "mcpauth.auth.refresh.duration",
		"Time to rotate a refresh token.", "s", "result", "success", secondsBuckets...)
	refreshCount     = tally.New(meter, "mcpauth.auth.refreshes", "Refresh-token rotations by result.", "result", "success")
	validateDuration = tally.NewHistogram(scope, "mcpauth.auth.validate.duration",
		"Time to validate an access token or API key.", "s", "result", "success", secondsBuckets...)
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

// observe ends a span and records a duration and a count with the result.
func observe(span trace.Span, start time.Time, err error, h *tally.Histogram, c *tally.Counter) {
	res := resultOf(err)
	h.Record(res, time.Since(start).Seconds())
	c.Add(res)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("result", res))
	}
	if err != nil && apierr.CodeOf(err) == apierr.Internal {
		span.SetStatus(codes.Error, "internal error")
	}
	span.End()
}

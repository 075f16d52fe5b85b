package oauth

import (
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics of the endpoints: requests by endpoint and HTTP status, and their latency. The
// attributes are the endpoint's name and the status, never a client id or anything a
// request chose (a stranger must not be able to grow the metric set).
var (
	meter           = otel.Meter("github.com/bduf/mcpauth/auth/oauth")
	requestCount, _ = meter.Int64Counter("mcpauth.oauth.requests",
		metric.WithDescription("Requests to the authorization server's endpoints, by endpoint and HTTP status."))
	requestDuration, _ = meter.Float64Histogram("mcpauth.oauth.request.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
		metric.WithDescription("Time to answer a request to the authorization server, by endpoint."))
)

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument counts and times the requests of the endpoint named name.
func instrument(name string, next http.HandlerFunc) http.HandlerFunc {
	endpoint := attribute.String("endpoint", name)
	durationAttrs := metric.WithAttributeSet(attribute.NewSet(endpoint))
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		requestCount.Add(r.Context(), 1, metric.WithAttributes(endpoint, attribute.String("status", strconv.Itoa(status))))
		requestDuration.Record(r.Context(), time.Since(start).Seconds(), durationAttrs)
	}
}

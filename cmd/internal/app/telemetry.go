package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/bduf/mcpauth/internal/tally"
	"github.com/bduf/mcpauth/internal/tracing"
)

// telemetry installs the OpenTelemetry providers: metrics exported for Prometheus at /metrics
// (a registry of our own: the embedded store registers its metrics on the default one), and
// traces over OTLP/HTTP when the standard OTEL_EXPORTER_OTLP_* variables ask for it. The
// hot paths' histograms are tally's (lock-free): the exporter reads them through its producer.
type telemetry struct {
	metrics  http.Handler
	shutdown []func(context.Context) error
}

func setupTelemetry(ctx context.Context, getenv func(string) string) (*telemetry, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithProducer(tally.Producer{}))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(mp)
	t := &telemetry{
		metrics:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		shutdown: []func(context.Context) error{mp.Shutdown},
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		texp, err := otlptracehttp.New(ctx) // reads the standard OTEL_EXPORTER_OTLP_* variables
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp))
		otel.SetTracerProvider(tp)
		tracing.Enable(true)
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	return t, nil
}

func (t *telemetry) Close(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

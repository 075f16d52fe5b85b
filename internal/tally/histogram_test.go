package tally_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/internal/tally"
)

// collect reads every metric of name: the SDK's own instruments and tally's histograms, through
// one reader, as the binary's Prometheus exporter reads them.
func collect(t *testing.T, reader *sdkmetric.ManualReader, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var points []metricdata.HistogramDataPoint[float64]
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || h.Temporality != metricdata.CumulativeTemporality || m.Unit != "s" || m.Description == "" {
				t.Fatalf("metric %s: %T (%+v), want a cumulative float64 histogram in seconds with a description", name, m.Data, m)
			}
			points = append(points, h.DataPoints...)
		}
	}
	return points
}

func byAttribute(t *testing.T, points []metricdata.HistogramDataPoint[float64]) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, p := range points {
		v, ok := p.Attributes.Value(attribute.Key("outcome"))
		if !ok || p.Attributes.Len() != 1 {
			t.Fatalf("data point attributes %v, want only outcome", p.Attributes.ToSlice())
		}
		out[v.AsString()] = p
	}
	return out
}

// The histogram must report what OpenTelemetry's own histogram reports for the same
// observations: the same buckets (a value on a bound counts in that bound's bucket), counts,
// sums and attributes, so that replacing one with the other changes no dashboard.
func TestShouldReportWhatTheSDKsHistogramReports(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(tally.Producer{}))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	sdk, err := provider.Meter("test").Float64Histogram("test.sdk.duration", metric.WithUnit("s"),
		metric.WithDescription("The SDK's."), metric.WithExplicitBucketBoundaries(bounds...))
	if err != nil {
		t.Fatal(err)
	}
	ours := tally.NewHistogram("test", "test.tally.duration", "Ours.", "s", "outcome", "granted", bounds...)
	for _, o := range []struct {
		outcome string
		v       float64
	}{
		{"granted", 0}, {"granted", 0.0005}, {"granted", 0.001}, {"granted", 0.0011}, {"granted", 0.01},
		{"granted", 0.05}, {"granted", 0.1}, {"granted", 0.5}, {"granted", 7},
		{"PERMISSION_DENIED", 0.002}, {"PERMISSION_DENIED", 0.2}, {"INTERNAL", 0.00001},
	} {
		sdk.Record(context.Background(), o.v, metric.WithAttributes(attribute.String("outcome", o.outcome)))
		ours.Record(o.outcome, o.v)
	}
	want := byAttribute(t, collect(t, reader, "test.sdk.duration"))
	got := byAttribute(t, collect(t, reader, "test.tally.duration"))
	if len(got) != len(want) {
		t.Fatalf("outcomes %v, want those of the SDK: %v", got, want)
	}
	for outcome, w := range want {
		g := got[outcome]
		if g.Count != w.Count || g.Sum != w.Sum || !slices.Equal(g.Bounds, w.Bounds) || !slices.Equal(g.BucketCounts, w.BucketCounts) {
			t.Errorf("%s: count %d sum %v bounds %v buckets %v; the SDK's: count %d sum %v bounds %v buckets %v",
				outcome, g.Count, g.Sum, g.Bounds, g.BucketCounts, w.Count, w.Sum, w.Bounds, w.BucketCounts)
		}
		if g.StartTime.IsZero() || g.Time.Before(g.StartTime) {
			t.Errorf("%s: start %v, time %v: want a start and a later time", outcome, g.StartTime, g.Time)
		}
	}
}

func TestShouldCountEveryObservationRecordedConcurrently(t *testing.T) {
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(tally.Producer{}))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	h := tally.NewHistogram("test", "test.concurrent.duration", "Concurrent.", "s", "outcome", "granted", 1)
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for i := range goroutines {
		outcome := "granted"
		if i%2 == 1 {
			outcome = "DENIED" // the others' series is made by whichever records first
		}
		wg.Go(func() {
			for range each {
				h.Record(outcome, 0.5)
			}
		})
	}
	wg.Wait()
	got := byAttribute(t, collect(t, reader, "test.concurrent.duration"))
	for _, outcome := range []string{"granted", "DENIED"} {
		p := got[outcome]
		if p.Count != goroutines/2*each || p.Sum != 0.5*goroutines/2*each || p.BucketCounts[0] != p.Count {
			t.Errorf("%s: count %d sum %v buckets %v, want %d observations of 0.5 in the first bucket",
				outcome, p.Count, p.Sum, p.BucketCounts, goroutines/2*each)
		}
	}
}

func TestStopwatchMeasuresTheTimeSinceItsStart(t *testing.T) {
	before := time.Now()
	s := tally.Start()
	started := time.Now()
	for time.Since(started) < time.Millisecond { // a millisecond passes after Start
	}
	got := s.Elapsed()
	if limit := time.Since(before); got < time.Millisecond || got > limit {
		t.Fatalf("Elapsed = %v, want between 1ms and %v (time.Since a clock read before Start)", got, limit)
	}
}

func BenchmarkStopwatchVsTimeNow(b *testing.B) {
	var sink time.Duration
	timeNow := benchratio.Run(b, "time.Now", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			sink += time.Since(start)
		}
	})
	stopwatch := benchratio.Run(b, "stopwatch", func(b *testing.B) {
		for b.Loop() {
			sink += tally.Start().Elapsed()
		}
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"stopwatch/time.Now": {stopwatch, timeNow}})
	_ = sink
}

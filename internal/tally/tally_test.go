package tally_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bduf/mcpauth/internal/tally"
)

// TestShouldReportEveryValuesCountWhenCollected: what a scrape sees is the count of each value,
// the usual one and the others alike, as a monotonic sum.
func TestShouldReportEveryValuesCountWhenCollected(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	c := tally.New(provider.Meter("test"), "test.events", "Events by result.", "result", "success")
	for range 3 {
		c.Add("success")
	}
	c.Add("DENIED")
	c.Add("DENIED")
	c.Add("INTERNAL")

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "test.events" || !ok || !sum.IsMonotonic {
				t.Fatalf("metric %s: %T, want a monotonic int64 sum named test.events", m.Name, m.Data)
			}
			for _, p := range sum.DataPoints {
				v, _ := p.Attributes.Value(attribute.Key("result"))
				got[v.AsString()] = p.Value
			}
		}
	}
	want := map[string]int64{"success": 3, "DENIED": 2, "INTERNAL": 1}
	if len(got) != len(want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("count of %s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

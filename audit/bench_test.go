package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/bduf/mcpauth/audit"
)

// BenchmarkWriterIntoMongo measures events written into MongoDB (the embedded FerretDB unless
// MCPAUTH_TEST_MONGO_URI is set) through the writer, in its default batches: recording b.N
// events and closing the writer, which returns once every one of them is stored. The figure is
// events/s, from recording the first to the last one stored.
func BenchmarkWriterIntoMongo(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{Instance: "bench", Logger: quiet})
	mustOK(b, "new writer", err)
	e := audit.Event{Type: audit.AuthzGranted, Subject: "usr_1"}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := w.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	mustOK(b, "close", w.Close(ctx))
	elapsed := time.Since(start)
	b.StopTimer()
	if got := w.Stats().Written; got != int64(b.N) {
		b.Fatalf("written %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkRecord measures what a caller pays to record one event while the writer keeps up
// (the guard's hot path: it must not wait on audit I/O).
func BenchmarkRecord(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{Instance: "bench", Logger: quiet, QueueSize: 1 << 20})
	mustOK(b, "new writer", err)
	defer func() { mustOK(b, "close", w.Close(ctx)) }()
	e := event(1)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// benchEvent is a guard decision, the event recorded most often.
func benchEvent() audit.Event {
	return audit.Event{
		Type: audit.AuthzGranted, Subject: "usr_7a3kq2", OrgID: "org_acme", ClientAddr: "192.0.2.17",
		Transport: "http", RequestID: "req_01hx3", SessionID: "ses_9f2",
		Details: map[string]any{"tool": "user_list", "permission": "users:read"},
	}
}

// BenchmarkWriterIntoMongo measures events written into MongoDB (the embedded FerretDB unless
// MCPAUTH_TEST_MONGO_URI is set) through the writer in its default batches: recording b.N events
// and closing the writer, which returns once every one is stored; events/s counts from the first
// Record to the last event stored. Beside it, the raw driver inserting the same stored documents
// in batches of the same size, with no queue, chain or hashing: the ceiling the server sets.
// The reported ratio is the writer's time per event over the raw inserts' (medians; above 1 the
// writer is slower; machines are noisy, ratios travel, and with -count each sub-benchmark runs
// its repetitions back to back, so on a machine whose load changes, interleave separate runs).
// Both are measured twice: with every index (what MongoDB needs) and with
// StoreOptions.NoQueryIndexes (what the embedded FerretDB on SQLite needs: it uses none of them).
func BenchmarkWriterIntoMongo(b *testing.B) {
	ratios := map[string][2]*benchratio.Samples{}
	for _, v := range []struct {
		suffix string
		opts   audit.StoreOptions
	}{{"", audit.StoreOptions{}}, {"-no-query-indexes", audit.StoreOptions{NoQueryIndexes: true}}} {
		raw := benchratio.Run(b, "raw-insert-many"+v.suffix, func(b *testing.B) { benchRawInsert(b, v.opts) })
		writer := benchratio.Run(b, "writer"+v.suffix, func(b *testing.B) { benchWriter(b, v.opts) })
		ratios["writer/raw-insert"+v.suffix] = [2]*benchratio.Samples{writer, raw}
	}
	benchratio.Report(b, ratios)
}

func newBenchStore(b *testing.B, opts audit.StoreOptions) (*audit.MongoStore, *mongo.Database) {
	db := mongotest.Database(b)
	s, err := audit.NewMongoStoreWith(context.Background(), db, opts)
	mustOK(b, "new store", err)
	return s, db
}

func benchRawInsert(b *testing.B, opts audit.StoreOptions) {
	_, db := newBenchStore(b, opts)
	coll := db.Collection("audit_events")
	docs := make([]audit.Event, b.N)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range docs {
		e := benchEvent()
		e.ID, e.Instance, e.Seq, e.Time, e.Severity = fmt.Sprintf("evt_%032x", i), "bench", int64(i+1), now, audit.Info
		e.PrevHash, e.Hash = fmt.Sprintf("%064x", i), fmt.Sprintf("%064x", i+1)
		docs[i] = e
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(docs); i += audit.DefaultBatchSize {
		batch := docs[i:min(i+audit.DefaultBatchSize, len(docs))]
		if _, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(true)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func benchWriter(b *testing.B, opts audit.StoreOptions) {
	s, _ := newBenchStore(b, opts)
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{Instance: "bench", Logger: quiet})
	mustOK(b, "new writer", err)
	e := benchEvent()
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
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

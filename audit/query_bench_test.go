package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/benchratio"
)

// BenchmarkQueryScale: audit search's first page (50 events of one type, newest first) over
// 1,000 and 100,000 stored events, in the store's embedded configuration (no query indexes:
// FerretDB v1 would not use them). On FerretDB a search decodes every event (the one query that
// stays a scan, README "The embedded store at scale"); this measures what a page costs, and the
// ratio 100k/1k says how it grows (on MongoDB the type_time index serves it).
func BenchmarkQueryScale(b *testing.B) {
	ctx := context.Background()
	sizes := []int{1_000, 100_000}
	samples := map[int]*benchratio.Samples{}
	for _, n := range sizes {
		s, db := newBenchStore(b, audit.StoreOptions{NoQueryIndexes: true})
		now := time.Now().UTC().Truncate(time.Millisecond)
		events := make([]any, n)
		for i := range events {
			e := benchEvent()
			e.ID, e.Instance, e.Seq, e.Time = fmt.Sprintf("evt_%07d", i), "bench", int64(i+1), now.Add(time.Duration(i)*time.Millisecond)
			if i%10 == 0 {
				e.Type = audit.AuthFailed
			}
			events[i] = e
		}
		for start := 0; start < n; start += 10_000 {
			_, err := db.Collection("audit_events").InsertMany(ctx, events[start:min(start+10_000, n)])
			mustOK(b, "seed", err)
		}
		samples[n] = benchratio.Run(b, fmt.Sprintf("first-page/events=%d", n), func(b *testing.B) {
			for b.Loop() {
				page, _, err := s.Query(ctx, audit.Query{Type: audit.AuthFailed, Limit: 50})
				mustOK(b, "query", err)
				if len(page) != 50 {
					b.Fatalf("page of %d events", len(page))
				}
			}
		})
	}
	benchratio.Report(b, map[string][2]*benchratio.Samples{"first-page-100k/1k": {samples[100_000], samples[1_000]}})
}

package audit_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	driverevent "go.mongodb.org/mongo-driver/v2/event"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// queryFixture records 25 events a second apart (event i at base+i s): even ones AUTH_SUCCESS
// about usr_even, odd ones AUTH_FAILED about usr_odd; every third one in org globex, the rest
// in acme. With sameTime, all 25 share one time.
func queryFixture(t *testing.T, sameTime bool) (*audit.MongoStore, time.Time) {
	s, _ := newStore(t)
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	for i := range 25 {
		e := audit.Event{Type: audit.AuthSuccess, Subject: "usr_even", OrgID: "acme", RequestID: fmt.Sprint(i), Time: base}
		if !sameTime {
			e.Time = base.Add(time.Duration(i) * time.Second)
		}
		if i%2 == 1 {
			e.Type, e.Subject = audit.AuthFailed, "usr_odd"
		}
		if i%3 == 0 {
			e.OrgID = "globex"
		}
		mustOK(t, "record", w.Record(ctx, e))
	}
	mustOK(t, "close", w.Close(ctx))
	return s, base
}

// allPages follows the cursor to the end, returning each page's size and every event in order.
func allPages(t *testing.T, s *audit.MongoStore, q audit.Query) (sizes []int, events []audit.Event) {
	t.Helper()
	for range 100 {
		page, next, err := s.Query(ctxFor(t), q)
		mustOK(t, "query", err)
		sizes = append(sizes, len(page))
		events = append(events, page...)
		if next == "" {
			return sizes, events
		}
		q.Cursor = next
	}
	t.Fatal("the cursor never ends")
	return nil, nil
}

func TestShouldPageEventsNewestFirst(t *testing.T) {
	for _, sameTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("same time %v", sameTime), func(t *testing.T) {
			s, _ := queryFixture(t, sameTime)
			sizes, events := allPages(t, s, audit.Query{Limit: 10})
			if fmt.Sprint(sizes) != "[10 10 5]" {
				t.Fatalf("page sizes = %v, want [10 10 5]", sizes)
			}
			seen := map[string]bool{}
			for i, e := range events {
				if seen[e.ID] {
					t.Fatalf("event %s returned twice", e.ID)
				}
				seen[e.ID] = true
				if i > 0 {
					prev := events[i-1]
					if e.Time.After(prev.Time) || e.Time.Equal(prev.Time) && e.ID > prev.ID {
						t.Fatalf("event %d (%v %s) is newer than the one before it (%v %s)", i, e.Time, e.ID, prev.Time, prev.ID)
					}
				}
			}
			if !sameTime && (events[0].RequestID != "24" || events[24].RequestID != "0") {
				t.Fatalf("newest first: got %s first and %s last", events[0].RequestID, events[24].RequestID)
			}
		})
	}
}

func TestShouldFilterQueries(t *testing.T) {
	s, base := queryFixture(t, false)
	tests := []struct {
		name  string
		query audit.Query
		want  int
	}{
		{"no filter returns every event up to the default limit", audit.Query{}, 25},
		{"a type keeps only that type", audit.Query{Type: audit.AuthFailed}, 12},
		{"a subject keeps only events about that user", audit.Query{Subject: "usr_even"}, 13},
		{"an organization keeps only its events", audit.Query{OrgID: "globex"}, 9},
		{"since is inclusive", audit.Query{Since: base.Add(20 * time.Second)}, 5},
		{"until is exclusive", audit.Query{Until: base.Add(5 * time.Second)}, 5},
		{"since and until make a window", audit.Query{Since: base.Add(5 * time.Second), Until: base.Add(15 * time.Second)}, 10},
		{"filters combine", audit.Query{Type: audit.AuthSuccess, OrgID: "globex", Since: base.Add(10 * time.Second)}, 3},
		{"an unknown subject matches nothing", audit.Query{Subject: "usr_nobody"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query
			q.Limit = 4 // filters must hold across pages
			_, events := allPages(t, s, q)
			if len(events) != tc.want {
				t.Fatalf("got %d events, want %d", len(events), tc.want)
			}
			for _, e := range events {
				if q.Type != "" && e.Type != q.Type || q.Subject != "" && e.Subject != q.Subject ||
					q.OrgID != "" && e.OrgID != q.OrgID || !q.Since.IsZero() && e.Time.Before(q.Since) ||
					!q.Until.IsZero() && !e.Time.Before(q.Until) {
					t.Fatalf("event %+v does not match the query", e)
				}
			}
		})
	}
}

func TestShouldRejectABadQuery(t *testing.T) {
	s, _ := queryFixture(t, false)
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"t":1}`))
	tests := []struct {
		name  string
		query audit.Query
	}{
		{"a cursor that is not base64", audit.Query{Cursor: "!!not a cursor!!"}},
		{"a cursor that is not JSON", audit.Query{Cursor: base64.RawURLEncoding.EncodeToString([]byte("junk"))}},
		{"a cursor without an id", audit.Query{Cursor: forged}},
		{"a negative limit", audit.Query{Limit: -1}},
		{"until before since", audit.Query{Since: time.Now(), Until: time.Now().Add(-time.Hour)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := s.Query(ctxFor(t), tc.query); !errors.Is(err, audit.ErrInvalidQuery) {
				t.Fatalf("query error = %v, want ErrInvalidQuery", err)
			}
		})
	}
}

func TestShouldAnswerTheSameQueriesWithoutTheQueryIndexes(t *testing.T) {
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	for i := range 12 {
		mustOK(t, "record", w.Record(ctx, event(i)))
	}
	mustOK(t, "close", w.Close(ctx))
	q := audit.Query{Subject: "usr_3", Type: audit.AuthSuccess, Limit: 1}
	_, want := allPages(t, s, q)

	lean, err := audit.NewMongoStoreWith(ctx, db, audit.StoreOptions{NoQueryIndexes: true})
	mustOK(t, "store without query indexes", err)
	specs, err := db.Collection("audit_events").Indexes().ListSpecifications(ctx)
	mustOK(t, "list indexes", err)
	var names []string
	for _, spec := range specs {
		names = append(names, spec.Name)
	}
	if fmt.Sprint(names) != "[_id_ instance_seq]" {
		t.Fatalf("indexes = %v, want only _id_ and instance_seq", names)
	}
	_, got := allPages(t, lean, q)
	if len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("without the query indexes: %d events, want the same %d", len(got), len(want))
	}
	mustVerify(t, lean, 1, 12)
	// Idempotent, and the unique position index still refuses a second event at one position.
	_, err = audit.NewMongoStoreWith(ctx, db, audit.StoreOptions{NoQueryIndexes: true})
	mustOK(t, "again", err)
	dup := stored(t, db, "inst-a")[0]
	dup.ID = "evt_other"
	if err := lean.Append(ctx, []audit.Event{dup}); err == nil {
		t.Fatal("a second event at one position was accepted")
	}
}

func TestShouldCutAQueryLimitAboveTheMaximumToTheMaximum(t *testing.T) {
	s, _ := newStore(t)
	writeChain(t, s, "inst-a", audit.MaxQueryLimit+1)
	page, next, err := s.Query(ctxFor(t), audit.Query{Limit: audit.MaxQueryLimit + 100})
	mustOK(t, "query", err)
	if len(page) != audit.MaxQueryLimit || next == "" {
		t.Fatalf("a limit of %d gave %d events (next %q), want %d and a next page", audit.MaxQueryLimit+100, len(page), next, audit.MaxQueryLimit)
	}
}

// A search is bounded in time on the server too: the find it sends carries a maxTimeMS within
// the store's SearchTimeout (FerretDB and MongoDB stop the scan there), and one that runs out of
// it is ErrSearchTooLong, after which the store searches as before.
func TestShouldBoundASearchInTimeOnTheServer(t *testing.T) {
	ctx := ctxFor(t)
	var mu sync.Mutex
	var maxTimes []int64
	db := mongotest.MonitoredDatabase(t, &driverevent.CommandMonitor{Started: func(_ context.Context, e *driverevent.CommandStartedEvent) {
		if e.CommandName != "find" || e.Command.Lookup("find").StringValue() != "audit_events" {
			return
		}
		ms, _ := e.Command.Lookup("maxTimeMS").AsInt64OK()
		mu.Lock()
		maxTimes = append(maxTimes, ms)
		mu.Unlock()
	}})
	const timeout = 2 * time.Second
	s, err := audit.NewMongoStoreWith(ctx, db, audit.StoreOptions{NoQueryIndexes: true, SearchTimeout: timeout})
	mustOK(t, "new store", err)
	events := make([]any, 200)
	for i := range events {
		events[i] = audit.Event{ID: fmt.Sprintf("evt_%04d", i), Instance: "inst-a", Seq: int64(i + 1), Type: audit.AuthFailed, Time: time.Now().UTC()}
	}
	_, err = db.Collection("audit_events").InsertMany(ctx, events)
	mustOK(t, "seed", err)

	page, _, err := s.Query(ctx, audit.Query{Type: audit.AuthFailed})
	mustOK(t, "query", err)
	if len(page) != audit.DefaultQueryLimit {
		t.Fatalf("a page of %d events, want %d", len(page), audit.DefaultQueryLimit)
	}
	mu.Lock()
	sent := slices.Clone(maxTimes)
	mu.Unlock()
	if len(sent) != 1 || sent[0] <= 0 || sent[0] > timeout.Milliseconds() {
		t.Fatalf("the search's find carried maxTimeMS %v, want one value in (0, %d]", sent, timeout.Milliseconds())
	}

	short, err := audit.NewMongoStoreWith(ctx, db, audit.StoreOptions{NoQueryIndexes: true, SearchTimeout: time.Nanosecond})
	mustOK(t, "new store", err)
	if _, _, err := short.Query(ctx, audit.Query{Type: audit.AuthFailed}); !errors.Is(err, audit.ErrSearchTooLong) {
		t.Fatalf("a search past its time: %v, want ErrSearchTooLong", err)
	}
	if _, _, err := s.Query(ctx, audit.Query{Type: audit.AuthFailed}); err != nil {
		t.Fatalf("a search after one that ran out of time: %v", err)
	}
}

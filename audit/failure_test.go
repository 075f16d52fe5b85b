package audit_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mongotest"
)

var errRefused = errors.New("refused by the test")

// failingStore is a real MongoStore one of whose chain methods fails, for one chain (or every
// chain when instance is ""), once skip calls of it have succeeded: MongoDB refusing a read or a
// write midway. A failing iterator yields after events first (a cursor that breaks midway).
// onFail, if set, runs when it fails.
type failingStore struct {
	*audit.MongoStore
	method, instance string
	skip, after      int
	onFail           func()
}

func (s *failingStore) fail(method, instance string) error {
	if method != s.method || (s.instance != "" && instance != s.instance) {
		return nil
	}
	if s.skip > 0 {
		s.skip--
		return nil
	}
	if s.onFail != nil {
		s.onFail()
	}
	return fmt.Errorf("%s of %q: %w", method, instance, errRefused)
}

// failingIter is events, or, if the call fails, its first s.after events and then the error.
func (s *failingStore) failingIter(method, instance string, events iter.Seq2[audit.Event, error]) iter.Seq2[audit.Event, error] {
	err := s.fail(method, instance)
	if err == nil {
		return events
	}
	return func(yield func(audit.Event, error) bool) {
		n := 0
		for e, ierr := range events {
			if n == s.after || ierr != nil {
				break
			}
			if !yield(e, nil) {
				return
			}
			n++
		}
		yield(audit.Event{}, err)
	}
}

func (s *failingStore) Instances(ctx context.Context) ([]string, error) {
	if err := s.fail("Instances", ""); err != nil {
		return nil, err
	}
	return s.MongoStore.Instances(ctx)
}

func (s *failingStore) Anchors(ctx context.Context) (map[string]audit.Anchor, error) {
	if err := s.fail("Anchors", ""); err != nil {
		return nil, err
	}
	return s.MongoStore.Anchors(ctx)
}

func (s *failingStore) Anchor(ctx context.Context, instance string) (audit.Anchor, bool, error) {
	if err := s.fail("Anchor", instance); err != nil {
		return audit.Anchor{}, false, err
	}
	return s.MongoStore.Anchor(ctx, instance)
}

func (s *failingStore) Events(ctx context.Context) iter.Seq2[audit.Event, error] {
	return s.failingIter("Events", "", s.MongoStore.Events(ctx))
}

func (s *failingStore) ChainEvents(ctx context.Context, instance string, from int64) iter.Seq2[audit.Event, error] {
	return s.failingIter("ChainEvents", instance, s.MongoStore.ChainEvents(ctx, instance, from))
}

func (s *failingStore) FirstSince(ctx context.Context, instance string, from int64, since time.Time) (audit.Event, bool, error) {
	if err := s.fail("FirstSince", instance); err != nil {
		return audit.Event{}, false, err
	}
	return s.MongoStore.FirstSince(ctx, instance, from, since)
}

func (s *failingStore) AddAnchor(ctx context.Context, a audit.Anchor) error {
	if err := s.fail("AddAnchor", a.Instance); err != nil {
		return err
	}
	return s.MongoStore.AddAnchor(ctx, a)
}

func (s *failingStore) DeleteThrough(ctx context.Context, instance string, seq int64) (int64, error) {
	if err := s.fail("DeleteThrough", instance); err != nil {
		return 0, err
	}
	return s.MongoStore.DeleteThrough(ctx, instance, seq)
}

// twoChains writes inst-a (5 events) and inst-b (3), a millisecond apart from an hour ago in
// each chain, and returns the time of the third event of each.
func twoChains(t *testing.T, s *audit.MongoStore) (third time.Time) {
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	ctx := ctxFor(t)
	for _, c := range []struct {
		instance string
		n        int
	}{{"inst-a", 5}, {"inst-b", 3}} {
		w := newWriter(t, s, audit.WriterConfig{Instance: c.instance, FlushEvery: time.Millisecond})
		for i := range c.n {
			e := event(i)
			e.Time = base.Add(time.Duration(i) * time.Millisecond)
			mustOK(t, "record", w.Record(ctx, e))
		}
		mustOK(t, "close", w.Close(ctx))
	}
	return base.Add(2 * time.Millisecond)
}

func TestShouldFailVerificationRatherThanReportAChainWhenAReadFailsMidway(t *testing.T) {
	store, _ := newStore(t)
	third := twoChains(t, store)
	tests := []struct {
		name     string
		method   string
		instance string
		skip     int
		after    int
		since    time.Time
	}{
		{"the anchors cannot be read", "Anchors", "", 0, 0, time.Time{}},
		{"the events cannot be read", "Events", "", 0, 0, time.Time{}},
		{"the events' cursor breaks midway", "Events", "", 0, 6, time.Time{}},
		{"the list of chains cannot be read (since)", "Instances", "", 0, 0, third},
		{"the first event since the cut-off cannot be found", "FirstSince", "inst-a", 0, 0, third},
		{"the event before the first since the cut-off cannot be read", "ChainEvents", "inst-a", 0, 0, third},
		{"the chain's cursor breaks midway (since)", "ChainEvents", "inst-b", 1, 0, third},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &failingStore{MongoStore: store, method: tc.method, instance: tc.instance, skip: tc.skip, after: tc.after}
			res, err := audit.Verify(ctxFor(t), s, audit.VerifyOptions{Since: tc.since})
			if !errors.Is(err, errRefused) {
				t.Fatalf("verify = %+v, %v; want the refusal as its error", res, err)
			}
			if res.OK || res.FirstBad != nil || res.Checked != 0 {
				t.Fatalf("verify failed with %+v: a failed verification reports nothing", res)
			}
		})
	}
	// Without a failure the same chains verify: each case above failed for its refusal alone.
	for _, since := range []time.Time{{}, third} {
		res, err := audit.Verify(ctxFor(t), store, audit.VerifyOptions{Since: since})
		if want := map[bool]int64{true: 8, false: 4}[since.IsZero()]; err != nil || !res.OK || res.Chains != 2 || res.Checked != want {
			t.Fatalf("verify since %v = %+v, %v; want ok, 2 chains, %d checked", since, res, err, want)
		}
	}
}

func TestShouldApplyRetentionToTheOtherChainsWhenOneFails(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		checked int64 // by a verification after the failed run
	}{
		{"inst-a's anchor cannot be read", "Anchor", 22},
		{"inst-a cannot be read", "ChainEvents", 22},
		{"inst-a's anchor cannot be added", "AddAnchor", 22},
		// The anchor is in, the events are not deleted: the chain verifies from the anchor, and
		// the next run deletes what this one anchored.
		{"inst-a's head cannot be deleted", "DeleteThrough", 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, db := newStore(t)
			cutoff := oldAndNewChain(t, store, 10, 10) // inst-a
			writeOldAndNew(t, store, "inst-b", cutoff, 10, 2)
			s := &failingStore{MongoStore: store, method: tc.method, instance: "inst-a"}
			deleted, err := audit.ApplyRetention(ctxFor(t), s, cutoff)
			if !errors.Is(err, errRefused) || deleted != 10 {
				t.Fatalf("retention = %d, %v; want inst-b's 10 deleted and inst-a's refusal reported", deleted, err)
			}
			if got := stored(t, db, "inst-a"); len(got) != 20 {
				t.Fatalf("inst-a holds %d events, want all 20", len(got))
			}
			if got := stored(t, db, "inst-b"); len(got) != 2 || got[0].Seq != 11 {
				t.Fatalf("inst-b holds %d events, want its 2 recent ones: a failing chain does not stop the others", len(got))
			}
			mustVerify(t, store, 2, tc.checked)
			deleted, err = store.ApplyRetention(ctxFor(t), cutoff)
			if err != nil || deleted != 10 {
				t.Fatalf("second retention = %d, %v; want inst-a's 10 old events deleted", deleted, err)
			}
			mustVerify(t, store, 2, 12)
		})
	}
}

func TestShouldStopRetentionAtOnceWhenItsContextEnds(t *testing.T) {
	store, db := newStore(t)
	cutoff := oldAndNewChain(t, store, 10, 10)
	writeOldAndNew(t, store, "inst-b", cutoff, 10, 2)
	ctx, cancel := context.WithCancel(ctxFor(t))
	s := &failingStore{MongoStore: store, method: "Anchor", instance: "inst-a", onFail: cancel}
	deleted, err := audit.ApplyRetention(ctx, s, cutoff)
	if !errors.Is(err, errRefused) || deleted != 0 {
		t.Fatalf("retention = %d, %v; want 0 deleted and the refusal", deleted, err)
	}
	if got := stored(t, db, "inst-b"); len(got) != 12 {
		t.Fatalf("inst-b holds %d events, want all 12: retention stopped when its context ended", len(got))
	}
}

func TestShouldFailEveryStoreCallWithTheCauseWhenMongoDBIsGone(t *testing.T) {
	client := connect(t, mongotest.URI())
	db := client.Database(mongotest.DatabaseName(t))
	s, err := audit.NewMongoStore(ctxFor(t), db)
	mustOK(t, "new store", err)
	mustOK(t, "disconnect", client.Disconnect(ctxFor(t)))
	since := time.Now().Add(-time.Hour)
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"NewMongoStore", func(ctx context.Context) error { _, err := audit.NewMongoStore(ctx, db); return err }},
		{"Append", func(ctx context.Context) error {
			return s.Append(ctx, []audit.Event{{ID: "evt_1", Instance: "inst-a", Seq: 1}})
		}},
		{"Last", func(ctx context.Context) error { _, _, err := s.Last(ctx, "inst-a"); return err }},
		{"Query", func(ctx context.Context) error { _, _, err := s.Query(ctx, audit.Query{}); return err }},
		{"Instances", func(ctx context.Context) error { _, err := s.Instances(ctx); return err }},
		{"Anchors", func(ctx context.Context) error { _, err := s.Anchors(ctx); return err }},
		{"Anchor", func(ctx context.Context) error { _, _, err := s.Anchor(ctx, "inst-a"); return err }},
		{"Events", func(ctx context.Context) error { _, _, err := firstEvent(s.Events(ctx)); return err }},
		{"ChainEvents", func(ctx context.Context) error { _, _, err := firstEvent(s.ChainEvents(ctx, "inst-a", 1)); return err }},
		{"FirstSince", func(ctx context.Context) error { _, _, err := s.FirstSince(ctx, "inst-a", 1, since); return err }},
		{"AddAnchor", func(ctx context.Context) error { return s.AddAnchor(ctx, audit.Anchor{Instance: "inst-a", Seq: 1}) }},
		{"DeleteThrough", func(ctx context.Context) error { _, err := s.DeleteThrough(ctx, "inst-a", 1); return err }},
		{"Verify", func(ctx context.Context) error {
			res, err := s.Verify(ctx, time.Time{}, nil)
			if res.OK {
				return fmt.Errorf("verify reported %+v of a store it cannot read", res)
			}
			return err
		}},
		{"VerifyOrg", func(ctx context.Context) error { _, err := s.VerifyOrg(ctx, since, "acme", nil); return err }},
		{"ApplyRetention", func(ctx context.Context) error { _, err := s.ApplyRetention(ctx, since); return err }},
	}
	for _, tc := range tests {
		t.Run("Should"+tc.name+"Fail", func(t *testing.T) {
			if err := tc.call(ctxFor(t)); !errors.Is(err, mongo.ErrClientDisconnected) {
				t.Fatalf("%s on a disconnected client = %v, want an error wrapping mongo.ErrClientDisconnected", tc.name, err)
			}
		})
	}
}

// writeOldAndNew writes old events (before cutoff) then recent ones (after it) on instance.
func writeOldAndNew(t *testing.T, s *audit.MongoStore, instance string, cutoff time.Time, old, recent int) {
	t.Helper()
	w := newWriter(t, s, audit.WriterConfig{Instance: instance, FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	for i := range old + recent {
		e := event(i)
		e.Time = cutoff.Add(-time.Hour).Add(time.Duration(i) * time.Minute)
		if i >= old {
			e.Time = cutoff.Add(time.Hour).Add(time.Duration(i) * time.Millisecond)
		}
		mustOK(t, "record", w.Record(ctx, e))
	}
	mustOK(t, "close", w.Close(ctx))
}

// firstEvent returns the first event events yields.
func firstEvent(events iter.Seq2[audit.Event, error]) (audit.Event, bool, error) {
	for e, err := range events {
		return e, err == nil, err
	}
	return audit.Event{}, false, nil
}

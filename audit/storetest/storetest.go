// Package storetest is the conformance suite of audit.Store and of the capabilities Verify and
// retention need (audit.ChainReader, audit.ChainPruner), as auth/storetest is of auth.Store:
// every backend runs Run against a fresh store per test and must pass it unchanged. It is a
// non-test file so that other backends' tests can import it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/audit"
)

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t (twice by the cases that mint a chain on a
// scratch store). The cases of audit.ChainReader and audit.ChainPruner run when the store
// implements them (Verify and ApplyRetention need them) and are skipped otherwise.
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, s audit.Store)
	}{
		{"ShouldAppendInOrderAndReportTheLastEvent", testAppendAndLast},
		{"ShouldReportAChainNeverWrittenAsNotThere", testLastOfUnknownChain},
		{"ShouldTakeAReplayOfStoredEventsAsStored", testReplay},
		{"ShouldRefuseAnotherEventAtATakenPositionAndStopThere", testConflict},
		{"ShouldRefuseAStoredEventReplayedAtAnotherPosition", testConflictElsewhere},
		{"ShouldKeepTheChainsOfInstancesApart", testChainsApart},
		{"ShouldLetExactlyOneOfManyConcurrentClaimsOfAPositionWin", testConcurrentClaims},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
	runChainCases(t, newStore)
}

var base = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// ev is the event at position seq of instance's chain; variant tells apart two events that
// claim one position.
func ev(instance string, seq int64, variant string) audit.Event {
	return audit.Event{
		ID: fmt.Sprintf("evt_%s_%d%s", instance, seq, variant), Instance: instance, Seq: seq,
		Time: base.Add(time.Duration(seq) * time.Second), Type: audit.AuthSuccess, Severity: audit.Info,
		Subject: "usr_1", PrevHash: fmt.Sprintf("hash_%s_%d", instance, seq-1), Hash: fmt.Sprintf("hash_%s_%d%s", instance, seq, variant),
	}
}

func chain(instance string, from, to int64) []audit.Event {
	var out []audit.Event
	for seq := from; seq <= to; seq++ {
		out = append(out, ev(instance, seq, ""))
	}
	return out
}

func mustAppend(t *testing.T, s audit.Store, events []audit.Event) {
	t.Helper()
	if err := s.Append(context.Background(), events); err != nil {
		t.Fatalf("append %d events: %v", len(events), err)
	}
}

// wantLast checks that instance's chain stands at want.
func wantLast(t *testing.T, s audit.Store, instance string, want audit.Event) {
	t.Helper()
	got, ok, err := s.Last(context.Background(), instance)
	if err != nil || !ok {
		t.Fatalf("last of %s: ok %v, err %v", instance, ok, err)
	}
	if got.ID != want.ID || got.Seq != want.Seq || got.Hash != want.Hash || got.Instance != want.Instance {
		t.Fatalf("last of %s = %s #%d %s, want %s #%d %s", instance, got.ID, got.Seq, got.Hash, want.ID, want.Seq, want.Hash)
	}
}

func testAppendAndLast(t *testing.T, s audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 3))
	wantLast(t, s, "inst-a", ev("inst-a", 3, ""))
	mustAppend(t, s, chain("inst-a", 4, 4))
	wantLast(t, s, "inst-a", ev("inst-a", 4, ""))
	mustAppend(t, s, nil) // nothing to store is not an error
}

func testLastOfUnknownChain(t *testing.T, s audit.Store) {
	if _, ok, err := s.Last(context.Background(), "nobody"); ok || err != nil {
		t.Fatalf("last of a chain never written: ok %v, err %v; want not there, no error", ok, err)
	}
}

func testReplay(t *testing.T, s audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 2))
	mustAppend(t, s, chain("inst-a", 1, 3)) // the first two again (a lost acknowledgement), then one more
	mustAppend(t, s, chain("inst-a", 1, 3)) // all of it again
	wantLast(t, s, "inst-a", ev("inst-a", 3, ""))
}

func testConflict(t *testing.T, s audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 1))
	err := s.Append(context.Background(), []audit.Event{ev("inst-a", 1, "-other"), ev("inst-a", 2, "")})
	if !errors.Is(err, audit.ErrChainConflict) {
		t.Fatalf("another event at a taken position: %v, want ErrChainConflict", err)
	}
	wantLast(t, s, "inst-a", ev("inst-a", 1, "")) // the event after the conflict was not stored
}

func testChainsApart(t *testing.T, s audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 3))
	mustAppend(t, s, chain("inst-b", 1, 2)) // the same positions in another chain
	wantLast(t, s, "inst-a", ev("inst-a", 3, ""))
	wantLast(t, s, "inst-b", ev("inst-b", 2, ""))
}

func testConcurrentClaims(t *testing.T, s audit.Store) {
	const claimants = 8
	var wg sync.WaitGroup
	errs := make([]error, claimants)
	for i := range claimants {
		wg.Go(func() {
			errs[i] = s.Append(context.Background(), []audit.Event{ev("inst-a", 1, fmt.Sprintf("-%d", i))})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner == -1:
			winner = i
		case err == nil:
			t.Fatalf("claimants %d and %d both stored an event at one position", winner, i)
		case !errors.Is(err, audit.ErrChainConflict):
			t.Fatalf("claimant %d: %v, want ErrChainConflict", i, err)
		}
	}
	if winner == -1 {
		t.Fatal("no claimant stored its event")
	}
	wantLast(t, s, "inst-a", ev("inst-a", 1, fmt.Sprintf("-%d", winner)))
}

func testConflictElsewhere(t *testing.T, s audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 2))
	moved := ev("inst-a", 2, "")
	moved.Seq = 3 // the stored event 2, claimed again at position 3
	if err := s.Append(context.Background(), []audit.Event{moved}); !errors.Is(err, audit.ErrChainConflict) {
		t.Fatalf("a stored event at another position: %v, want ErrChainConflict", err)
	}
	wantLast(t, s, "inst-a", ev("inst-a", 2, ""))
}

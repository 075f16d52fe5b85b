package storetest

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/bduf/mcpauth/audit"
)

// The cases of audit.ChainReader and audit.ChainPruner, the capabilities audit.Verify and
// audit.ApplyRetention need of a store. A store without them skips these cases.
var chainCases = []struct {
	name string
	run  func(t *testing.T, s chainStore, newStore func() audit.Store)
}{
	{"ShouldListEveryChainWithAnEventOnceSorted", testInstances},
	{"ShouldYieldEveryChainsEventsInInstanceAndSeqOrder", testEvents},
	{"ShouldYieldAChainFromAPositionInSeqOrderUntilTheLoopStops", testChainEvents},
	{"ShouldYieldPastAGapTheNextStoredPosition", testChainEventsGap},
	{"ShouldFindTheFirstEventOfAChainSinceATime", testFirstSince},
	{"ShouldKeepTheHighestAnchorOfAChainAndTakeAnAnchorAddedTwiceAsAdded", testAnchors},
	{"ShouldDeleteTheHeadOfOneChainThroughAPosition", testDeleteThrough},
	{"ShouldReportTamperingWithWhatTheStoreHolds", testVerifyTampered},
	{"ShouldLeaveEveryChainVerifiableAfterRetention", testRetention},
	{"ShouldResumeAChainWhoseEventsRetentionDeletedEntirely", testRetentionOfAWholeChain},
}

// chainStore is a store with the capabilities of verification and retention.
type chainStore interface {
	audit.Store
	audit.ChainReader
	audit.ChainPruner
}

func runChainCases(t *testing.T, newStore func(t *testing.T) audit.Store) {
	for _, tt := range chainCases {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := newStore(t).(chainStore)
			if !ok {
				t.Skip("the store does not implement audit.ChainReader and audit.ChainPruner")
			}
			tt.run(t, s, func() audit.Store { return newStore(t) })
		})
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// seqs returns the positions of events.
func seqs(events []audit.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

func anchorAt(instance string, seq int64) audit.Anchor {
	return audit.Anchor{
		Instance: instance, Seq: seq, Hash: fmt.Sprintf("hash_%s_%d", instance, seq),
		Time: base.Add(time.Duration(seq) * time.Second), Before: base.Add(time.Hour),
	}
}

// collect returns the events events yields, at most max of them (0: all).
func collect(t *testing.T, events iter.Seq2[audit.Event, error], max int) []audit.Event {
	t.Helper()
	var out []audit.Event
	for e, err := range events {
		mustOK(t, "read events", err)
		out = append(out, e)
		if len(out) == max {
			break
		}
	}
	return out
}

// wantAsAppended checks that every event read is the one appended at its position.
func wantAsAppended(t *testing.T, got []audit.Event) {
	t.Helper()
	for _, e := range got {
		if want := ev(e.Instance, e.Seq, ""); e.ID != want.ID || e.Hash != want.Hash || e.PrevHash != want.PrevHash ||
			!e.Time.Equal(want.Time) || e.Subject != want.Subject || e.Type != want.Type {
			t.Errorf("read %+v, want it as appended: %+v", e, want)
		}
	}
}

func testInstances(t *testing.T, s chainStore, _ func() audit.Store) {
	ctx := context.Background()
	got, err := s.Instances(ctx)
	mustOK(t, "instances of an empty store", err)
	if len(got) != 0 {
		t.Fatalf("instances of an empty store = %v, want none", got)
	}
	mustAppend(t, s, chain("inst-b", 1, 2))
	mustAppend(t, s, chain("inst-a", 1, 3))
	got, err = s.Instances(ctx)
	mustOK(t, "instances", err)
	if want := []string{"inst-a", "inst-b"}; !slices.Equal(got, want) {
		t.Fatalf("instances = %v, want %v (each once, sorted)", got, want)
	}
}

func testEvents(t *testing.T, s chainStore, _ func() audit.Store) {
	mustAppend(t, s, chain("inst-b", 1, 2))
	mustAppend(t, s, chain("inst-a", 1, 3))
	got := collect(t, s.Events(context.Background()), 0)
	var positions []string
	for _, e := range got {
		positions = append(positions, fmt.Sprintf("%s/%d", e.Instance, e.Seq))
	}
	if want := []string{"inst-a/1", "inst-a/2", "inst-a/3", "inst-b/1", "inst-b/2"}; !slices.Equal(positions, want) {
		t.Fatalf("events = %v, want %v", positions, want)
	}
	wantAsAppended(t, got)
	if got := collect(t, s.Events(context.Background()), 2); len(got) != 2 {
		t.Fatalf("a loop stopped after 2 events got %d", len(got))
	}
}

func testChainEvents(t *testing.T, s chainStore, _ func() audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 5))
	mustAppend(t, s, chain("inst-b", 1, 3))
	for _, tc := range []struct {
		name string
		from int64
		max  int
		want []int64
	}{
		{"the whole chain, only its own events", 1, 0, []int64{1, 2, 3, 4, 5}},
		{"from a middle position", 3, 0, []int64{3, 4, 5}},
		{"a loop that stops after two", 2, 2, []int64{2, 3}},
		{"past the end, nothing", 6, 0, nil},
	} {
		got := collect(t, s.ChainEvents(context.Background(), "inst-a", tc.from), tc.max)
		if !slices.Equal(seqs(got), tc.want) {
			t.Errorf("%s (from %d) = %v, want %v", tc.name, tc.from, seqs(got), tc.want)
		}
		wantAsAppended(t, got)
	}
}

func testChainEventsGap(t *testing.T, s chainStore, _ func() audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 2))
	mustAppend(t, s, chain("inst-a", 4, 5)) // position 3 never stored
	got := collect(t, s.ChainEvents(context.Background(), "inst-a", 3), 0)
	if want := []int64{4, 5}; !slices.Equal(seqs(got), want) {
		t.Fatalf("read from the gap = %v, want %v: the verifier finds the gap by the position it gets", seqs(got), want)
	}
}

func testFirstSince(t *testing.T, s chainStore, _ func() audit.Store) {
	mustAppend(t, s, chain("inst-a", 1, 5)) // event n at base + n seconds
	mustAppend(t, s, chain("inst-b", 1, 9))
	for _, tc := range []struct {
		name  string
		from  int64
		since time.Time
		want  int64 // 0: none
	}{
		{"an event exactly at since is since", 1, base.Add(3 * time.Second), 3},
		{"between two events the later one is first", 1, base.Add(2500 * time.Millisecond), 3},
		{"before the chain the first event is first", 1, base, 1},
		{"a later from skips the events before it", 4, base.Add(2 * time.Second), 4},
		{"after the last event there is none", 1, base.Add(6 * time.Second), 0},
		{"past the chain's end there is none", 6, base, 0},
	} {
		got, ok, err := s.FirstSince(context.Background(), "inst-a", tc.from, tc.since)
		mustOK(t, "first since", err)
		switch {
		case tc.want == 0 && ok:
			t.Errorf("%s: got seq %d, want none", tc.name, got.Seq)
		case tc.want != 0 && (!ok || got.Seq != tc.want || got.Instance != "inst-a" || got.ID != ev("inst-a", tc.want, "").ID):
			t.Errorf("%s: got %s seq %d (ok %v), want inst-a seq %d", tc.name, got.Instance, got.Seq, ok, tc.want)
		}
	}
}

func testAnchors(t *testing.T, s chainStore, _ func() audit.Store) {
	ctx := context.Background()
	if _, ok, err := s.Anchor(ctx, "inst-a"); ok || err != nil {
		t.Fatalf("anchor of a chain never anchored: ok %v, err %v; want none, no error", ok, err)
	}
	mustOK(t, "add anchor 5", s.AddAnchor(ctx, anchorAt("inst-a", 5)))
	mustOK(t, "add anchor 3 after 5", s.AddAnchor(ctx, anchorAt("inst-a", 3)))
	mustOK(t, "add anchor 5 again", s.AddAnchor(ctx, anchorAt("inst-a", 5)))
	mustOK(t, "add another chain's anchor", s.AddAnchor(ctx, anchorAt("inst-b", 9)))
	got, ok, err := s.Anchor(ctx, "inst-a")
	mustOK(t, "anchor", err)
	want := anchorAt("inst-a", 5)
	sameAnchor := func(got, want audit.Anchor) bool {
		return got.Instance == want.Instance && got.Seq == want.Seq && got.Hash == want.Hash &&
			got.Time.Equal(want.Time) && got.Before.Equal(want.Before)
	}
	if !ok || !sameAnchor(got, want) {
		t.Fatalf("anchor = %+v (ok %v), want the highest, %+v: an anchor never moves backwards", got, ok, want)
	}
	all, err := s.Anchors(ctx)
	mustOK(t, "anchors", err)
	if len(all) != 2 || !sameAnchor(all["inst-a"], want) || !sameAnchor(all["inst-b"], anchorAt("inst-b", 9)) {
		t.Fatalf("anchors = %+v, want the highest of inst-a and of inst-b", all)
	}
}

func testDeleteThrough(t *testing.T, s chainStore, _ func() audit.Store) {
	ctx := context.Background()
	mustAppend(t, s, chain("inst-a", 1, 5))
	mustAppend(t, s, chain("inst-b", 1, 5))
	mustOK(t, "add anchor", s.AddAnchor(ctx, anchorAt("inst-a", 2)))
	mustOK(t, "add anchor", s.AddAnchor(ctx, anchorAt("inst-a", 3)))
	n, err := s.DeleteThrough(ctx, "inst-a", 3)
	mustOK(t, "delete through 3", err)
	if n != 3 {
		t.Fatalf("deleted %d events, want 3", n)
	}
	if n, err := s.DeleteThrough(ctx, "inst-a", 3); err != nil || n != 0 {
		t.Fatalf("deleting through 3 again = %d, %v; want 0, no error", n, err)
	}
	for _, tc := range []struct {
		instance string
		want     []int64
	}{{"inst-a", []int64{4, 5}}, {"inst-b", []int64{1, 2, 3, 4, 5}}} {
		got := collect(t, s.ChainEvents(ctx, tc.instance, 1), 0)
		if !slices.Equal(seqs(got), tc.want) {
			t.Errorf("%s holds %v, want %v", tc.instance, seqs(got), tc.want)
		}
	}
	if a, ok, err := s.Anchor(ctx, "inst-a"); err != nil || !ok || a.Seq != 3 {
		t.Fatalf("anchor after the deletion = %+v, %v, %v; want the one at 3 kept", a, ok, err)
	}
}

// mint writes events on a fresh store through a writer of instance, so that they carry real
// hashes and links, and returns them as stored. Event n (from 1) is at times[n-1].
func mint(t *testing.T, newStore func() audit.Store, instance string, times ...time.Time) []audit.Event {
	t.Helper()
	scratch := newStore()
	record(t, scratch, instance, times...)
	events := collect(t, scratch.(audit.ChainReader).ChainEvents(context.Background(), instance, 1), 0)
	if len(events) != len(times) {
		t.Fatalf("minted %d events, want %d", len(events), len(times))
	}
	return events
}

// record records one event per time on a writer of instance into s, and closes the writer.
func record(t *testing.T, s audit.Store, instance string, times ...time.Time) {
	t.Helper()
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, s, audit.WriterConfig{Instance: instance, FlushEvery: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	mustOK(t, "new writer", err)
	for i, at := range times {
		mustOK(t, "record", w.Record(ctx, audit.Event{Type: audit.AuthSuccess, Subject: fmt.Sprintf("usr_%d", i),
			OrgID: "acme", Time: at, Details: map[string]any{"n": i}}))
	}
	mustOK(t, "close writer", w.Close(ctx))
}

// minutes returns n times a minute apart from start.
func minutes(start time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(i) * time.Minute)
	}
	return out
}

func testVerifyTampered(t *testing.T, s chainStore, newStore func() audit.Store) {
	intact := mint(t, newStore, "inst-a", minutes(base, 6)...)
	edited := slices.Clone(intact)
	edited[3].Subject = "usr_mallory"
	swapped := slices.Clone(intact)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	swapped[2].Seq, swapped[3].Seq = 3, 4
	for _, tc := range []struct {
		name    string
		stored  []audit.Event
		seq     int64
		problem string
	}{
		{"an event deleted from the middle is reported missing at its position",
			slices.Concat(intact[:2], intact[3:]), 3, audit.ProblemMissing},
		{"an event whose subject was changed is reported edited at its position", edited, 4, audit.ProblemEdited},
		{"two events swapped are reported out of order at the first of them", swapped, 3, audit.ProblemOutOfOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore().(chainStore)
			mustAppend(t, s, tc.stored)
			res, err := audit.Verify(context.Background(), s, audit.VerifyOptions{})
			mustOK(t, "verify", err)
			if res.OK || res.FirstBad == nil || res.FirstBad.Instance != "inst-a" || res.FirstBad.Seq != tc.seq ||
				res.FirstBad.Problem != tc.problem {
				t.Fatalf("verify = %+v (first bad %+v), want inst-a seq %d %q", res, res.FirstBad, tc.seq, tc.problem)
			}
		})
	}
	mustAppend(t, s, intact)
	if res, err := audit.Verify(context.Background(), s, audit.VerifyOptions{}); err != nil || !res.OK || res.Checked != 6 {
		t.Fatalf("verify of the intact chain = %+v, %v; want ok with 6 checked", res, err)
	}
}

func testRetention(t *testing.T, s chainStore, _ func() audit.Store) {
	ctx := context.Background()
	cutoff := base.Add(time.Hour)
	record(t, s, "inst-a", slices.Concat(minutes(base, 4), minutes(cutoff, 3))...) // 4 old, 3 recent
	record(t, s, "inst-b", minutes(cutoff, 2)...)                                  // all recent
	deleted, err := audit.ApplyRetention(ctx, s, cutoff)
	mustOK(t, "retention", err)
	if deleted != 4 {
		t.Fatalf("retention deleted %d events, want the 4 old ones", deleted)
	}
	left := collect(t, s.ChainEvents(ctx, "inst-a", 1), 0)
	if want := []int64{5, 6, 7}; !slices.Equal(seqs(left), want) {
		t.Fatalf("inst-a holds %v after retention, want %v", seqs(left), want)
	}
	for _, run := range []string{"after retention", "after retention again"} {
		res, err := audit.Verify(ctx, s, audit.VerifyOptions{})
		mustOK(t, "verify", err)
		if !res.OK || res.Checked != 5 || res.Chains != 2 {
			t.Fatalf("verify %s = %+v (first bad %+v), want ok with 5 checked over 2 chains", run, res, res.FirstBad)
		}
		if n, err := audit.ApplyRetention(ctx, s, cutoff); err != nil || n != 0 {
			t.Fatalf("retention %s = %d, %v; want nothing more to delete", run, n, err)
		}
	}
}

func testRetentionOfAWholeChain(t *testing.T, s chainStore, _ func() audit.Store) {
	ctx := context.Background()
	record(t, s, "inst-a", minutes(base, 3)...)
	if n, err := audit.ApplyRetention(ctx, s, base.Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("retention = %d, %v; want 3 deleted", n, err)
	}
	wantLast := func(seq int64, typ string) audit.Event {
		t.Helper()
		last, ok, err := s.Last(ctx, "inst-a")
		if err != nil || !ok || last.Seq != seq || last.Type != typ || last.Hash == "" {
			t.Fatalf("last = %+v, %v, %v; want a %s at seq %d", last, ok, err, typ, seq)
		}
		return last
	}
	anchor := wantLast(3, audit.RetentionAnchor)
	res, err := audit.Verify(ctx, s, audit.VerifyOptions{})
	if err != nil || !res.OK || res.Chains != 1 || res.Checked != 0 {
		t.Fatalf("verify of an emptied chain = %+v, %v; want ok, 1 chain, 0 checked", res, err)
	}
	record(t, s, "inst-a", minutes(base.Add(2*time.Hour), 2)...)
	next := collect(t, s.ChainEvents(ctx, "inst-a", 1), 0)
	if len(next) != 2 || next[0].Seq != 4 || next[0].PrevHash != anchor.Hash {
		t.Fatalf("resumed chain = %v, want seq 4 and 5, the first linked to the anchor", seqs(next))
	}
	wantLast(5, audit.AuthSuccess)
	if res, err := audit.Verify(ctx, s, audit.VerifyOptions{}); err != nil || !res.OK || res.Checked != 2 {
		t.Fatalf("verify of the resumed chain = %+v, %v; want ok with 2 checked", res, err)
	}
}

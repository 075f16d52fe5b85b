package audit_test

import (
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/audit"
)

func TestShouldVerifyAnIntactChainAndReportProgress(t *testing.T) {
	s, _ := newStore(t)
	writeChain(t, s, "inst-a", 2001)
	var reports []int64
	res, err := s.Verify(ctxFor(t), time.Time{}, func(checked int64) { reports = append(reports, checked) })
	mustOK(t, "verify", err)
	if !res.OK || res.Checked != 2001 || res.Chains != 1 || res.FirstBad != nil {
		t.Fatalf("verify = %+v, want ok, 2001 checked, 1 chain", res)
	}
	if want := []int64{1000, 2000, 2001}; !equalInts(reports, want) {
		t.Fatalf("progress reports = %v, want %v", reports, want)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// set updates the event at seq of chain inst-a.
func set(seq int64, update bson.D) func(t *testing.T, db *mongo.Database) {
	return func(t *testing.T, db *mongo.Database) {
		res, err := db.Collection("audit_events").UpdateOne(ctxFor(t),
			bson.D{{Key: "instance", Value: "inst-a"}, {Key: "seq", Value: seq}}, bson.D{{Key: "$set", Value: update}})
		mustOK(t, "tamper", err)
		if res.MatchedCount != 1 {
			t.Fatalf("tamper matched %d events", res.MatchedCount)
		}
	}
}

func remove(seq int64) func(t *testing.T, db *mongo.Database) {
	return func(t *testing.T, db *mongo.Database) {
		res, err := db.Collection("audit_events").DeleteOne(ctxFor(t),
			bson.D{{Key: "instance", Value: "inst-a"}, {Key: "seq", Value: seq}})
		mustOK(t, "delete", err)
		if res.DeletedCount != 1 {
			t.Fatalf("deleted %d events", res.DeletedCount)
		}
	}
}

// swap exchanges the positions of two events (through a free position: (instance, seq) is unique).
func swap(a, b int64) func(t *testing.T, db *mongo.Database) {
	return func(t *testing.T, db *mongo.Database) {
		set(a, bson.D{{Key: "seq", Value: -1}})(t, db)
		set(b, bson.D{{Key: "seq", Value: a}})(t, db)
		set(-1, bson.D{{Key: "seq", Value: b}})(t, db)
	}
}

func TestShouldReportTheFirstBrokenLinkOfATamperedChain(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *mongo.Database)
		seq     int64
		problem string
		checked int64
	}{
		{"an event whose details were edited is reported edited at its position",
			set(7, bson.D{{Key: "details.n", Value: 700}}), 7, audit.ProblemEdited, 7},
		{"an event whose nested details were edited is reported edited",
			set(7, bson.D{{Key: "details.nested.b", Value: bson.A{1, "two", false}}}), 7, audit.ProblemEdited, 7},
		{"an event whose subject was edited is reported edited",
			set(12, bson.D{{Key: "subject", Value: "usr_someone_else"}}), 12, audit.ProblemEdited, 12},
		{"an event whose time was edited is reported edited",
			set(3, bson.D{{Key: "time", Value: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}}), 3, audit.ProblemEdited, 3},
		{"an event given a new hash of its own is reported edited",
			set(9, bson.D{{Key: "hash", Value: "00"}}), 9, audit.ProblemEdited, 9},
		{"the last event edited is reported edited",
			set(20, bson.D{{Key: "type", Value: audit.AuthFailed}}), 20, audit.ProblemEdited, 20},
		{"a deleted event is reported missing at its position", remove(7), 7, audit.ProblemMissing, 7},
		{"a deleted first event is reported missing at position 1", remove(1), 1, audit.ProblemMissing, 1},
		{"two swapped neighbours are reported out of order at the first of them", swap(7, 8), 7, audit.ProblemOutOfOrder, 7},
		{"two swapped distant events are reported out of order at the first of them", swap(5, 15), 5, audit.ProblemOutOfOrder, 5},
		{"an event relinked to another predecessor is reported edited: its link is in its hash",
			set(10, bson.D{{Key: "prev_hash", Value: "00"}}), 10, audit.ProblemEdited, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newStore(t)
			writeChain(t, s, "inst-a", 20)
			mustVerify(t, s, 1, 20)
			tc.tamper(t, db)
			res, err := s.Verify(ctxFor(t), time.Time{}, nil)
			mustOK(t, "verify", err)
			if res.OK || res.FirstBad == nil {
				t.Fatalf("verify = %+v, want a broken link", res)
			}
			bad := *res.FirstBad
			if bad.Instance != "inst-a" || bad.Seq != tc.seq || bad.Problem != tc.problem {
				t.Fatalf("first bad = %+v, want inst-a seq %d %q", bad, tc.seq, tc.problem)
			}
			if res.Checked != tc.checked {
				t.Errorf("checked = %d, want %d", res.Checked, tc.checked)
			}
		})
	}
}

func TestShouldKeepOneChainPerInstanceAndVerifyEachOnItsOwn(t *testing.T) {
	s, db := newStore(t)
	writeChain(t, s, "inst-a", 10)
	writeChain(t, s, "inst-b", 15)
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-a"), 10)
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-b"), 15)
	mustVerify(t, s, 2, 25)

	_, err := db.Collection("audit_events").DeleteOne(ctxFor(t),
		bson.D{{Key: "instance", Value: "inst-b"}, {Key: "seq", Value: 4}})
	mustOK(t, "delete", err)
	res, err := s.Verify(ctxFor(t), time.Time{}, nil)
	mustOK(t, "verify", err)
	if res.OK || res.FirstBad == nil || res.FirstBad.Instance != "inst-b" || res.FirstBad.Seq != 4 ||
		res.FirstBad.Problem != audit.ProblemMissing {
		t.Fatalf("verify = %+v (%+v), want inst-b seq 4 missing", res, res.FirstBad)
	}
	if res.Checked != 14 { // all of inst-a, then inst-b up to the gap
		t.Errorf("checked = %d, want 14", res.Checked)
	}
}

func TestShouldVerifyOnlyTheEventsSinceATimeLinkedToTheOneBefore(t *testing.T) {
	s, db := newStore(t)
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	for i := range 10 {
		e := event(i)
		e.Time = base.Add(time.Duration(i) * time.Minute)
		mustOK(t, "record", w.Record(ctx, e))
	}
	mustOK(t, "close", w.Close(ctx))

	since := base.Add(6 * time.Minute) // events 7..10
	res, err := s.Verify(ctx, since, nil)
	mustOK(t, "verify", err)
	if !res.OK || res.Checked != 4 {
		t.Fatalf("verify since = %+v, want ok with 4 checked", res)
	}
	remove(6)(t, db) // the event just before the window
	res, err = s.Verify(ctx, since, nil)
	mustOK(t, "verify", err)
	if res.OK || res.FirstBad == nil || res.FirstBad.Seq != 6 || res.FirstBad.Problem != audit.ProblemMissing {
		t.Fatalf("verify since = %+v (%+v), want seq 6 missing", res, res.FirstBad)
	}
}

// oldAndNewChain writes old events (two days ago) then new ones (now) on chain inst-a.
func oldAndNewChain(t *testing.T, s *audit.MongoStore, old, recent int) (cutoff time.Time) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	for i := range old + recent {
		e := event(i)
		e.Time = now.Add(-48 * time.Hour).Add(time.Duration(i) * time.Minute)
		if i >= old {
			e.Time = now.Add(time.Duration(i-old) * time.Millisecond)
		}
		mustOK(t, "record", w.Record(ctx, e))
	}
	mustOK(t, "close", w.Close(ctx))
	return now.Add(-24 * time.Hour)
}

func TestShouldDeleteOldEventsAndKeepWhatRemainsVerifiable(t *testing.T) {
	s, db := newStore(t)
	cutoff := oldAndNewChain(t, s, 10, 10)
	writeChain(t, s, "inst-b", 5) // all recent: nothing of it goes
	ctx := ctxFor(t)

	deleted, err := s.ApplyRetention(ctx, cutoff)
	mustOK(t, "retention", err)
	if deleted != 10 {
		t.Fatalf("deleted %d events, want 10", deleted)
	}
	if got := stored(t, db, "inst-a"); len(got) != 10 || got[0].Seq != 11 {
		t.Fatalf("after retention inst-a holds %d events from seq %d, want 10 from 11", len(got), got[0].Seq)
	}
	mustVerify(t, s, 2, 15)

	deleted, err = s.ApplyRetention(ctx, cutoff)
	mustOK(t, "retention again", err)
	if deleted != 0 {
		t.Fatalf("second retention deleted %d events, want 0", deleted)
	}
	mustVerify(t, s, 2, 15)
}

func TestShouldStillFindTamperingAfterRetention(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *mongo.Database)
		seq     int64
		problem string
	}{
		{"the first remaining event deleted is reported missing", remove(11), 11, audit.ProblemMissing},
		{"a remaining event edited is reported edited", set(15, bson.D{{Key: "actor", Value: "usr_mallory"}}), 15, audit.ProblemEdited},
		{"the first remaining event relinked is reported edited", set(11, bson.D{{Key: "prev_hash", Value: ""}}), 11, audit.ProblemEdited},
		{"the anchor itself edited breaks the link into the chain",
			func(t *testing.T, db *mongo.Database) {
				_, err := db.Collection("audit_anchors").UpdateMany(ctxFor(t), bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "hash", Value: "00"}}}})
				mustOK(t, "tamper anchor", err)
			}, 11, audit.ProblemOutOfOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newStore(t)
			cutoff := oldAndNewChain(t, s, 10, 10)
			_, err := s.ApplyRetention(ctxFor(t), cutoff)
			mustOK(t, "retention", err)
			tc.tamper(t, db)
			res, err := s.Verify(ctxFor(t), time.Time{}, nil)
			mustOK(t, "verify", err)
			if res.OK || res.FirstBad == nil || res.FirstBad.Seq != tc.seq || res.FirstBad.Problem != tc.problem {
				t.Fatalf("verify = %+v (%+v), want seq %d %q", res, res.FirstBad, tc.seq, tc.problem)
			}
		})
	}
}

func TestShouldRefuseToDeleteABrokenPartOfAChain(t *testing.T) {
	s, db := newStore(t)
	cutoff := oldAndNewChain(t, s, 10, 10)
	remove(4)(t, db)
	deleted, err := s.ApplyRetention(ctxFor(t), cutoff)
	if !errors.Is(err, audit.ErrChainBroken) || deleted != 0 {
		t.Fatalf("retention = %d, %v; want 0, ErrChainBroken", deleted, err)
	}
	res, err := s.Verify(ctxFor(t), time.Time{}, nil)
	mustOK(t, "verify", err)
	if res.FirstBad == nil || res.FirstBad.Seq != 4 || res.FirstBad.Problem != audit.ProblemMissing {
		t.Fatalf("verify = %+v (%+v), want the deletion still found at seq 4", res, res.FirstBad)
	}
}

func TestShouldContinueAChainWhoseEventsRetentionDeletedEntirely(t *testing.T) {
	s, db := newStore(t)
	oldAndNewChain(t, s, 10, 0)
	deleted, err := s.ApplyRetention(ctxFor(t), time.Now())
	mustOK(t, "retention", err)
	if deleted != 10 {
		t.Fatalf("deleted %d, want 10", deleted)
	}
	last, ok, err := s.Last(ctxFor(t), "inst-a")
	mustOK(t, "last", err)
	if !ok || last.Seq != 10 || last.Type != audit.RetentionAnchor || last.Hash == "" {
		t.Fatalf("last = %+v, %v; want the anchor at seq 10", last, ok)
	}
	mustVerify(t, s, 1, 0)

	writeChain(t, s, "inst-a", 3)
	got := stored(t, db, "inst-a")
	if len(got) != 3 || got[0].Seq != 11 || got[0].PrevHash != last.Hash {
		t.Fatalf("continued chain = %d events from seq %d, want 3 from 11 linked to the anchor", len(got), got[0].Seq)
	}
	mustVerify(t, s, 1, 3)
}

func TestShouldVerifyTheWholeChainButCountAndNameOnlyOneOrganizationsEvents(t *testing.T) {
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	orgs := []string{"acme", "globex", "", "acme", "globex", "acme"} // "" is an event of no organization
	for i, org := range orgs {
		e := event(i + 1)
		e.OrgID = org
		mustOK(t, "record", w.Record(ctx, e))
	}
	mustOK(t, "close", w.Close(ctx))

	for _, tt := range []struct {
		org     string
		checked int64
	}{{"", 6}, {"acme", 3}, {"globex", 2}, {"initech", 0}} {
		res, err := s.VerifyOrg(ctx, time.Time{}, tt.org, nil)
		mustOK(t, "verify", err)
		if !res.OK || res.Checked != tt.checked || res.Chains != 1 {
			t.Errorf("VerifyOrg(%q) = %+v, want ok with %d checked", tt.org, res, tt.checked)
		}
	}
	// globex's second event (position 5) is edited: every organization sees the chain broken
	// there, only globex (and the deployment) sees which event it is.
	set(5, bson.D{{Key: "details.n", Value: 99}})(t, db)
	edited := stored(t, db, "inst-a")[4].ID
	for _, tt := range []struct {
		org     string
		eventID string
	}{{"", edited}, {"globex", edited}, {"acme", ""}} {
		res, err := s.VerifyOrg(ctx, time.Time{}, tt.org, nil)
		mustOK(t, "verify", err)
		if res.OK || res.FirstBad == nil || res.FirstBad.Seq != 5 || res.FirstBad.Problem != audit.ProblemEdited || res.FirstBad.EventID != tt.eventID {
			t.Errorf("VerifyOrg(%q) after the edit = %+v (first bad %+v), want position 5 edited, event id %q", tt.org, res, res.FirstBad, tt.eventID)
		}
	}
}

func TestShouldVerifyEachChainFromTheFirstEventSinceATime(t *testing.T) {
	tests := []struct {
		name    string
		since   func(cutoff time.Time) time.Time
		retain  bool
		tamper  func(t *testing.T, db *mongo.Database)
		checked int64
		bad     *audit.BadLink
	}{
		{"a time before every event checks every chain from its start",
			func(c time.Time) time.Time { return c.Add(-72 * time.Hour) }, false, nil, 25, nil},
		{"a chain with no event since is counted but not checked",
			func(c time.Time) time.Time { return c }, false, nil, 10, nil},
		{"after retention a time before every event checks from the anchors; an emptied chain still counts",
			func(c time.Time) time.Time { return c.Add(-72 * time.Hour) }, true, nil, 10, nil},
		{"an event edited after the time is reported edited at its position",
			func(c time.Time) time.Time { return c }, false, set(15, bson.D{{Key: "subject", Value: "usr_mallory"}}), 5,
			&audit.BadLink{Instance: "inst-a", Seq: 15, Problem: audit.ProblemEdited}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newStore(t)
			cutoff := oldAndNewChain(t, s, 10, 10) // inst-a: 10 old, 10 recent
			writeOldAndNew(t, s, "inst-b", cutoff, 5, 0)
			if tc.retain {
				_, err := s.ApplyRetention(ctxFor(t), cutoff)
				mustOK(t, "retention", err)
			}
			if tc.tamper != nil {
				tc.tamper(t, db)
			}
			res, err := s.Verify(ctxFor(t), tc.since(cutoff), nil)
			mustOK(t, "verify", err)
			if res.Chains != 2 || res.Checked != tc.checked || res.OK != (tc.bad == nil) {
				t.Fatalf("verify = %+v (first bad %+v), want 2 chains, %d checked, ok %v", res, res.FirstBad, tc.checked, tc.bad == nil)
			}
			if tc.bad != nil && (res.FirstBad.Instance != tc.bad.Instance || res.FirstBad.Seq != tc.bad.Seq || res.FirstBad.Problem != tc.bad.Problem) {
				t.Fatalf("first bad = %+v, want %+v", res.FirstBad, tc.bad)
			}
		})
	}
}

func TestShouldFailAVerificationOfAnEventEditedSoItNoLongerDecodes(t *testing.T) {
	s, db := newStore(t)
	writeChain(t, s, "inst-a", 5)
	set(3, bson.D{{Key: "time", Value: "not a time"}})(t, db)
	for _, since := range []time.Time{{}, time.Now().Add(-time.Hour)} {
		res, err := s.Verify(ctxFor(t), since, nil)
		if err == nil || res.OK {
			t.Fatalf("verify (since %v) = %+v, %v; want an error, not a verdict", since, res, err)
		}
	}
}

package session_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/session/sessiontest"
	"github.com/bduf/mcpauth/internal/conformance"
	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/internal/mongox"
)

// The Mongo store's own cases of the users' sets of sessions: what the interface cannot show
// (an interrupted write, a store made before the sets, the documents an erasure leaves, the
// queries a listing sends).

func listed(t *testing.T, s session.Store, userID string) []session.Session {
	t.Helper()
	got, err := s.ListUserSessions(context.Background(), userID)
	if err != nil {
		t.Fatalf("list sessions of %s: %v", userID, err)
	}
	return got
}

func idsOf(sessions []session.Session) []string {
	ids := make([]string, len(sessions))
	for i, sess := range sessions {
		ids[i] = sess.ID
	}
	return ids
}

func create(t *testing.T, s session.Store, sessions ...session.Session) {
	t.Helper()
	for _, sess := range sessions {
		if _, err := s.CreateSession(context.Background(), sess); err != nil {
			t.Fatalf("create session %s: %v", sess.ID, err)
		}
	}
}

// CreateSession enters a session in its user's set before it inserts the session: interrupted
// in between, the set names a session that does not exist, and listing must skip it.
func TestShouldSkipAnEntryWhoseSessionWasNeverStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	s := newStore(t, db)
	t0 := conformance.Now()
	create(t, s, sessiontest.NewSession("ses_1", "usr_1", t0), sessiontest.NewSession("ses_2", "usr_1", t0.Add(time.Second)),
		sessiontest.NewSession("ses_3", "usr_1", t0.Add(2*time.Second)))
	// What an interruption after the set's write leaves: the entry, without its session.
	if _, err := db.Collection("sessions").DeleteOne(ctx, mongox.ByID("ses_2")); err != nil {
		t.Fatal(err)
	}
	if got := idsOf(listed(t, s, "usr_1")); !slices.Equal(got, []string{"ses_1", "ses_3"}) {
		t.Errorf("sessions = %v, want [ses_1 ses_3] (the entry without a session skipped)", got)
	}
}

// A store made before the sets existed gets them once, at the first start: each user's newest
// MaxPerUser sessions; of the older ones, those that still work are revoked (and another
// instance learns it from the store), those that expired need nothing.
func TestShouldBackfillTheSetsOfAStoreMadeBeforeThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	now := conformance.Now()
	t0 := now.Add(-12 * time.Hour) // every session below still works, but the expired one
	var old []any
	many := make([]string, session.MaxPerUser+3)
	for i := range many {
		many[i] = fmt.Sprintf("ses_many_%03d", i)
		sess := sessiontest.NewSession(many[i], "usr_many", t0.Add(time.Duration(i)*time.Second))
		if i == 0 {
			sess.ExpiresAt = now.Add(-time.Hour)
		}
		old = append(old, sess)
	}
	old = append(old, sessiontest.NewSession("ses_few_1", "usr_few", t0), sessiontest.NewSession("ses_few_2", "usr_few", t0.Add(time.Minute)))
	if _, err := db.Collection("sessions").InsertMany(ctx, old); err != nil {
		t.Fatal(err)
	}
	// One of the older ones was logged out before the upgrade: its own revocation stays.
	if _, err := db.Collection("session_revocations").InsertOne(ctx, bson.D{{Key: "_id", Value: many[2]},
		{Key: "revoked_at", Value: t0}, {Key: "reason", Value: "logout"}}); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, db)

	if got, want := idsOf(listed(t, s, "usr_many")), many[3:]; !slices.Equal(got, want) {
		t.Errorf("sessions of usr_many = %v,\nwant the newest %d: %v", got, session.MaxPerUser, want)
	}
	if got := idsOf(listed(t, s, "usr_few")); !slices.Equal(got, []string{"ses_few_1", "ses_few_2"}) {
		t.Errorf("sessions of usr_few = %v, want both", got)
	}
	for _, tc := range []struct {
		name, id string
		revoked  bool
		reason   string
	}{
		{"an expired older session needs no revocation", many[0], false, ""},
		{"a working older session is revoked", many[1], true, session.ReasonSessionLimit},
		{"an older session revoked before keeps its revocation", many[2], true, "logout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.GetSession(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Revoked != tc.revoked || got.RevokeReason != tc.reason {
				t.Errorf("session %s = revoked %v, %q; want %v, %q", tc.id, got.Revoked, got.RevokeReason, tc.revoked, tc.reason)
			}
		})
	}

	// Another instance, starting on the backfilled store, learns the revocation from it.
	other := session.NewSessions(s, session.NewLocalRevocations(time.Now), time.Now, 24*time.Hour, time.Minute)
	if err := other.ReloadRevoked(ctx); err != nil {
		t.Fatal(err)
	}
	if revoked, err := other.IsRevoked(ctx, many[1]); err != nil || !revoked {
		t.Errorf("another instance's revocation set has the backfill's revocation: %v, %v; want true", revoked, err)
	}

	// Once only: a session written behind the store's back after the backfill is not taken in.
	if _, err := db.Collection("sessions").InsertOne(ctx, sessiontest.NewSession("ses_few_3", "usr_few", t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	again := newStore(t, db)
	if got := idsOf(listed(t, again, "usr_few")); !slices.Equal(got, []string{"ses_few_1", "ses_few_2"}) {
		t.Errorf("sessions of usr_few after a second start = %v, want the backfill's two (it runs once)", got)
	}
}

// Erasing a user removes its set (every version and head) and nobody else's; a later login of
// the same id starts a new set.
func TestShouldEraseAUsersSetOfSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	s := newStore(t, db)
	t0 := conformance.Now()
	create(t, s, sessiontest.NewSession("ses_1", "usr_1", t0), sessiontest.NewSession("ses_2", "usr_1", t0.Add(time.Second)),
		sessiontest.NewSession("ses_10", "usr_10", t0))

	if err := s.EraseUser(ctx, "usr_1"); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{"user_sessions", "user_session_heads"} {
		n, err := db.Collection(coll).CountDocuments(ctx, bson.D{{Key: "user_id", Value: "usr_1"}})
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d documents of usr_1 left in %s", n, coll)
		}
	}
	if got := listed(t, s, "usr_1"); len(got) != 0 {
		t.Errorf("sessions of an erased user = %v", idsOf(got))
	}
	if got := idsOf(listed(t, s, "usr_10")); !slices.Equal(got, []string{"ses_10"}) {
		t.Errorf("sessions of usr_10 = %v, want [ses_10] (usr_1 is a prefix of its id)", got)
	}
	create(t, s, sessiontest.NewSession("ses_3", "usr_1", t0.Add(time.Minute)))
	if got := idsOf(listed(t, s, "usr_1")); !slices.Equal(got, []string{"ses_3"}) {
		t.Errorf("sessions of usr_1 after erasure and a new login = %v, want [ses_3]", got)
	}
}

// Listing a user's sessions must not scan: every query it sends is a find by _id, and on a
// server that filters nothing else itself (FerretDB v1) every one an _id equality.
func TestShouldListAUsersSessionsByIDLookUpsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := mongotest.DatabaseName(t)
	var (
		recording atomic.Bool
		mu        sync.Mutex
		filters   []bson.Raw
		others    []string
	)
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if !recording.Load() || e.DatabaseName != name {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if e.CommandName != "find" {
			others = append(others, e.CommandName)
			return
		}
		filter, _ := e.Command.Lookup("filter").DocumentOK()
		filters = append(filters, filter)
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(mongotest.URI()).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	db := client.Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
		_ = client.Disconnect(ctx)
	})
	s := newStore(t, db)
	t0 := conformance.Now()
	create(t, s, sessiontest.NewSession("ses_1", "usr_1", t0), sessiontest.NewSession("ses_2", "usr_1", t0.Add(time.Second)),
		sessiontest.NewSession("ses_3", "usr_1", t0.Add(2*time.Second)), sessiontest.NewSession("ses_x", "usr_2", t0))
	if _, err := s.RevokeSession(ctx, "ses_2", t0, "test"); err != nil {
		t.Fatal(err)
	}
	onlyIDs := mongox.PushesDownOnlyIDs(ctx, db)

	recording.Store(true)
	got := listed(t, s, "usr_1")
	recording.Store(false)

	if ids := idsOf(got); !slices.Equal(ids, []string{"ses_1", "ses_2", "ses_3"}) || !got[1].Revoked {
		t.Fatalf("sessions = %+v, want ses_1..3 with ses_2 revoked", got)
	}
	if len(others) > 0 {
		t.Errorf("listing sent commands other than find: %v", others)
	}
	if len(filters) == 0 {
		t.Fatal("no find recorded")
	}
	for _, f := range filters {
		elems, _ := f.Elements()
		if len(elems) != 1 || elems[0].Key() != "_id" {
			t.Errorf("find filter %v is not on _id alone: a scan", f)
			continue
		}
		if _, equality := elems[0].Value().StringValueOK(); !equality && onlyIDs {
			t.Errorf("find filter %v is not an _id equality: FerretDB answers it by a scan", f)
		}
	}
	t.Logf("%d finds (FerretDB: %v)", len(filters), onlyIDs)
}

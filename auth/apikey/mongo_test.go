package apikey_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/apikey/apikeytest"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/internal/mongox"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		return newStore(t, mongotest.Database(t))
	})
}

func newStore(t *testing.T, db *mongo.Database) *apikey.MongoStore {
	t.Helper()
	s, err := apikey.NewMongoStore(context.Background(), db)
	if err != nil {
		t.Fatalf("new mongo store: %v", err)
	}
	return s
}

// keyIDs lists the ids of user's keys, in the store's order.
func keyIDs(t *testing.T, s apikey.Store, user string) []string {
	t.Helper()
	list, err := s.ListAPIKeys(context.Background(), user)
	if err != nil {
		t.Fatalf("list %s: %v", user, err)
	}
	ids := make([]string, len(list))
	for i, k := range list {
		ids[i] = k.ID
	}
	return ids
}

// seedKeys inserts n key records of user straight into api_keys, as a store made before the key
// sets holds them (faster than n creates, and what the backfill finds).
func seedKeys(t *testing.T, db *mongo.Database, user string, n int, at time.Time) []string {
	t.Helper()
	docs := make([]any, n)
	ids := make([]string, n)
	for i := range n {
		k := apikeytest.NewKey(fmt.Sprintf("%s_seed%03d", user, i), user, at.Add(time.Duration(i)*time.Millisecond))
		docs[i], ids[i] = k, k.ID
	}
	if _, err := db.Collection("api_keys").InsertMany(context.Background(), docs); err != nil {
		t.Fatalf("seed keys: %v", err)
	}
	return ids
}

// A create interrupted after entering its key in the user's set, before the key record: the
// listing skips the entry, and the cap counts it as a create in flight only within the grace.
func TestShouldSkipASetEntryWithoutItsKeyRecord(t *testing.T) {
	t.Parallel()
	t0 := conformance.Now()
	for _, tc := range []struct {
		name      string
		ghostAge  time.Duration
		wantError error
	}{
		{"a fresh entry counts against the cap, as a create in flight", 10 * time.Second, apikey.ErrTooManyKeys},
		{"an entry older than the grace is a left-over and frees its slot", 2 * time.Minute, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := mongotest.Database(t)
			seeded := seedKeys(t, db, "usr_1", apikey.MaxPerUser-1, t0)
			s := newStore(t, db)
			ghost := apikeytest.NewKey("usr_1_ghost", "usr_1", t0.Add(-tc.ghostAge))
			ghost.ExpiresAt = time.Time{}
			conformance.MustOK(t, "enter the ghost", s.EnterOnly(ctx, ghost))
			if got := keyIDs(t, s, "usr_1"); !slices.Equal(got, seeded) {
				t.Errorf("listing = %v, want the seeded keys only", got)
			}
			err := s.CreateAPIKey(ctx, apikeytest.NewKey("usr_1_next", "usr_1", t0))
			if !errors.Is(err, tc.wantError) || (tc.wantError == nil && err != nil) {
				t.Errorf("create at %d keys and the ghost: %v, want %v", apikey.MaxPerUser-1, err, tc.wantError)
			}
		})
	}
}

// A store made before the key sets: its keys are entered in their users' sets at the first
// start, once, oldest first, with their revocations, and count against the cap.
func TestShouldBackfillTheKeySetsOfAStoreMadeBeforeThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	t0 := conformance.Now()
	full := seedKeys(t, db, "usr_1", apikey.MaxPerUser, t0)
	// Inserted newest first: the backfill orders by creation.
	late, early := apikeytest.NewKey("usr_2_b", "usr_2", t0.Add(time.Second)), apikeytest.NewKey("usr_2_a", "usr_2", t0)
	if _, err := db.Collection("api_keys").InsertMany(ctx, []any{late, early}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("api_key_revocations").InsertOne(ctx, bson.D{{Key: "_id", Value: "usr_2_a"}, {Key: "revoked_at", Value: t0}}); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, db)
	if got := keyIDs(t, s, "usr_1"); !slices.Equal(got, full) {
		t.Errorf("usr_1's keys after the backfill = %d keys, want the %d seeded", len(got), len(full))
	}
	list, err := s.ListAPIKeys(ctx, "usr_2")
	conformance.MustOK(t, "list usr_2", err)
	if len(list) != 2 || list[0].ID != "usr_2_a" || !list[0].Revoked || list[1].ID != "usr_2_b" || list[1].Revoked {
		t.Errorf("usr_2's keys after the backfill = %+v, want usr_2_a (revoked), usr_2_b", list)
	}
	conformance.MustErr(t, "a key past the cap of backfilled keys",
		s.CreateAPIKey(ctx, apikeytest.NewKey("usr_1_over", "usr_1", t0)), apikey.ErrTooManyKeys)

	// Opened again (a restart): nothing entered twice.
	again := newStore(t, db)
	if got := keyIDs(t, again, "usr_2"); !slices.Equal(got, []string{"usr_2_a", "usr_2_b"}) {
		t.Errorf("usr_2's keys after a second start = %v", got)
	}
}

// Erasing a user removes its keys, their revocations and its key set, and no one else's.
func TestShouldEraseAUsersKeysAndKeySet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	s := newStore(t, db)
	t0 := conformance.Now()
	// usr_1 and usr_10: a prefix of one id must not select the other's records.
	for _, k := range []apikey.Key{apikeytest.NewKey("key_1", "usr_1", t0), apikeytest.NewKey("key_2", "usr_1", t0.Add(time.Second)),
		apikeytest.NewKey("key_10", "usr_10", t0)} {
		conformance.MustOK(t, "create "+k.ID, s.CreateAPIKey(ctx, k))
	}
	_, err := s.RevokeAPIKey(ctx, "key_1", t0)
	conformance.MustOK(t, "revoke", err)

	conformance.MustOK(t, "erase", s.EraseUser(ctx, "usr_1"))
	conformance.MustOK(t, "erase again", s.EraseUser(ctx, "usr_1"))
	if got := keyIDs(t, s, "usr_1"); len(got) != 0 {
		t.Errorf("usr_1's keys after the erase = %v", got)
	}
	for _, coll := range []string{"api_keys", "api_key_sets", "api_key_set_heads"} {
		n, err := db.Collection(coll).CountDocuments(ctx, bson.D{{Key: "user_id", Value: "usr_1"}})
		if err != nil || n != 0 {
			t.Errorf("%s: %d documents of usr_1 after the erase (%v)", coll, n, err)
		}
	}
	_, err = s.GetAPIKey(ctx, "key_1")
	conformance.MustErr(t, "get an erased key", err, storeerr.ErrNotFound)
	if got := keyIDs(t, s, "usr_10"); !slices.Equal(got, []string{"key_10"}) {
		t.Errorf("usr_10's keys after usr_1's erase = %v", got)
	}
	conformance.MustOK(t, "a new key of the erased user", s.CreateAPIKey(ctx, apikeytest.NewKey("key_3", "usr_1", t0)))
	if got := keyIDs(t, s, "usr_1"); !slices.Equal(got, []string{"key_3"}) {
		t.Errorf("usr_1's keys after a new create = %v, want key_3 only", got)
	}
}

// commands records what a client asks the server while recording is on: each command's name
// and the filters it selects documents by.
type commands struct {
	mu        sync.Mutex
	recording bool
	seen      []string // "<command> <filter>"
	filters   []bson.Raw
}

func (c *commands) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.recording {
			return
		}
		var filters []bson.Raw
		switch e.CommandName {
		case "find":
			filters = append(filters, e.Command.Lookup("filter").Document())
		case "update", "delete":
			list, field := "updates", "q"
			if e.CommandName == "delete" {
				list = "deletes"
			}
			vals, _ := e.Command.Lookup(list).Array().Values()
			for _, v := range vals {
				filters = append(filters, v.Document().Lookup(field).Document())
			}
		case "insert":
			// Selects nothing.
		default:
			filters = append(filters, nil) // any other command is a finding of its own
		}
		for _, f := range filters {
			c.seen = append(c.seen, e.CommandName+" "+f.String())
			c.filters = append(c.filters, f)
		}
	}}
}

func (c *commands) record(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recording = on
	if on {
		c.seen, c.filters = nil, nil
	}
}

// onlyIDs fails t unless every recorded filter selects by _id alone: an equality, or on a server
// that answers $in without a scan (MongoDB), an $in.
func (c *commands) onlyIDs(t *testing.T, what string, inAllowed bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) == 0 {
		t.Errorf("%s: no command recorded", what)
	}
	for i, f := range c.filters {
		elems, err := f.Elements()
		ok := err == nil && len(elems) == 1 && elems[0].Key() == "_id"
		if ok {
			v := elems[0].Value()
			_, isString := v.StringValueOK()
			in, isDoc := v.DocumentOK()
			ok = isString || (inAllowed && isDoc && in.Lookup("$in").Type == bson.TypeArray)
		}
		if !ok {
			t.Errorf("%s: %s is not an _id look-up", what, c.seen[i])
		}
	}
}

// With many other users' keys stored, listing a user's keys and creating one (below the cap and
// at it) select documents by _id only: on FerretDB, a look-up each, never a scan.
func TestShouldListAndCreateKeysWithOnlyIDLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var cmds commands
	db := mongotest.MonitoredDatabase(t, cmds.monitor())
	t0 := conformance.Now()
	for u := range 20 {
		seedKeys(t, db, fmt.Sprintf("usr_other%02d", u), 5, t0)
	}
	full := seedKeys(t, db, "usr_full", apikey.MaxPerUser, t0)
	s := newStore(t, db)
	inAllowed := !mongox.PushesDownOnlyIDs(ctx, db)
	for i := range 5 {
		conformance.MustOK(t, "create", s.CreateAPIKey(ctx, apikeytest.NewKey(fmt.Sprintf("usr_1_k%d", i), "usr_1", t0.Add(time.Duration(i)*time.Second))))
	}
	for _, id := range []string{"usr_1_k1", "usr_1_k3", full[7]} {
		_, err := s.RevokeAPIKey(ctx, id, t0)
		conformance.MustOK(t, "revoke", err)
	}

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"listing a user's keys", func() error {
			list, err := s.ListAPIKeys(ctx, "usr_1")
			if err == nil && (len(list) != 5 || !list[1].Revoked || !list[3].Revoked || list[0].Revoked) {
				err = fmt.Errorf("listed %+v", list)
			}
			return err
		}},
		{"listing a user's full set", func() error {
			list, err := s.ListAPIKeys(ctx, "usr_full")
			if err == nil && len(list) != apikey.MaxPerUser {
				err = fmt.Errorf("listed %d keys", len(list))
			}
			return err
		}},
		{"creating a key below the cap", func() error {
			return s.CreateAPIKey(ctx, apikeytest.NewKey("usr_1_k5", "usr_1", t0.Add(time.Minute)))
		}},
		{"creating a key at the cap, in the slot of a revoked one", func() error {
			return s.CreateAPIKey(ctx, apikeytest.NewKey("usr_full_new", "usr_full", t0.Add(time.Minute)))
		}},
		{"creating a key past the cap", func() error {
			err := s.CreateAPIKey(ctx, apikeytest.NewKey("usr_full_over", "usr_full", t0.Add(time.Minute)))
			if errors.Is(err, apikey.ErrTooManyKeys) {
				return nil
			}
			return fmt.Errorf("created past the cap: %v", err)
		}},
	} {
		cmds.record(true)
		err := tc.run()
		cmds.record(false)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cmds.onlyIDs(t, tc.name, inAllowed)
	}
}

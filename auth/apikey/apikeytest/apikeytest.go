// Package apikeytest is the conformance suite of apikey.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package apikeytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) apikey.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s apikey.Store)
	}{
		{"ShouldCreateGetAndListAPIKeys", testAPIKeys},
		{"ShouldRevokeAnAPIKeyOnceAndNeverLoseTheRevocation", testRevokeAPIKey},
		{"ShouldRecordAnAPIKeysLastUse", testTouchAPIKey},
		{"ShouldListOnlyTheUsersKeysOldestFirstAmongOtherUsersKeys", testListAmongOthers},
		{"ShouldCountARetriedCreateOnce", testRetriedCreate},
		{"ShouldRefuseAKeyPastTheCapAndFreeASlotWhenOneIsRevoked", testCapFreedByRevoke},
		{"ShouldFreeASlotUnderTheCapWhenAKeyExpires", testCapFreedByExpiry},
		{"ShouldNeverPassTheCapWithConcurrentCreates", testCapUnderConcurrency},
		{"ShouldDropTheOldestRevokedOrExpiredKeysPastTwiceTheCap", testBoundedListing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

func NewKey(id, user string, at time.Time) apikey.Key {
	return apikey.Key{ID: id, UserID: user, OrgID: "acme", Name: "ci " + id, SecretHash: "hash-" + id,
		Permissions: []string{"projects:read"}, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
}

func testAPIKeys(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	a, b, c := NewKey("key_a", "usr_1", t0), NewKey("key_b", "usr_1", t0.Add(time.Second)), NewKey("key_c", "usr_2", t0)
	for _, k := range []apikey.Key{a, b, c} {
		conformance.MustOK(t, "create "+k.ID, s.CreateAPIKey(ctx, k))
	}
	conformance.MustErr(t, "a second key with the same id", s.CreateAPIKey(ctx, NewKey("key_a", "usr_3", t0)), storeerr.ErrAlreadyExists)
	if list, err := s.ListAPIKeys(ctx, "usr_3"); err != nil || len(list) != 0 {
		t.Errorf("usr_3's keys after a refused create = %+v, %v; want none (key_a is usr_1's)", list, err)
	}
	got, err := s.GetAPIKey(ctx, "key_a")
	conformance.MustOK(t, "get", err)
	if got.UserID != "usr_1" || got.SecretHash != "hash-key_a" || !slices.Equal(got.Permissions, a.Permissions) || got.Revoked {
		t.Errorf("key = %+v, want %+v", got, a)
	}
	conformance.MustTime(t, "expires_at", got.ExpiresAt, a.ExpiresAt)
	_, err = s.GetAPIKey(ctx, "key_nope")
	conformance.MustErr(t, "get unknown", err, storeerr.ErrNotFound)
	list, err := s.ListAPIKeys(ctx, "usr_1")
	conformance.MustOK(t, "list", err)
	if len(list) != 2 || list[0].ID != "key_a" || list[1].ID != "key_b" {
		t.Errorf("usr_1's keys = %+v, want key_a, key_b", list)
	}
}

func testRevokeAPIKey(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	conformance.MustOK(t, "create", s.CreateAPIKey(ctx, NewKey("key_a", "usr_1", conformance.Now())))
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 { // touches race the revocations: none may undo one
				_ = s.TouchAPIKey(ctx, "key_a", conformance.Now())
				return
			}
			done, err := s.RevokeAPIKey(ctx, "key_a", conformance.Now())
			if err != nil {
				t.Errorf("revoke: %v", err)
			}
			if done {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d concurrent revocations reported the revoke, want exactly 1", wins.Load())
	}
	got, err := s.GetAPIKey(ctx, "key_a")
	conformance.MustOK(t, "get", err)
	if !got.Revoked || got.RevokedAt.IsZero() {
		t.Errorf("key after revocation = %+v", got)
	}
	list, err := s.ListAPIKeys(ctx, "usr_1")
	conformance.MustOK(t, "list", err)
	if len(list) != 1 || !list[0].Revoked {
		t.Errorf("listed key not revoked: %+v", list)
	}
}

func testTouchAPIKey(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	conformance.MustOK(t, "create", s.CreateAPIKey(ctx, NewKey("key_a", "usr_1", conformance.Now())))
	used := conformance.Now().Add(time.Minute)
	conformance.MustOK(t, "touch", s.TouchAPIKey(ctx, "key_a", used))
	got, err := s.GetAPIKey(ctx, "key_a")
	conformance.MustOK(t, "get", err)
	conformance.MustTime(t, "last_used_at", got.LastUsedAt, used)
	conformance.MustErr(t, "touch unknown", s.TouchAPIKey(ctx, "key_nope", used), storeerr.ErrNotFound)
}

// createKeys creates n keys of user, created at and expiring at expires (zero: never), with ids
// <user>_<prefix><i>, and returns them.
func createKeys(t *testing.T, s apikey.Store, user, prefix string, n int, at, expires time.Time) []apikey.Key {
	t.Helper()
	keys := make([]apikey.Key, n)
	for i := range n {
		k := NewKey(fmt.Sprintf("%s_%s%03d", user, prefix, i), user, at)
		k.ExpiresAt = expires
		conformance.MustOK(t, "create "+k.ID, s.CreateAPIKey(context.Background(), k))
		keys[i] = k
	}
	return keys
}

// mustList returns user's keys and fails t unless their ids are want, in order.
func mustList(t *testing.T, s apikey.Store, user string, want ...string) []apikey.Key {
	t.Helper()
	list, err := s.ListAPIKeys(context.Background(), user)
	conformance.MustOK(t, "list "+user, err)
	got := make([]string, len(list))
	for i, k := range list {
		got[i] = k.ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s's keys = %v, want %v", user, got, want)
	}
	return list
}

func live(keys []apikey.Key, now time.Time) int {
	n := 0
	for _, k := range keys {
		if k.Active(now) {
			n++
		}
	}
	return n
}

func ids(keys []apikey.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

func testListAmongOthers(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	// usr_1 and usr_10: a prefix of one id must not select the other's keys. Created
	// interleaved, and not in the order of their creation times.
	for i, k := range []apikey.Key{
		NewKey("key_3", "usr_1", t0.Add(3*time.Second)), NewKey("key_x", "usr_10", t0),
		NewKey("key_1", "usr_1", t0.Add(time.Second)), NewKey("key_y", "usr/1", t0),
		NewKey("key_2", "usr_1", t0.Add(2*time.Second)),
	} {
		conformance.MustOK(t, fmt.Sprint("create ", i), s.CreateAPIKey(ctx, k))
	}
	_, err := s.RevokeAPIKey(ctx, "key_2", t0)
	conformance.MustOK(t, "revoke", err)
	list := mustList(t, s, "usr_1", "key_1", "key_2", "key_3")
	if list[0].Revoked || !list[1].Revoked || list[2].Revoked {
		t.Errorf("revoked = %v %v %v, want only key_2", list[0].Revoked, list[1].Revoked, list[2].Revoked)
	}
	mustList(t, s, "usr_10", "key_x")
	mustList(t, s, "usr/1", "key_y")
	mustList(t, s, "usr_nobody")
}

func testRetriedCreate(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	k := NewKey("key_a", "usr_1", conformance.Now())
	conformance.MustOK(t, "create", s.CreateAPIKey(ctx, k))
	conformance.MustErr(t, "create again", s.CreateAPIKey(ctx, k), storeerr.ErrAlreadyExists)
	mustList(t, s, "usr_1", "key_a")
}

func testCapFreedByRevoke(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	keys := createKeys(t, s, "usr_1", "k", apikey.MaxPerUser, t0, t0.Add(time.Hour))
	createKeys(t, s, "usr_2", "k", 1, t0, time.Time{}) // another user's keys do not count
	over := NewKey("usr_1_over", "usr_1", t0)
	conformance.MustErr(t, "a key past the cap", s.CreateAPIKey(ctx, over), apikey.ErrTooManyKeys)
	if _, err := s.GetAPIKey(ctx, over.ID); !errors.Is(err, storeerr.ErrNotFound) {
		t.Errorf("the refused key was stored: %v", err)
	}
	_, err := s.RevokeAPIKey(ctx, keys[10].ID, t0)
	conformance.MustOK(t, "revoke", err)
	conformance.MustOK(t, "a key in the slot the revocation freed", s.CreateAPIKey(ctx, over))
	conformance.MustErr(t, "a key past the cap again", s.CreateAPIKey(ctx, NewKey("usr_1_over2", "usr_1", t0)), apikey.ErrTooManyKeys)
	list := mustList(t, s, "usr_1", append(ids(keys), over.ID)...)
	if n := live(list, t0); n != apikey.MaxPerUser {
		t.Errorf("%d live keys, want %d", n, apikey.MaxPerUser)
	}
}

func testCapFreedByExpiry(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	keys := createKeys(t, s, "usr_1", "k", apikey.MaxPerUser-1, t0, time.Time{})
	soon := NewKey("usr_1_soon", "usr_1", t0)
	soon.ExpiresAt = t0.Add(time.Minute)
	conformance.MustOK(t, "create the key that expires", s.CreateAPIKey(ctx, soon))
	conformance.MustErr(t, "a key past the cap before the expiry", s.CreateAPIKey(ctx, NewKey("usr_1_early", "usr_1", t0.Add(59*time.Second))), apikey.ErrTooManyKeys)
	later := NewKey("usr_1_later", "usr_1", t0.Add(time.Minute))
	conformance.MustOK(t, "a key in the slot the expiry freed", s.CreateAPIKey(ctx, later))
	mustList(t, s, "usr_1", append(ids(keys), soon.ID, later.ID)...)
}

func testCapUnderConcurrency(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	createKeys(t, s, "usr_1", "k", apikey.MaxPerUser-1, t0, time.Time{})
	// Fewer racers than the suite's other races: each one refused reads the revocations of the
	// whole set, and ten are as many as the cap needs to be raced.
	const racers = 10
	var made, refused atomic.Int32
	conformance.Race(racers, func(i int) {
		err := s.CreateAPIKey(ctx, NewKey(fmt.Sprintf("usr_1_race%02d", i), "usr_1", t0))
		switch {
		case err == nil:
			made.Add(1)
		case errors.Is(err, apikey.ErrTooManyKeys):
			refused.Add(1)
		default:
			t.Errorf("create %d: %v", i, err)
		}
	})
	if made.Load() != 1 || refused.Load() != racers-1 {
		t.Errorf("%d concurrent creates at %d live keys: %d made, %d refused; want 1 made", racers,
			apikey.MaxPerUser-1, made.Load(), refused.Load())
	}
	list, err := s.ListAPIKeys(ctx, "usr_1")
	conformance.MustOK(t, "list", err)
	if n := live(list, t0); n != apikey.MaxPerUser || len(list) != apikey.MaxPerUser {
		t.Errorf("%d keys listed, %d live; want %d", len(list), n, apikey.MaxPerUser)
	}
}

func testBoundedListing(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	t1 := t0.Add(time.Hour)
	// Twice the cap: the first half expired by t1, the second live then but for one revoked.
	old := createKeys(t, s, "usr_1", "old", apikey.MaxPerUser, t0, t0.Add(time.Minute))
	recent := createKeys(t, s, "usr_1", "new", apikey.MaxPerUser, t1, time.Time{})
	_, err := s.RevokeAPIKey(ctx, recent[0].ID, t1)
	conformance.MustOK(t, "revoke", err)
	mustList(t, s, "usr_1", append(ids(old), ids(recent)...)...)

	// One more: the oldest expired key drops off the listing, and nothing else.
	more := NewKey("usr_1_more", "usr_1", t1.Add(time.Second))
	conformance.MustOK(t, "create past twice the cap", s.CreateAPIKey(ctx, more))
	want := append(append(ids(old[1:]), ids(recent)...), more.ID)
	list := mustList(t, s, "usr_1", want...)
	if n := live(list, t1); n != apikey.MaxPerUser {
		t.Errorf("%d live keys, want %d", n, apikey.MaxPerUser)
	}
	// The dropped key's record stays, and authenticates nothing (it expired).
	if k, err := s.GetAPIKey(ctx, old[0].ID); err != nil || k.Active(t1) {
		t.Errorf("the dropped key = %+v, %v; want it stored and inactive", k, err)
	}
}

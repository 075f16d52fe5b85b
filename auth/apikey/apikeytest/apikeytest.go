// Package apikeytest is the conformance suite of apikey.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package apikeytest

import (
	"context"
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

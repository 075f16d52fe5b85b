// Package tokentest is the conformance suite of token.KeyStore, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package tokentest

import (
	"context"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/conformance"
)

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) token.KeyStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s token.KeyStore)
	}{
		{"ShouldCreateAndListSigningKeysOldestFirst", testSigningKeys},
		{"ShouldRejectDuplicateSigningKeyID", testDuplicateSigningKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

func newSigningKey(id string, created time.Time) token.SigningKey {
	return token.SigningKey{ID: id, Alg: token.AlgEdDSA, PublicDER: []byte("public " + id),
		PrivateSealed: []byte{0, 1, 2, 0xff, byte(len(id))}, CreatedAt: created}
}

func testSigningKeys(t *testing.T, s token.KeyStore) {
	ctx := context.Background()
	keys, err := s.ListSigningKeys(ctx)
	conformance.MustOK(t, "list empty", err)
	if len(keys) != 0 {
		t.Fatalf("empty store lists keys: %+v", keys)
	}
	t0 := conformance.Now()
	want := []token.SigningKey{newSigningKey("k_a", t0), newSigningKey("k_b", t0.Add(time.Hour)), newSigningKey("k_c", t0.Add(2*time.Hour))}
	want[1].Alg = token.AlgES256
	for _, i := range []int{2, 0, 1} { // out of order: the store must sort by creation
		conformance.MustOK(t, "create key", s.CreateSigningKey(ctx, want[i]))
	}
	keys, err = s.ListSigningKeys(ctx)
	conformance.MustOK(t, "list", err)
	if len(keys) != len(want) {
		t.Fatalf("listed %d keys, want %d", len(keys), len(want))
	}
	for i, k := range keys {
		w := want[i]
		if k.ID != w.ID || k.Alg != w.Alg || string(k.PublicDER) != string(w.PublicDER) ||
			string(k.PrivateSealed) != string(w.PrivateSealed) {
			t.Errorf("key %d = %+v, want %+v (oldest first)", i, k, w)
		}
		conformance.MustTime(t, "created_at", k.CreatedAt, w.CreatedAt)
	}
}

func testDuplicateSigningKey(t *testing.T, s token.KeyStore) {
	ctx := context.Background()
	conformance.MustOK(t, "create", s.CreateSigningKey(ctx, newSigningKey("k_a", conformance.Now())))
	err := s.CreateSigningKey(ctx, newSigningKey("k_a", conformance.Now()))
	conformance.MustErr(t, "second key with the same id", err, storeerr.ErrAlreadyExists)
}

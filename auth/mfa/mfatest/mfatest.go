// Package mfatest is the conformance suite of mfa.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package mfatest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) mfa.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s mfa.Store)
	}{
		{"ShouldPutGetAndDeleteASecondFactor", testMFA},
		{"ShouldAcceptEachTOTPStepOnceUnderConcurrency", testClaimTOTPStep},
		{"ShouldSpendARecoveryCodeOnceUnderConcurrency", testSpendRecoveryCode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

func testMFA(t *testing.T, s mfa.Store) {
	ctx := context.Background()
	_, err := s.GetMFA(ctx, "usr_1")
	conformance.MustErr(t, "get before enrollment", err, storeerr.ErrNotFound)
	m := mfa.Factor{UserID: "usr_1", SecretSealed: []byte("sealed"), CreatedAt: conformance.Now()}
	conformance.MustOK(t, "put pending", s.PutMFA(ctx, m))
	m.Enabled, m.RecoveryHashes, m.EnabledAt = true, []string{"h1", "h2"}, conformance.Now()
	conformance.MustOK(t, "replace with enabled", s.PutMFA(ctx, m))
	got, err := s.GetMFA(ctx, "usr_1")
	conformance.MustOK(t, "get", err)
	if !got.Enabled || !slices.Equal(got.RecoveryHashes, []string{"h1", "h2"}) || string(got.SecretSealed) != "sealed" {
		t.Errorf("mfa = %+v", got)
	}
	conformance.MustOK(t, "delete", s.DeleteMFA(ctx, "usr_1"))
	conformance.MustErr(t, "delete again", s.DeleteMFA(ctx, "usr_1"), storeerr.ErrNotFound)
}

func testClaimTOTPStep(t *testing.T, s mfa.Store) {
	ctx := context.Background()
	last, err := s.LastTOTPStep(ctx, "usr_1")
	conformance.MustOK(t, "last step before any", err)
	if last != 0 {
		t.Errorf("last step = %d, want 0", last)
	}
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.ClaimTOTPStep(ctx, "usr_1", 1000, conformance.Now())
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storeerr.ErrAlreadyExists):
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent claims of one step won, want exactly 1", wins.Load(), n)
	}
	conformance.MustOK(t, "a later step", s.ClaimTOTPStep(ctx, "usr_1", 1001, conformance.Now()))
	conformance.MustOK(t, "another user's same step", s.ClaimTOTPStep(ctx, "usr_2", 1001, conformance.Now()))
	if last, err = s.LastTOTPStep(ctx, "usr_1"); err != nil || last != 1001 {
		t.Errorf("last step = %d, %v; want 1001", last, err)
	}
}

func testSpendRecoveryCode(t *testing.T, s mfa.Store) {
	ctx := context.Background()
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if s.SpendRecoveryCode(ctx, "usr_1", "hash", conformance.Now()) == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent spends of one recovery code won, want exactly 1", wins.Load(), n)
	}
	conformance.MustErr(t, "spend again", s.SpendRecoveryCode(ctx, "usr_1", "hash", conformance.Now()), storeerr.ErrAlreadyExists)
	conformance.MustOK(t, "another user's code with the same hash", s.SpendRecoveryCode(ctx, "usr_2", "hash", conformance.Now()))
}

// Package oauthtest is the conformance suite of oauth.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package oauthtest

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) oauth.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s oauth.Store)
	}{
		{"ShouldCreateAndGetAClientWithEveryField", testClientRoundTrip},
		{"ShouldRefuseASecondClientWithTheSameIDAndKeepTheFirst", testDuplicateClient},
		{"ShouldAnswerNotFoundForAnUnknownClient", testUnknownClient},
		{"ShouldForgetADeletedClient", testDeleteClient},
		{"ShouldAnswerNotFoundDeletingAnUnknownClient", testDeleteUnknownClient},
		{"ShouldCreateAndGetACodeWithEveryField", testCodeRoundTrip},
		{"ShouldRefuseASecondCodeWithTheSameHashAndKeepTheFirst", testDuplicateCode},
		{"ShouldAnswerNotFoundForAnUnknownCode", testUnknownCode},
		{"ShouldStillReturnAnExpiredCode", testExpiredCode},
		{"ShouldRedeemACodeOnceAndRefuseTheSecondRedemption", testRedeemOnce},
		{"ShouldLetExactlyOneOfConcurrentRedemptionsWin", testConcurrentRedemptions},
		{"ShouldRedeemEachCodeOnItsOwn", testRedemptionsAreIndependent},
		{"ShouldKeepACodeReadableAfterItsRedemption", testCodeAfterRedemption},
		{"ShouldCreateAndGetABrowserSessionWithEveryField", testBrowserSessionRoundTrip},
		{"ShouldRefuseASecondBrowserSessionWithTheSameHashAndKeepTheFirst", testDuplicateBrowserSession},
		{"ShouldForgetAnEndedBrowserSessionOnly", testEndBrowserSession},
		{"ShouldKeepOneConsentPerUserAndClientTheLatestAnswerWinning", testConsents},
		{"ShouldClearAClientsUnusedMarkAndNothingElse", testMarkClientUsed},
		{"ShouldSweepWhatExpiredOrStayedUnusedAndKeepTheRest", testSweep},
		{"ShouldKeepWhatIsLiveWhenSweepingDuringWrites", testSweepWhileInUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// NewClient returns a confidential client with every field set.
func NewClient(id string, at time.Time) oauth.Client {
	return oauth.Client{ID: id, Name: "Client " + id,
		RedirectURIs: []string{"https://app.example/callback", "http://127.0.0.1/callback"},
		GrantTypes:   []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken},
		AuthMethod:   oauth.AuthSecretBasic, SecretHash: "secret-hash-" + id, ApplicationType: "web",
		Scope: "projects:read projects:write", ClientURI: "https://app.example", Source: oauth.SourceDynamic,
		CreatedAt: at}
}

// NewCode returns a code of client with every field set, issued at at for a minute.
func NewCode(hash, client string, at time.Time) oauth.Code {
	return oauth.Code{Hash: hash, ClientID: client, RedirectURI: "http://127.0.0.1:53682/callback",
		Challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Resource: "https://mcp.example/mcp",
		Scopes: []string{"projects:read", "audit:read"}, UserID: "usr_1", OrgID: "acme",
		AuthTime: at.Add(-time.Minute), MFA: true, CreatedAt: at, ExpiresAt: at.Add(time.Minute), GrantUntil: at.Add(24 * time.Hour)}
}

// mustClient fails t unless got is want, times within a millisecond.
func mustClient(t *testing.T, what string, got, want oauth.Client) {
	t.Helper()
	conformance.MustTime(t, what+" created_at", got.CreatedAt, want.CreatedAt)
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// mustCode fails t unless got is want, times within a millisecond.
func mustCode(t *testing.T, what string, got, want oauth.Code) {
	t.Helper()
	conformance.MustTime(t, what+" auth_time", got.AuthTime, want.AuthTime)
	conformance.MustTime(t, what+" created_at", got.CreatedAt, want.CreatedAt)
	conformance.MustTime(t, what+" expires_at", got.ExpiresAt, want.ExpiresAt)
	conformance.MustTime(t, what+" grant_until", got.GrantUntil, want.GrantUntil)
	got.AuthTime, got.CreatedAt, got.ExpiresAt, got.GrantUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.AuthTime, want.CreatedAt, want.ExpiresAt, want.GrantUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testClientRoundTrip(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	confidential := NewClient("cl_confidential", t0)
	confidential.Unused = true
	// A public client registered by its metadata document: the URL is its id, and the fields
	// a public client leaves empty come back empty.
	public := oauth.Client{ID: "https://client.example/oauth/metadata.json", Name: "Desktop app",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{oauth.GrantAuthorizationCode},
		AuthMethod: oauth.AuthNone, ApplicationType: "native", Source: oauth.SourceMetadata, CreatedAt: t0.Add(time.Second)}
	for _, c := range []oauth.Client{confidential, public} {
		conformance.MustOK(t, "create "+c.ID, s.CreateClient(ctx, c))
	}
	for _, want := range []oauth.Client{confidential, public} {
		got, err := s.GetClient(ctx, want.ID)
		conformance.MustOK(t, "get "+want.ID, err)
		mustClient(t, want.ID, got, want)
	}
}

func testDuplicateClient(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	first := NewClient("cl_1", t0)
	conformance.MustOK(t, "create", s.CreateClient(ctx, first))
	second := NewClient("cl_1", t0.Add(time.Hour))
	second.Name, second.RedirectURIs, second.SecretHash = "Impostor", []string{"https://evil.example/cb"}, "other-hash"
	conformance.MustErr(t, "a second client with the same id", s.CreateClient(ctx, second), storeerr.ErrAlreadyExists)
	got, err := s.GetClient(ctx, "cl_1")
	conformance.MustOK(t, "get", err)
	mustClient(t, "the client after a refused create", got, first)
}

func testUnknownClient(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	conformance.MustOK(t, "create", s.CreateClient(ctx, NewClient("cl_1", conformance.Now())))
	// A prefix and an extension of a stored id are other ids.
	for _, id := range []string{"cl_nope", "cl_", "cl_10"} {
		_, err := s.GetClient(ctx, id)
		conformance.MustErr(t, "get "+id, err, storeerr.ErrNotFound)
	}
}

func testDeleteClient(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	kept := NewClient("cl_2", t0)
	for _, c := range []oauth.Client{NewClient("cl_1", t0), kept} {
		conformance.MustOK(t, "create "+c.ID, s.CreateClient(ctx, c))
	}
	conformance.MustOK(t, "delete", s.DeleteClient(ctx, "cl_1"))
	_, err := s.GetClient(ctx, "cl_1")
	conformance.MustErr(t, "get a deleted client", err, storeerr.ErrNotFound)
	conformance.MustErr(t, "delete again", s.DeleteClient(ctx, "cl_1"), storeerr.ErrNotFound)
	got, err := s.GetClient(ctx, "cl_2")
	conformance.MustOK(t, "get the other client", err)
	mustClient(t, "the other client", got, kept)
	// Its id is free again: a client registered anew under it is a new client.
	again := NewClient("cl_1", t0.Add(time.Minute))
	again.Name = "Registered again"
	conformance.MustOK(t, "create under the deleted id", s.CreateClient(ctx, again))
	got, err = s.GetClient(ctx, "cl_1")
	conformance.MustOK(t, "get the new client", err)
	mustClient(t, "the new client", got, again)
}

func testDeleteUnknownClient(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	conformance.MustErr(t, "delete in an empty store", s.DeleteClient(ctx, "cl_nope"), storeerr.ErrNotFound)
	conformance.MustOK(t, "create", s.CreateClient(ctx, NewClient("cl_1", conformance.Now())))
	conformance.MustErr(t, "delete unknown", s.DeleteClient(ctx, "cl_nope"), storeerr.ErrNotFound)
	_, err := s.GetClient(ctx, "cl_1")
	conformance.MustOK(t, "get the stored client", err)
}

func testCodeRoundTrip(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	withMFA := NewCode("hash_a", "cl_1", t0)
	// Without a second factor, and with a single scope: false and short lists come back as given.
	plain := NewCode("hash_b", "cl_2", t0.Add(time.Second))
	plain.MFA, plain.Scopes, plain.UserID = false, []string{"projects:read"}, "usr_2"
	for _, c := range []oauth.Code{withMFA, plain} {
		conformance.MustOK(t, "create "+c.Hash, s.CreateCode(ctx, c))
	}
	for _, want := range []oauth.Code{withMFA, plain} {
		got, err := s.GetCode(ctx, want.Hash)
		conformance.MustOK(t, "get "+want.Hash, err)
		mustCode(t, want.Hash, got, want)
	}
}

func testDuplicateCode(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	first := NewCode("hash_a", "cl_1", t0)
	conformance.MustOK(t, "create", s.CreateCode(ctx, first))
	second := NewCode("hash_a", "cl_2", t0.Add(time.Second))
	second.UserID, second.RedirectURI = "usr_2", "https://evil.example/cb"
	conformance.MustErr(t, "a second code with the same hash", s.CreateCode(ctx, second), storeerr.ErrAlreadyExists)
	got, err := s.GetCode(ctx, "hash_a")
	conformance.MustOK(t, "get", err)
	mustCode(t, "the code after a refused create", got, first)
}

func testUnknownCode(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	conformance.MustOK(t, "create", s.CreateCode(ctx, NewCode("hash_a", "cl_1", conformance.Now())))
	for _, hash := range []string{"hash_nope", "hash_", "hash_ab"} {
		_, err := s.GetCode(ctx, hash)
		conformance.MustErr(t, "get "+hash, err, storeerr.ErrNotFound)
	}
}

func testExpiredCode(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	// Issued an hour ago for a minute: the store keeps it and the caller tells it is expired.
	old := NewCode("hash_old", "cl_1", conformance.Now().Add(-time.Hour))
	conformance.MustOK(t, "create", s.CreateCode(ctx, old))
	got, err := s.GetCode(ctx, "hash_old")
	conformance.MustOK(t, "get an expired code", err)
	mustCode(t, "the expired code", got, old)
}

func testRedeemOnce(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	conformance.MustOK(t, "create", s.CreateCode(ctx, NewCode("hash_a", "cl_1", t0)))
	conformance.MustOK(t, "redeem", s.RedeemCode(ctx, "hash_a", t0.Add(time.Second)))
	conformance.MustErr(t, "redeem again", s.RedeemCode(ctx, "hash_a", t0.Add(2*time.Second)), storeerr.ErrAlreadyExists)
	conformance.MustErr(t, "redeem a third time", s.RedeemCode(ctx, "hash_a", t0.Add(3*time.Second)), storeerr.ErrAlreadyExists)
}

func testConcurrentRedemptions(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	conformance.MustOK(t, "create", s.CreateCode(ctx, NewCode("hash_a", "cl_1", t0)))
	var won, refused atomic.Int32
	conformance.Race(conformance.Concurrency, func(i int) {
		err := s.RedeemCode(ctx, "hash_a", t0.Add(time.Duration(i)*time.Millisecond))
		switch {
		case err == nil:
			won.Add(1)
		case errors.Is(err, storeerr.ErrAlreadyExists):
			refused.Add(1)
		default:
			t.Errorf("redeem %d: %v", i, err)
		}
	})
	if won.Load() != 1 || refused.Load() != conformance.Concurrency-1 {
		t.Errorf("%d concurrent redemptions of one code: %d won, %d refused; want 1 and %d",
			conformance.Concurrency, won.Load(), refused.Load(), conformance.Concurrency-1)
	}
	conformance.MustErr(t, "redeem after the race", s.RedeemCode(ctx, "hash_a", t0.Add(time.Minute)), storeerr.ErrAlreadyExists)
}

func testRedemptionsAreIndependent(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	// hash_a is a prefix of hash_ab: one's redemption must not be taken for the other's.
	for _, hash := range []string{"hash_a", "hash_ab", "hash_b"} {
		conformance.MustOK(t, "create "+hash, s.CreateCode(ctx, NewCode(hash, "cl_1", t0)))
	}
	conformance.MustOK(t, "redeem hash_a", s.RedeemCode(ctx, "hash_a", t0))
	conformance.MustOK(t, "redeem hash_ab after hash_a", s.RedeemCode(ctx, "hash_ab", t0))
	conformance.MustErr(t, "redeem hash_ab again", s.RedeemCode(ctx, "hash_ab", t0), storeerr.ErrAlreadyExists)
	conformance.MustErr(t, "redeem hash_a again", s.RedeemCode(ctx, "hash_a", t0), storeerr.ErrAlreadyExists)
	conformance.MustOK(t, "redeem hash_b after the others", s.RedeemCode(ctx, "hash_b", t0))
}

func testCodeAfterRedemption(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	code := NewCode("hash_a", "cl_1", t0)
	conformance.MustOK(t, "create", s.CreateCode(ctx, code))
	conformance.MustOK(t, "redeem", s.RedeemCode(ctx, "hash_a", t0.Add(time.Second)))
	got, err := s.GetCode(ctx, "hash_a")
	conformance.MustOK(t, "get a redeemed code", err)
	mustCode(t, "the redeemed code", got, code)
}

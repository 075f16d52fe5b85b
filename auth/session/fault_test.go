package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// A store that has lost its database fails every call, and Sessions answers each one INTERNAL:
// never a session, a token or "not revoked" it could not read.
func TestShouldFailClosedWhenTheStoreIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, lose := mongotest.LosableDatabase(t)
	store, err := session.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.NewSessions(store, session.NewLocalRevocations(time.Now), time.Now, time.Hour, time.Minute)
	sess, refresh, err := sessions.Open(ctx, "usr_1", "acme", false, "test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	lose()

	storeCalls := map[string]error{
		"CreateSession":            second(store.CreateSession(ctx, session.Session{ID: "ses_x", UserID: "usr_1"})),
		"TouchSession":             store.TouchSession(ctx, sess.ID, time.Now(), time.Now()),
		"AddRefreshToken":          store.AddRefreshToken(ctx, session.RefreshToken{Hash: "h"}),
		"CompleteRotation":         store.CompleteRotation(ctx, "h"),
		"EraseUser":                store.EraseUser(ctx, "usr_1"),
		"ListSessionsRevokedSince": second(store.ListSessionsRevokedSince(ctx, time.Now())),
		"RevokeSession":            second(store.RevokeSession(ctx, sess.ID, time.Now(), "test")),
		"GetSession":               second(store.GetSession(ctx, sess.ID)),
		"ListUserSessions":         second(store.ListUserSessions(ctx, "usr_1")),
		"SpendRefreshToken":        second(store.SpendRefreshToken(ctx, "h", time.Now())),
		"NewMongoStore":            second(session.NewMongoStore(ctx, db)),
	}
	for call, err := range storeCalls {
		if err == nil || errors.Is(err, storeerr.ErrNotFound) || errors.Is(err, storeerr.ErrAlreadyExists) {
			t.Errorf("store %s without a database: %v, want the database's error", call, err)
		}
	}

	_, _, openErr := sessions.Open(ctx, "usr_1", "acme", true, "test", time.Time{})
	_, _, spendErr := sessions.Spend(ctx, refresh)
	_, rotateErr := sessions.Rotate(ctx, session.RefreshToken{Hash: "h"}, sess)
	_, revokeSpendErr := sessions.SpendForRevocation(ctx, refresh)
	_, revokeErr := sessions.Revoke(ctx, sess.ID, "test")
	_, activeErr := sessions.Active(ctx, "usr_1")
	for call, err := range map[string]error{
		"Open": openErr, "Spend": spendErr, "Rotate": rotateErr, "SpendForRevocation": revokeSpendErr,
		"Revoke": revokeErr, "Active": activeErr,
	} {
		if apierr.CodeOf(err) != apierr.Internal {
			t.Errorf("%s without a database: %v, want INTERNAL", call, err)
		}
	}
	if err := sessions.ReloadRevoked(ctx); err == nil {
		t.Error("reloading the revoked sessions without a database succeeded")
	}
	if err := sessions.Rotated(ctx, session.RefreshToken{Hash: "h"}); err == nil {
		t.Error("recording a rotation without a database succeeded")
	}
}

func second[T any](_ T, err error) error { return err }

// failingRevocations is a revocation set that cannot be reached.
type failingRevocations struct{}

func (failingRevocations) Revoke(context.Context, string, time.Duration) error {
	return errors.New("revocation set unreachable")
}
func (failingRevocations) IsRevoked(context.Context, string) (bool, error) {
	return false, errors.New("revocation set unreachable")
}

// A revocation the store recorded but the shared set did not get is still done (every instance
// refuses the session's refresh tokens) and says so; a set that cannot be asked is an error,
// never "not revoked".
func TestShouldSayWhenARevocationCouldNotBeShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := session.NewMongoStore(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.NewSessions(store, failingRevocations{}, time.Now, time.Hour, time.Minute)
	sess, _, err := sessions.Open(ctx, "usr_1", "acme", false, "test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	done, err := sessions.Revoke(ctx, sess.ID, "test")
	if !done || apierr.CodeOf(err) != apierr.Internal {
		t.Fatalf("revoke = %v, %v; want done and INTERNAL", done, err)
	}
	if got, err := sessions.Get(ctx, sess.ID); err != nil || !got.Revoked {
		t.Errorf("the store does not have the revocation: %+v, %v", got, err)
	}
	if revoked, err := sessions.IsRevoked(ctx, sess.ID); err == nil {
		t.Errorf("an unreachable revocation set answered %v without an error", revoked)
	}
	if err := sessions.ReloadRevoked(ctx); err == nil {
		t.Error("reloading revocations into an unreachable set succeeded")
	}
}

package session_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// A session that a newer one pushes past MaxPerUser is revoked in the store and in the
// revocation set at once, as any revocation is: its access tokens are refused from the next
// request on, not only once they expire. When the set cannot be told, the login says so.
func TestShouldRefuseASessionPushedOutByTheUsersNewerOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t, mongotest.Database(t))
	sessions := session.NewSessions(store, session.NewLocalRevocations(time.Now), time.Now, time.Hour, time.Minute)
	opened := make([]session.Session, session.MaxPerUser)
	for i := range opened {
		sess, _, err := sessions.Open(ctx, "usr_1", "acme", false, "test", time.Time{})
		if err != nil {
			t.Fatalf("open session %d: %v", i, err)
		}
		opened[i] = sess
	}
	if revoked, err := sessions.IsRevoked(ctx, opened[0].ID); err != nil || revoked {
		t.Fatalf("the oldest session at the bound: revoked %v, %v; want it working", revoked, err)
	}

	newest, _, err := sessions.Open(ctx, "usr_1", "acme", false, "test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		id      string
		revoked bool
	}{
		{"the oldest session is refused", opened[0].ID, true},
		{"the next oldest still works", opened[1].ID, false},
		{"the newest works", newest.ID, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if revoked, err := sessions.IsRevoked(ctx, tc.id); err != nil || revoked != tc.revoked {
				t.Errorf("access check of %s: revoked %v, %v; want %v", tc.id, revoked, err, tc.revoked)
			}
		})
	}
	got, err := sessions.Get(ctx, opened[0].ID)
	if err != nil || !got.Revoked || got.RevokeReason != session.ReasonSessionLimit {
		t.Errorf("the pushed out session in the store = %+v, %v; want it revoked (%s)", got, err, session.ReasonSessionLimit)
	}
	active, err := sessions.Active(ctx, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(active))
	for i, sess := range active {
		ids[i] = sess.ID
	}
	if len(ids) != session.MaxPerUser || slices.Contains(ids, opened[0].ID) || !slices.Contains(ids, newest.ID) {
		t.Errorf("%d active sessions (the pushed out one among them: %v); want the newest %d",
			len(ids), slices.Contains(ids, opened[0].ID), session.MaxPerUser)
	}

	// An instance whose revocation set is unreachable: the store still revokes, the login fails.
	unshared := session.NewSessions(store, failingRevocations{}, time.Now, time.Hour, time.Minute)
	if _, _, err := unshared.Open(ctx, "usr_1", "acme", false, "test", time.Time{}); apierr.CodeOf(err) != apierr.Internal {
		t.Errorf("a login that could not share the revocation it caused = %v, want INTERNAL", err)
	}
	if got, err := sessions.Get(ctx, opened[1].ID); err != nil || !got.Revoked {
		t.Errorf("the session that login pushed out = %+v, %v; want it revoked in the store", got, err)
	}
}

// Package sessiontest is the conformance suite of session.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) session.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s session.Store)
	}{
		{"ShouldCreateAndGetSessions", testCreateAndGetSession},
		{"ShouldReportUnknownSessionsAsNotFound", testUnknownSession},
		{"ShouldRejectDuplicateSessionID", testDuplicateSession},
		{"ShouldListEverySessionOfAUserOldestFirst", testListUserSessions},
		{"ShouldKeepTheNewestMaxPerUserSessionsAndRevokeTheOnesPushedOut", testSessionLimit},
		{"ShouldNeverLeaveAWorkingSessionOutOfTheListUnderConcurrentCreates", testSessionLimitConcurrent},
		{"ShouldNotLetATakenSessionIDReachAnotherUsersSession", testTakenSessionID},
		{"ShouldTouchALiveSession", testTouchSession},
		{"ShouldNotTouchARevokedOrUnknownSession", testTouchRevokedSession},
		{"ShouldRevokeASessionOnlyOnce", testRevokeSessionIdempotent},
		{"ShouldLetExactlyOneOfManyConcurrentRevocationsReportTheRevoke", testRevokeSessionConcurrent},
		{"ShouldNeverLoseARevocationToAConcurrentTouch", testRevokeWinsOverTouch},
		{"ShouldListSessionsRevokedSinceATime", testListSessionsRevokedSince},
		{"ShouldSpendARefreshTokenOnce", testSpendRefreshToken},
		{"ShouldReportAnUnknownRefreshTokenAsNotFound", testSpendUnknownRefreshToken},
		{"ShouldRejectDuplicateRefreshTokenHash", testDuplicateRefreshToken},
		{"ShouldTellWhenAndWhetherASpentTokenWasRotated", testCompleteRotation},
		{"ShouldLetExactlyOneOfManyConcurrentSpendsWin", testSpendRefreshTokenConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

func NewSession(id, userID string, created time.Time) session.Session {
	return session.Session{
		ID: id, UserID: userID, OrgID: "acme", Client: "test-client",
		CreatedAt: created, LastUsedAt: created, ExpiresAt: created.Add(24 * time.Hour),
	}
}

func createSessions(t *testing.T, s session.Store, sessions ...session.Session) {
	t.Helper()
	for _, sess := range sessions {
		_, err := s.CreateSession(context.Background(), sess)
		conformance.MustOK(t, "create session "+sess.ID, err)
	}
}

// fillSessions creates MaxPerUser sessions of userID, one a second from t0, and returns their
// ids, oldest first. None of them pushes another out.
func fillSessions(t *testing.T, s session.Store, userID string, t0 time.Time) []string {
	t.Helper()
	ids := make([]string, session.MaxPerUser)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s_ses_%03d", userID, i)
		evicted, err := s.CreateSession(context.Background(), NewSession(ids[i], userID, t0.Add(time.Duration(i)*time.Second)))
		conformance.MustOK(t, "create session "+ids[i], err)
		if len(evicted) > 0 {
			t.Fatalf("session %d of %d pushed out %v", i+1, session.MaxPerUser, evicted)
		}
	}
	return ids
}

func listedIDs(t *testing.T, s session.Store, userID string) []string {
	t.Helper()
	got, err := s.ListUserSessions(context.Background(), userID)
	conformance.MustOK(t, "list sessions of "+userID, err)
	ids := make([]string, len(got))
	for i, sess := range got {
		ids[i] = sess.ID
	}
	return ids
}

func checkSession(t *testing.T, got, want session.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.OrgID != want.OrgID ||
		got.RememberMe != want.RememberMe || got.Client != want.Client || got.Revoked != want.Revoked ||
		got.RevokeReason != want.RevokeReason {
		t.Errorf("session = %+v, want %+v", got, want)
	}
	conformance.MustTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	conformance.MustTime(t, "last_used_at", got.LastUsedAt, want.LastUsedAt)
	conformance.MustTime(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
	if want.Revoked {
		conformance.MustTime(t, "revoked_at", got.RevokedAt, want.RevokedAt)
	}
}

func NewRefreshToken(hash, sessionID string, issued time.Time) session.RefreshToken {
	return session.RefreshToken{Hash: hash, SessionID: sessionID, UserID: "usr_1", IssuedAt: issued,
		ExpiresAt: issued.Add(24 * time.Hour)}
}

func checkRefreshToken(t *testing.T, got, want session.RefreshToken) {
	t.Helper()
	if got.Hash != want.Hash || got.SessionID != want.SessionID || got.UserID != want.UserID {
		t.Errorf("refresh token = %+v, want %+v", got, want)
	}
	conformance.MustTime(t, "issued_at", got.IssuedAt, want.IssuedAt)
	conformance.MustTime(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
}

func testCreateAndGetSession(t *testing.T, s session.Store) {
	want := NewSession("ses_1", "usr_1", conformance.Now())
	want.RememberMe = true
	createSessions(t, s, want)
	got, err := s.GetSession(context.Background(), want.ID)
	conformance.MustOK(t, "get session", err)
	checkSession(t, got, want)
	if !got.Active(want.CreatedAt) {
		t.Errorf("a fresh session is not active")
	}
}

func testUnknownSession(t *testing.T, s session.Store) {
	_, err := s.GetSession(context.Background(), "ses_nope")
	conformance.MustErr(t, "get unknown session", err, storeerr.ErrNotFound)
}

func testDuplicateSession(t *testing.T, s session.Store) {
	createSessions(t, s, NewSession("ses_1", "usr_1", conformance.Now()))
	_, err := s.CreateSession(context.Background(), NewSession("ses_1", "usr_2", conformance.Now()))
	conformance.MustErr(t, "second session with the same id", err, storeerr.ErrAlreadyExists)
}

func testListUserSessions(t *testing.T, s session.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	createSessions(t, s,
		NewSession("ses_c", "usr_1", t0.Add(2*time.Minute)),
		NewSession("ses_a", "usr_1", t0),
		NewSession("ses_x", "usr_2", t0.Add(time.Minute)),
		NewSession("ses_b", "usr_1", t0.Add(time.Minute)),
		NewSession("ses_0", "usr_1", t0.Add(-72*time.Hour)), // expired two days ago
	)
	_, err := s.RevokeSession(ctx, "ses_b", t0.Add(3*time.Minute), "test")
	conformance.MustOK(t, "revoke", err)

	got, err := s.ListUserSessions(ctx, "usr_1")
	conformance.MustOK(t, "list", err)
	var gotIDs []string
	for _, sess := range got {
		gotIDs = append(gotIDs, sess.ID)
	}
	if want := []string{"ses_0", "ses_a", "ses_b", "ses_c"}; !slices.Equal(gotIDs, want) {
		t.Errorf("sessions of usr_1 = %v, want %v (oldest first, revoked and expired included)", gotIDs, want)
	}
	if len(got) == 4 && (!got[2].Revoked || got[2].RevokeReason != "test" || got[1].Revoked) {
		t.Errorf("revocations listed wrong: %+v", got)
	}

	got, err = s.ListUserSessions(ctx, "usr_nobody")
	conformance.MustOK(t, "list for a user without sessions", err)
	if len(got) != 0 {
		t.Errorf("sessions of a user without any = %+v", got)
	}
}

func testSessionLimit(t *testing.T, s session.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	for _, tc := range []struct {
		name, user  string
		createdAt   time.Time // the new session's
		listedFirst bool      // the new session is the oldest listed
	}{
		{"a newer session pushes out the oldest", "usr_newer", t0.Add(time.Hour), false},
		{"a session dated before all others (clocks apart) still pushes out the oldest other", "usr_older", t0.Add(-time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := fillSessions(t, s, tc.user, t0)
			newest := NewSession(tc.user+"_ses_new", tc.user, tc.createdAt)
			evicted, err := s.CreateSession(ctx, newest)
			conformance.MustOK(t, "create one more", err)
			if !slices.Equal(evicted, ids[:1]) {
				t.Fatalf("pushed out %v, want %v", evicted, ids[:1])
			}
			got, err := s.GetSession(ctx, ids[0])
			conformance.MustOK(t, "get the pushed out session", err)
			if !got.Revoked || got.RevokeReason != session.ReasonSessionLimit {
				t.Errorf("pushed out session = %+v, want it revoked with reason %q", got, session.ReasonSessionLimit)
			}
			conformance.MustTime(t, "revoked at (the new session's creation)", got.RevokedAt, tc.createdAt)
			got, err = s.GetSession(ctx, newest.ID)
			if err != nil || got.Revoked {
				t.Errorf("the new session = %+v, %v; want it stored and working", got, err)
			}
			listed := listedIDs(t, s, tc.user)
			want := append(slices.Clone(ids[1:]), newest.ID) // oldest first: the new one by its date
			if tc.listedFirst {
				want = append([]string{newest.ID}, ids[1:]...)
			}
			if !slices.Equal(listed, want) {
				t.Errorf("listed %v,\nwant %v", listed, want)
			}
		})
	}
}

// concurrentOpens is how many sessions of one user are opened at once at the bound: fewer than
// conformance.Concurrency, as every one of them changes the same document, and each loser
// tries again (on the embedded store, fifty of them under the race detector can outwait
// SQLite's busy timeout). Ten already race changes, and evictions, of one set.
const concurrentOpens = 10

func testSessionLimitConcurrent(t *testing.T, s session.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	all := fillSessions(t, s, "usr_1", t0)
	var (
		mu       sync.Mutex
		reported = map[string]bool{}
		errs     []error
	)
	opened := make([]string, concurrentOpens)
	for i := range opened {
		opened[i] = fmt.Sprintf("usr_1_ses_new_%02d", i)
	}
	conformance.Race(concurrentOpens, func(i int) {
		evicted, err := s.CreateSession(ctx, NewSession(opened[i], "usr_1", t0.Add(time.Hour+time.Duration(i)*time.Millisecond)))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		for _, id := range evicted {
			reported[id] = true
		}
	})
	if len(errs) > 0 {
		t.Fatalf("concurrent creates: %v", errs)
	}
	all = append(all, opened...)
	listed := listedIDs(t, s, "usr_1")
	if want := all[len(all)-session.MaxPerUser:]; !slices.Equal(listed, want) {
		t.Errorf("listed %v,\nwant the newest %d: %v", listed, session.MaxPerUser, want)
	}
	for _, id := range all {
		if slices.Contains(listed, id) {
			continue
		}
		got, err := s.GetSession(ctx, id)
		conformance.MustOK(t, "get "+id, err)
		if !got.Revoked {
			t.Errorf("session %s is out of the list and not revoked: it works, and logging out of all sessions would miss it", id)
		}
		if !reported[id] {
			t.Errorf("session %s was pushed out but no create reported it (its revocation would not be shared)", id)
		}
	}
}

func testTakenSessionID(t *testing.T, s session.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	createSessions(t, s, NewSession("ses_taken", "usr_1", t0))
	_, err := s.CreateSession(ctx, NewSession("ses_taken", "usr_2", t0))
	conformance.MustErr(t, "create a session with another user's session id", err, storeerr.ErrAlreadyExists)
	ids := fillSessions(t, s, "usr_2", t0.Add(time.Second))
	if listed := listedIDs(t, s, "usr_2"); !slices.Equal(listed, ids) {
		t.Errorf("sessions of usr_2 = %v, want its own %v", listed, ids)
	}
	got, err := s.GetSession(ctx, "ses_taken")
	if err != nil || got.Revoked || got.UserID != "usr_1" {
		t.Errorf("usr_1's session after usr_2 filled its sessions = %+v, %v; want it usr_1's and working", got, err)
	}
	if listed := listedIDs(t, s, "usr_1"); !slices.Equal(listed, []string{"ses_taken"}) {
		t.Errorf("sessions of usr_1 = %v, want [ses_taken]", listed)
	}
}

func testTouchSession(t *testing.T, s session.Store) {
	ctx := context.Background()
	want := NewSession("ses_1", "usr_1", conformance.Now())
	createSessions(t, s, want)
	at, exp := want.CreatedAt.Add(time.Hour), want.CreatedAt.Add(48*time.Hour)
	conformance.MustOK(t, "touch", s.TouchSession(ctx, want.ID, at, exp))

	got, err := s.GetSession(ctx, want.ID)
	conformance.MustOK(t, "get", err)
	want.LastUsedAt, want.ExpiresAt = at, exp
	checkSession(t, got, want)
}

func testTouchRevokedSession(t *testing.T, s session.Store) {
	ctx := context.Background()
	sess := NewSession("ses_1", "usr_1", conformance.Now())
	createSessions(t, s, sess)
	_, err := s.RevokeSession(ctx, sess.ID, sess.CreatedAt, "test")
	conformance.MustOK(t, "revoke", err)

	err = s.TouchSession(ctx, sess.ID, sess.CreatedAt.Add(time.Hour), sess.CreatedAt.Add(48*time.Hour))
	conformance.MustErr(t, "touch a revoked session", err, storeerr.ErrNotFound)
	got, err := s.GetSession(ctx, sess.ID)
	conformance.MustOK(t, "get", err)
	if !got.Revoked || !conformance.SameTime(got.ExpiresAt, sess.ExpiresAt) {
		t.Errorf("touching a revoked session changed it: %+v", got)
	}

	err = s.TouchSession(ctx, "ses_nope", sess.CreatedAt, sess.ExpiresAt)
	conformance.MustErr(t, "touch an unknown session", err, storeerr.ErrNotFound)
}

func testRevokeSessionIdempotent(t *testing.T, s session.Store) {
	ctx := context.Background()
	want := NewSession("ses_1", "usr_1", conformance.Now())
	createSessions(t, s, want)
	at := want.CreatedAt.Add(time.Minute)

	done, err := s.RevokeSession(ctx, want.ID, at, "logout")
	conformance.MustOK(t, "first revoke", err)
	if !done {
		t.Errorf("first revoke reported false")
	}
	done, err = s.RevokeSession(ctx, want.ID, at.Add(time.Minute), "again")
	conformance.MustOK(t, "second revoke", err)
	if done {
		t.Errorf("second revoke reported true")
	}

	got, err := s.GetSession(ctx, want.ID)
	conformance.MustOK(t, "get", err)
	want.Revoked, want.RevokedAt, want.RevokeReason = true, at, "logout"
	checkSession(t, got, want) // the first revocation's time and reason are kept
	if got.Active(at) {
		t.Errorf("a revoked session is active")
	}
}

func testRevokeSessionConcurrent(t *testing.T, s session.Store) {
	ctx := context.Background()
	sess := NewSession("ses_1", "usr_1", conformance.Now())
	createSessions(t, s, sess)
	var (
		mu   sync.Mutex
		wins int
		errs []error
	)
	conformance.Race(conformance.Concurrency, func(int) {
		done, err := s.RevokeSession(ctx, sess.ID, sess.CreatedAt, "race")
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		if done {
			wins++
		}
	})
	if len(errs) > 0 {
		t.Fatalf("revoke errors: %v", errs)
	}
	if wins != 1 {
		t.Errorf("%d concurrent revocations reported true, want exactly 1", wins)
	}
}

func testRevokeWinsOverTouch(t *testing.T, s session.Store) {
	ctx := context.Background()
	const rounds, touches = 10, 10
	t0 := conformance.Now()
	for round := range rounds {
		sess := NewSession(fmt.Sprintf("ses_%d", round), "usr_1", t0)
		createSessions(t, s, sess)
		conformance.Race(touches+1, func(i int) {
			if i == 0 {
				if _, err := s.RevokeSession(ctx, sess.ID, t0, "race"); err != nil {
					t.Errorf("revoke: %v", err)
				}
				return
			}
			err := s.TouchSession(ctx, sess.ID, t0.Add(time.Duration(i)*time.Second), t0.Add(48*time.Hour))
			if err != nil && !errors.Is(err, storeerr.ErrNotFound) {
				t.Errorf("touch: %v", err)
			}
		})
		got, err := s.GetSession(ctx, sess.ID)
		conformance.MustOK(t, "get", err)
		if !got.Revoked {
			t.Fatalf("round %d: a concurrent touch undid the revocation: %+v", round, got)
		}
	}
}

func testListSessionsRevokedSince(t *testing.T, s session.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	createSessions(t, s,
		NewSession("ses_1", "usr_1", t0),
		NewSession("ses_2", "usr_1", t0),
		NewSession("ses_3", "usr_2", t0),
		NewSession("ses_4", "usr_2", t0),
	)
	for id, at := range map[string]time.Time{"ses_1": t0, "ses_2": t0.Add(time.Minute), "ses_3": t0.Add(2 * time.Minute)} {
		_, err := s.RevokeSession(ctx, id, at, "test")
		conformance.MustOK(t, "revoke "+id, err)
	}
	for _, tc := range []struct {
		since time.Time
		want  []string
	}{
		{t0.Add(-time.Hour), []string{"ses_1", "ses_2", "ses_3"}},
		{t0, []string{"ses_1", "ses_2", "ses_3"}},
		{t0.Add(time.Minute), []string{"ses_2", "ses_3"}}, // at or after: inclusive
		{t0.Add(time.Minute + time.Millisecond), []string{"ses_3"}},
		{t0.Add(time.Hour), nil},
	} {
		got, err := s.ListSessionsRevokedSince(ctx, tc.since)
		conformance.MustOK(t, "list revoked", err)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("revoked since t0%+v = %v, want %v", tc.since.Sub(t0), got, tc.want)
		}
	}
}

func testSpendRefreshToken(t *testing.T, s session.Store) {
	ctx := context.Background()
	want := NewRefreshToken("hash_1", "ses_1", conformance.Now())
	conformance.MustOK(t, "add", s.AddRefreshToken(ctx, want))
	conformance.MustOK(t, "add another", s.AddRefreshToken(ctx, NewRefreshToken("hash_2", "ses_1", conformance.Now())))

	got, err := s.SpendRefreshToken(ctx, want.Hash, want.IssuedAt.Add(time.Minute))
	conformance.MustOK(t, "first spend", err)
	checkRefreshToken(t, got, want)

	got, err = s.SpendRefreshToken(ctx, want.Hash, want.IssuedAt.Add(2*time.Minute))
	conformance.MustErr(t, "second spend", err, session.ErrAlreadySpent)
	checkRefreshToken(t, got, want) // the token comes back with the error: its session is needed

	_, err = s.SpendRefreshToken(ctx, "hash_2", want.IssuedAt.Add(time.Minute))
	conformance.MustOK(t, "spending one token leaves the others unspent", err)
}

func testSpendUnknownRefreshToken(t *testing.T, s session.Store) {
	_, err := s.SpendRefreshToken(context.Background(), "hash_nope", conformance.Now())
	conformance.MustErr(t, "spend unknown", err, storeerr.ErrNotFound)
}

func testDuplicateRefreshToken(t *testing.T, s session.Store) {
	ctx := context.Background()
	conformance.MustOK(t, "add", s.AddRefreshToken(ctx, NewRefreshToken("hash_1", "ses_1", conformance.Now())))
	err := s.AddRefreshToken(ctx, NewRefreshToken("hash_1", "ses_2", conformance.Now()))
	conformance.MustErr(t, "second token with the same hash", err, storeerr.ErrAlreadyExists)
}

func testCompleteRotation(t *testing.T, s session.Store) {
	ctx := context.Background()
	rt := NewRefreshToken("hash_1", "ses_1", conformance.Now())
	conformance.MustOK(t, "add", s.AddRefreshToken(ctx, rt))
	spentAt := rt.IssuedAt.Add(time.Minute)
	_, err := s.SpendRefreshToken(ctx, rt.Hash, spentAt)
	conformance.MustOK(t, "spend", err)

	got, err := s.SpendRefreshToken(ctx, rt.Hash, spentAt.Add(time.Second))
	conformance.MustErr(t, "spend again before the rotation completed", err, session.ErrAlreadySpent)
	if got.Rotated {
		t.Errorf("rotated before CompleteRotation")
	}
	conformance.MustTime(t, "spent_at (the first spend's)", got.SpentAt, spentAt)

	conformance.MustOK(t, "complete rotation", s.CompleteRotation(ctx, rt.Hash))
	got, err = s.SpendRefreshToken(ctx, rt.Hash, spentAt.Add(2*time.Second))
	conformance.MustErr(t, "spend again after the rotation completed", err, session.ErrAlreadySpent)
	if !got.Rotated {
		t.Errorf("not rotated after CompleteRotation")
	}
	conformance.MustErr(t, "complete the rotation of an unspent token", s.CompleteRotation(ctx, "hash_nope"), storeerr.ErrNotFound)
}

func testSpendRefreshTokenConcurrent(t *testing.T, s session.Store) {
	ctx := context.Background()
	rt := NewRefreshToken("hash_1", "ses_1", conformance.Now())
	conformance.MustOK(t, "add", s.AddRefreshToken(ctx, rt))
	var (
		mu           sync.Mutex
		wins, spent  int
		unexpected   []error
		wrongSession int
	)
	conformance.Race(conformance.Concurrency, func(int) {
		got, err := s.SpendRefreshToken(ctx, rt.Hash, rt.IssuedAt.Add(time.Second))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case errors.Is(err, session.ErrAlreadySpent):
			spent++
		default:
			unexpected = append(unexpected, err)
		}
		if got.SessionID != rt.SessionID {
			wrongSession++
		}
	})
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if wins != 1 || spent != conformance.Concurrency-1 {
		t.Errorf("%d concurrent spends: %d won, %d got ErrAlreadySpent; want 1 and %d",
			conformance.Concurrency, wins, spent, conformance.Concurrency-1)
	}
	if wrongSession > 0 {
		t.Errorf("%d spends did not return the token's session", wrongSession)
	}
}

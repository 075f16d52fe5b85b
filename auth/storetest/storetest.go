// Package storetest is the conformance suite of auth.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/token"
)

// concurrency is how many goroutines race in the concurrency cases.
const concurrency = 50

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) auth.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s auth.Store)
	}{
		{"ShouldCreateAndGetUsersByIDEmailAndUsername", testCreateAndGetUser},
		{"ShouldRejectDuplicateEmail", testDuplicateEmail},
		{"ShouldRejectDuplicateUsername", testDuplicateUsername},
		{"ShouldRejectDuplicateUserID", testDuplicateUserID},
		{"ShouldAllowManyUsersWithoutUsername", testUsersWithoutUsername},
		{"ShouldReportUnknownUsersAsNotFound", testUnknownUser},
		{"ShouldGetManyUsersAtOnceLeavingOutUnknownOnes", testGetUsers},
		{"ShouldPageUsersInIDOrder", testListUsersPaging},
		{"ShouldFilterUsersByEmailOrUsernamePrefix", testListUsersPrefix},
		{"ShouldTreatThePrefixAsLiteralText", testListUsersPrefixLiteral},
		{"ShouldFilterUsersByOrganization", testListUsersOrg},
		{"ShouldCountUsers", testCountUsers},

		{"ShouldDeleteAUserOnce", testDeleteUser},
		{"ShouldUpdateOnlyTheGivenFieldsOfAUser", testUpdateUser},
		{"ShouldRefuseAnUpdateToAnotherUsersEmailOrUsername", testUpdateUserCollision},
		{"ShouldReportAnUpdateOfAnUnknownUserAsNotFound", testUpdateUnknownUser},
		{"ShouldLetExactlyOneOfManyConcurrentUpdatesTakeAnEmail", testUpdateUserConcurrentEmail},
		{"ShouldEraseEveryRecordOfAUserAndNoOneElses", testEraseUserRecords},
		{"ShouldKeepTheLatestLockReleaseOfEachUser", testLockReleases},
		{"ShouldCreateAndGetSessions", testCreateAndGetSession},
		{"ShouldReportUnknownSessionsAsNotFound", testUnknownSession},
		{"ShouldRejectDuplicateSessionID", testDuplicateSession},
		{"ShouldListEverySessionOfAUserOldestFirst", testListUserSessions},
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

		{"ShouldCreateGetAndListAPIKeys", testAPIKeys},
		{"ShouldRevokeAnAPIKeyOnceAndNeverLoseTheRevocation", testRevokeAPIKey},
		{"ShouldRecordAnAPIKeysLastUse", testTouchAPIKey},

		{"ShouldPutGetAndDeleteASecondFactor", testMFA},
		{"ShouldAcceptEachTOTPStepOnceUnderConcurrency", testClaimTOTPStep},
		{"ShouldSpendARecoveryCodeOnceUnderConcurrency", testSpendRecoveryCode},

		{"ShouldCreateAndListSigningKeysOldestFirst", testSigningKeys},
		{"ShouldRejectDuplicateSigningKeyID", testDuplicateSigningKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// now is a base time at MongoDB's resolution (milliseconds, UTC).
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// sameTime compares instants within a millisecond (stores may keep only milliseconds).
func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d < time.Millisecond && d > -time.Millisecond
}

func mustTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func mustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func newUser(id, email, username, org string, at time.Time) auth.User {
	return auth.User{
		ID: id, Email: email, Username: username, OrgID: org,
		PasswordHash: []byte("$2a$04$not.a.real.hash.but.stored.as.bytes"),
		CreatedAt:    at, UpdatedAt: at,
	}
}

func createUsers(t *testing.T, s auth.Store, users ...auth.User) {
	t.Helper()
	for _, u := range users {
		mustOK(t, "create user "+u.ID, s.CreateUser(context.Background(), u))
	}
}

func ids(users []auth.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func mustIDs(t *testing.T, what string, got []auth.User, want ...string) {
	t.Helper()
	if g := ids(got); !slices.Equal(g, want) {
		t.Errorf("%s = %v, want %v", what, g, want)
	}
}

func checkUser(t *testing.T, got, want auth.User) {
	t.Helper()
	if got.ID != want.ID || got.Email != want.Email || got.Username != want.Username ||
		got.OrgID != want.OrgID || got.Disabled != want.Disabled ||
		string(got.PasswordHash) != string(want.PasswordHash) {
		t.Errorf("user = %+v, want %+v", got, want)
	}
	mustTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	mustTime(t, "updated_at", got.UpdatedAt, want.UpdatedAt)
}

func testDeleteUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", now()),
		newUser("usr_2", "bob@example.com", "", "acme", now()))
	mustOK(t, "delete", s.DeleteUser(ctx, "usr_1"))
	_, err := s.GetUser(ctx, "usr_1")
	mustErr(t, "get a deleted user", err, auth.ErrNotFound)
	mustErr(t, "delete again", s.DeleteUser(ctx, "usr_1"), auth.ErrNotFound)
	createUsers(t, s, newUser("usr_3", "ada@example.com", "ada", "acme", now())) // email and username free again
	_, err = s.GetUser(ctx, "usr_2")
	mustOK(t, "the other user is untouched", err)
}

func ptr[T any](v T) *T { return &v }

func getUser(t *testing.T, s auth.Store, id string) auth.User {
	t.Helper()
	u, err := s.GetUser(context.Background(), id)
	mustOK(t, "get user "+id, err)
	return u
}

func testUpdateUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	want := newUser("usr_1", "ada@example.com", "ada", "acme", t0)
	createUsers(t, s, want, newUser("usr_2", "bob@example.com", "bob", "acme", t0))

	// One field at a time; the rest stay as they are.
	want.Email, want.UpdatedAt = "ada.lovelace@example.com", t0.Add(time.Minute)
	mustOK(t, "update email", s.UpdateUser(ctx, "usr_1", auth.UserChange{Email: ptr(want.Email), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)
	want.Username, want.UpdatedAt = "lovelace", t0.Add(2*time.Minute)
	mustOK(t, "update username", s.UpdateUser(ctx, "usr_1", auth.UserChange{Username: ptr(want.Username), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)
	want.Disabled, want.UpdatedAt = true, t0.Add(3*time.Minute)
	mustOK(t, "disable", s.UpdateUser(ctx, "usr_1", auth.UserChange{Disabled: ptr(true), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)
	want.PasswordHash, want.Disabled, want.UpdatedAt = []byte("$2a$04$another.hash"), false, t0.Add(4*time.Minute)
	mustOK(t, "new password and enable", s.UpdateUser(ctx, "usr_1",
		auth.UserChange{PasswordHash: want.PasswordHash, Disabled: ptr(false), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)

	// The new email and username find the user; the old ones are free again.
	got, err := s.GetUserByEmail(ctx, "ada.lovelace@example.com")
	mustOK(t, "get by new email", err)
	checkUser(t, got, want)
	got, err = s.GetUserByUsername(ctx, "lovelace")
	mustOK(t, "get by new username", err)
	checkUser(t, got, want)
	_, err = s.GetUserByEmail(ctx, "ada@example.com")
	mustErr(t, "get by old email", err, auth.ErrNotFound)
	createUsers(t, s, newUser("usr_3", "ada@example.com", "ada", "acme", t0))

	// Setting a field to the value it has is no collision with oneself.
	mustOK(t, "update to the same email", s.UpdateUser(ctx, "usr_1", auth.UserChange{Email: ptr(want.Email), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_2"), newUser("usr_2", "bob@example.com", "bob", "acme", t0))
}

func testUpdateUserCollision(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	ada, bob := newUser("usr_1", "ada@example.com", "ada", "acme", t0), newUser("usr_2", "bob@example.com", "", "acme", t0)
	createUsers(t, s, ada, bob)
	later := t0.Add(time.Minute)
	err := s.UpdateUser(ctx, "usr_2", auth.UserChange{Email: ptr("ada@example.com"), Disabled: ptr(true), UpdatedAt: later})
	mustErr(t, "take another user's email", err, auth.ErrAlreadyExists)
	err = s.UpdateUser(ctx, "usr_2", auth.UserChange{Username: ptr("ada"), Disabled: ptr(true), UpdatedAt: later})
	mustErr(t, "take another user's username", err, auth.ErrAlreadyExists)
	// Nothing of a refused update is written, to either user.
	checkUser(t, getUser(t, s, "usr_1"), ada)
	checkUser(t, getUser(t, s, "usr_2"), bob)
	got, err := s.GetUserByEmail(ctx, "ada@example.com")
	mustOK(t, "get by email after refused updates", err)
	checkUser(t, got, ada)
}

func testUpdateUnknownUser(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", now()))
	err := s.UpdateUser(context.Background(), "usr_nope", auth.UserChange{Disabled: ptr(true), UpdatedAt: now()})
	mustErr(t, "update an unknown user", err, auth.ErrNotFound)
	mustOK(t, "delete", s.DeleteUser(context.Background(), "usr_1"))
	err = s.UpdateUser(context.Background(), "usr_1", auth.UserChange{Email: ptr("x@example.com"), UpdatedAt: now()})
	mustErr(t, "update a deleted user", err, auth.ErrNotFound)
	if n, _ := s.CountUsers(context.Background()); n != 0 {
		t.Errorf("an update of a deleted user created one: %d users", n)
	}
}

func testUpdateUserConcurrentEmail(t *testing.T, s auth.Store) {
	ctx := context.Background()
	for i := range concurrency {
		createUsers(t, s, newUser(fmt.Sprintf("usr_%02d", i), fmt.Sprintf("u%02d@example.com", i), "", "acme", now()))
	}
	var wins atomic.Int32
	race(concurrency, func(i int) {
		err := s.UpdateUser(ctx, fmt.Sprintf("usr_%02d", i), auth.UserChange{Email: ptr("taken@example.com"), UpdatedAt: now()})
		switch {
		case err == nil:
			wins.Add(1)
		case !errors.Is(err, auth.ErrAlreadyExists):
			t.Errorf("update %d: %v", i, err)
		}
	})
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent updates to one email won, want exactly 1", wins.Load(), concurrency)
	}
	users, err := s.ListUsers(ctx, auth.UserQuery{Prefix: "taken@", Limit: concurrency})
	mustOK(t, "list", err)
	if len(users) != 1 {
		t.Errorf("%d users have the email, want 1", len(users))
	}
}

// userRecords creates, for user, two sessions (one revoked), a spent and an unspent refresh
// token, two API keys (one revoked), a second factor, a TOTP step and a spent recovery code.
func userRecords(t *testing.T, s auth.Store, user string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	createSessions(t, s, newSession(user+"_ses_1", user, at), newSession(user+"_ses_2", user, at))
	_, err := s.RevokeSession(ctx, user+"_ses_2", at, "test")
	mustOK(t, "revoke", err)
	for _, h := range []string{"spent", "unspent"} {
		rt := newRefreshToken(user+"_"+h, user+"_ses_1", at)
		rt.UserID = user
		mustOK(t, "add refresh token", s.AddRefreshToken(ctx, rt))
	}
	_, err = s.SpendRefreshToken(ctx, user+"_spent", at)
	mustOK(t, "spend", err)
	mustOK(t, "create key", s.CreateAPIKey(ctx, newAPIKey(user+"_key_1", user, at)))
	mustOK(t, "create key", s.CreateAPIKey(ctx, newAPIKey(user+"_key_2", user, at)))
	_, err = s.RevokeAPIKey(ctx, user+"_key_2", at)
	mustOK(t, "revoke key", err)
	mustOK(t, "put mfa", s.PutMFA(ctx, mfa.Factor{UserID: user, SecretSealed: []byte("sealed"), Enabled: true, CreatedAt: at}))
	mustOK(t, "claim totp step", s.ClaimTOTPStep(ctx, user, 1000, at))
	mustOK(t, "spend recovery code", s.SpendRecoveryCode(ctx, user, "hash", at))
	mustOK(t, "release lock", s.ReleaseLock(ctx, user, at))
}

func testEraseUserRecords(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	// usr_1 and usr_10: a prefix of one id must not select the other's records.
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", t0), newUser("usr_10", "bob@example.com", "bob", "acme", t0))
	userRecords(t, s, "usr_1", t0)
	userRecords(t, s, "usr_10", t0)

	mustOK(t, "erase", s.EraseUserRecords(ctx, "usr_1"))
	mustOK(t, "erase again", s.EraseUserRecords(ctx, "usr_1"))
	mustOK(t, "erase a user without records", s.EraseUserRecords(ctx, "usr_nobody"))

	// The account itself is DeleteUser's business.
	getUser(t, s, "usr_1")
	// usr_1's records are gone: what could only be inserted once can be inserted again.
	sessions, err := s.ListUserSessions(ctx, "usr_1")
	mustOK(t, "list sessions", err)
	if len(sessions) != 0 {
		t.Errorf("sessions after erase: %+v", sessions)
	}
	_, err = s.GetSession(ctx, "usr_1_ses_1")
	mustErr(t, "get an erased session", err, auth.ErrNotFound)
	_, err = s.SpendRefreshToken(ctx, "usr_1_unspent", t0)
	mustErr(t, "spend an erased refresh token", err, auth.ErrNotFound)
	rt := newRefreshToken("usr_1_spent", "ses_new", t0)
	mustOK(t, "add a token with an erased token's hash", s.AddRefreshToken(ctx, rt))
	_, err = s.SpendRefreshToken(ctx, "usr_1_spent", t0)
	mustOK(t, "spend it (the erased spend record is gone)", err)
	keys, err := s.ListAPIKeys(ctx, "usr_1")
	mustOK(t, "list keys", err)
	if len(keys) != 0 {
		t.Errorf("api keys after erase: %+v", keys)
	}
	_, err = s.GetAPIKey(ctx, "usr_1_key_1")
	mustErr(t, "get an erased key", err, auth.ErrNotFound)
	mustOK(t, "create a key with an erased key's id", s.CreateAPIKey(ctx, newAPIKey("usr_1_key_2", "usr_x", t0)))
	if k, err := s.GetAPIKey(ctx, "usr_1_key_2"); err != nil || k.Revoked {
		t.Errorf("a key with an erased revoked key's id = %+v, %v; want it unrevoked (the revocation record is erased)", k, err)
	}
	_, err = s.GetMFA(ctx, "usr_1")
	mustErr(t, "get erased mfa", err, auth.ErrNotFound)
	if last, err := s.LastTOTPStep(ctx, "usr_1"); err != nil || last != 0 {
		t.Errorf("last totp step after erase = %d, %v; want 0", last, err)
	}
	_, err = s.LockReleasedAt(ctx, "usr_1")
	mustErr(t, "an erased lock release", err, auth.ErrNotFound)
	mustOK(t, "claim an erased totp step", s.ClaimTOTPStep(ctx, "usr_1", 1000, t0))
	mustOK(t, "spend an erased recovery code", s.SpendRecoveryCode(ctx, "usr_1", "hash", t0))
	// Session revocations stay: they keep the erased sessions' access tokens refused.
	revoked, err := s.ListSessionsRevokedSince(ctx, t0)
	mustOK(t, "list revoked sessions", err)
	if !slices.Contains(revoked, "usr_1_ses_2") {
		t.Errorf("revoked sessions after erase = %v; the revocation of usr_1_ses_2 must stay", revoked)
	}

	// usr_10's records are untouched.
	sessions, err = s.ListUserSessions(ctx, "usr_10")
	mustOK(t, "list the other user's sessions", err)
	if len(sessions) != 2 || sessions[0].Revoked == sessions[1].Revoked {
		t.Errorf("the other user's sessions = %+v, want two, one revoked", sessions)
	}
	_, err = s.SpendRefreshToken(ctx, "usr_10_spent", t0)
	mustErr(t, "the other user's spent token", err, session.ErrAlreadySpent)
	_, err = s.SpendRefreshToken(ctx, "usr_10_unspent", t0)
	mustOK(t, "the other user's unspent token", err)
	keys, err = s.ListAPIKeys(ctx, "usr_10")
	mustOK(t, "list the other user's keys", err)
	if len(keys) != 2 || keys[0].Revoked || !keys[1].Revoked {
		t.Errorf("the other user's keys = %+v, want two, the second revoked", keys)
	}
	if _, err := s.GetMFA(ctx, "usr_10"); err != nil {
		t.Errorf("the other user's mfa: %v", err)
	}
	if last, err := s.LastTOTPStep(ctx, "usr_10"); err != nil || last != 1000 {
		t.Errorf("the other user's last totp step = %d, %v; want 1000", last, err)
	}
	mustErr(t, "the other user's spent recovery code", s.SpendRecoveryCode(ctx, "usr_10", "hash", t0), auth.ErrAlreadyExists)
}

func testCreateAndGetUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	want := newUser("usr_1", "ada@example.com", "ada", "acme", now())
	want.Disabled = true
	createUsers(t, s, want)

	got, err := s.GetUser(ctx, want.ID)
	mustOK(t, "get user", err)
	checkUser(t, got, want)

	got, err = s.GetUserByEmail(ctx, want.Email)
	mustOK(t, "get user by email", err)
	checkUser(t, got, want)

	got, err = s.GetUserByUsername(ctx, want.Username)
	mustOK(t, "get user by username", err)
	checkUser(t, got, want)
}

func testDuplicateEmail(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", now()))
	err := s.CreateUser(context.Background(), newUser("usr_2", "ada@example.com", "other", "acme", now()))
	mustErr(t, "second user with the same email", err, auth.ErrAlreadyExists)
	if n, _ := s.CountUsers(context.Background()); n != 1 {
		t.Errorf("count after rejected insert = %d, want 1", n)
	}
}

func testDuplicateUsername(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", now()))
	err := s.CreateUser(context.Background(), newUser("usr_2", "other@example.com", "ada", "acme", now()))
	mustErr(t, "second user with the same username", err, auth.ErrAlreadyExists)
}

func testDuplicateUserID(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", now()))
	err := s.CreateUser(context.Background(), newUser("usr_1", "other@example.com", "other", "acme", now()))
	mustErr(t, "second user with the same id", err, auth.ErrAlreadyExists)
}

func testUsersWithoutUsername(t *testing.T, s auth.Store) {
	createUsers(t, s,
		newUser("usr_1", "a@example.com", "", "acme", now()),
		newUser("usr_2", "b@example.com", "", "acme", now()),
		newUser("usr_3", "c@example.com", "", "acme", now()),
	)
	n, err := s.CountUsers(context.Background())
	mustOK(t, "count", err)
	if n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
	_, err = s.GetUserByUsername(context.Background(), "")
	mustErr(t, "get by empty username", err, auth.ErrNotFound)
}

func testUnknownUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", now()))
	_, err := s.GetUser(ctx, "usr_nope")
	mustErr(t, "get unknown id", err, auth.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "nobody@example.com")
	mustErr(t, "get unknown email", err, auth.ErrNotFound)
	_, err = s.GetUserByUsername(ctx, "nobody")
	mustErr(t, "get unknown username", err, auth.ErrNotFound)
}

func testGetUsers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	ada, bob := newUser("usr_1", "ada@example.com", "ada", "acme", now()), newUser("usr_2", "bob@example.com", "", "other", now())
	createUsers(t, s, ada, bob, newUser("usr_3", "eve@example.com", "eve", "acme", now()))
	got, err := s.GetUsers(ctx, []string{"usr_2", "usr_nope", "usr_1"})
	mustOK(t, "get users", err)
	slices.SortFunc(got, func(a, b auth.User) int { return strings.Compare(a.ID, b.ID) })
	if len(got) != 2 {
		t.Fatalf("got %d users, want usr_1 and usr_2 only", len(got))
	}
	checkUser(t, got[0], ada)
	checkUser(t, got[1], bob)
	none, err := s.GetUsers(ctx, nil)
	mustOK(t, "get no users", err)
	if len(none) != 0 {
		t.Errorf("no ids: got %d users", len(none))
	}
}

func testListUsersPaging(t *testing.T, s auth.Store) {
	ctx := context.Background()
	// Inserted out of order: the store must sort by id.
	for _, id := range []string{"usr_c", "usr_a", "usr_e", "usr_b", "usr_d"} {
		createUsers(t, s, newUser(id, id+"@example.com", "", "acme", now()))
	}
	page, err := s.ListUsers(ctx, auth.UserQuery{Limit: 2})
	mustOK(t, "first page", err)
	mustIDs(t, "first page", page, "usr_a", "usr_b")

	page, err = s.ListUsers(ctx, auth.UserQuery{After: "usr_b", Limit: 2})
	mustOK(t, "second page", err)
	mustIDs(t, "second page", page, "usr_c", "usr_d")

	page, err = s.ListUsers(ctx, auth.UserQuery{After: "usr_d", Limit: 2})
	mustOK(t, "last page", err)
	mustIDs(t, "last page", page, "usr_e")

	page, err = s.ListUsers(ctx, auth.UserQuery{After: "usr_e", Limit: 2})
	mustOK(t, "past the end", err)
	mustIDs(t, "past the end", page)

	page, err = s.ListUsers(ctx, auth.UserQuery{Limit: 100})
	mustOK(t, "everything", err)
	mustIDs(t, "everything", page, "usr_a", "usr_b", "usr_c", "usr_d", "usr_e")
}

func testListUsersPrefix(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "alice@example.com", "wonder", "acme", now()),
		newUser("usr_2", "bob@example.com", "alfred", "acme", now()),
		newUser("usr_3", "carol@example.com", "", "acme", now()),
		newUser("usr_4", "dave@al.example.com", "dave", "acme", now()),
	)
	page, err := s.ListUsers(ctx, auth.UserQuery{Prefix: "al", Limit: 10})
	mustOK(t, "prefix al", err)
	mustIDs(t, "prefix al (email or username, never the middle)", page, "usr_1", "usr_2")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: "al", After: "usr_1", Limit: 10})
	mustOK(t, "prefix al after usr_1", err)
	mustIDs(t, "prefix al after usr_1", page, "usr_2")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: "carol@", Limit: 10})
	mustOK(t, "prefix carol@", err)
	mustIDs(t, "prefix carol@", page, "usr_3")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: "zed", Limit: 10})
	mustOK(t, "prefix zed", err)
	mustIDs(t, "prefix zed", page)
}

func testListUsersPrefixLiteral(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "a.b@example.com", "", "acme", now()),
		newUser("usr_2", "axb@example.com", "", "acme", now()),
		newUser("usr_3", "zz@example.com", "", "acme", now()),
	)
	page, err := s.ListUsers(ctx, auth.UserQuery{Prefix: "a.b", Limit: 10})
	mustOK(t, "prefix a.b", err)
	mustIDs(t, "prefix a.b ('.' is not a wildcard)", page, "usr_1")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: ".*", Limit: 10})
	mustOK(t, "prefix .*", err)
	mustIDs(t, "prefix .* (not a pattern)", page)
}

func testListUsersOrg(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "a@example.com", "", "acme", now()),
		newUser("usr_2", "b@example.com", "", "globex", now()),
		newUser("usr_3", "c@example.com", "", "acme", now()),
		newUser("usr_4", "ab@example.com", "", "globex", now()),
	)
	page, err := s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", Limit: 10})
	mustOK(t, "org acme", err)
	mustIDs(t, "org acme", page, "usr_1", "usr_3")

	page, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "globex", Prefix: "a", Limit: 10})
	mustOK(t, "org globex, prefix a", err)
	mustIDs(t, "org globex, prefix a", page, "usr_4")

	page, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "initech", Limit: 10})
	mustOK(t, "unknown org", err)
	mustIDs(t, "unknown org", page)
}

func testCountUsers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	n, err := s.CountUsers(ctx)
	mustOK(t, "count empty", err)
	if n != 0 {
		t.Fatalf("empty store counts %d users", n)
	}
	for i := range 4 {
		createUsers(t, s, newUser(fmt.Sprintf("usr_%d", i), fmt.Sprintf("u%d@example.com", i), "", "acme", now()))
	}
	n, err = s.CountUsers(ctx)
	mustOK(t, "count", err)
	if n != 4 {
		t.Errorf("count = %d, want 4", n)
	}
}

func newSession(id, userID string, created time.Time) session.Session {
	return session.Session{
		ID: id, UserID: userID, OrgID: "acme", Client: "test-client",
		CreatedAt: created, LastUsedAt: created, ExpiresAt: created.Add(24 * time.Hour),
	}
}

func createSessions(t *testing.T, s auth.Store, sessions ...session.Session) {
	t.Helper()
	for _, sess := range sessions {
		mustOK(t, "create session "+sess.ID, s.CreateSession(context.Background(), sess))
	}
}

func checkSession(t *testing.T, got, want session.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.OrgID != want.OrgID ||
		got.RememberMe != want.RememberMe || got.Client != want.Client || got.Revoked != want.Revoked ||
		got.RevokeReason != want.RevokeReason {
		t.Errorf("session = %+v, want %+v", got, want)
	}
	mustTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	mustTime(t, "last_used_at", got.LastUsedAt, want.LastUsedAt)
	mustTime(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
	if want.Revoked {
		mustTime(t, "revoked_at", got.RevokedAt, want.RevokedAt)
	}
}

func testCreateAndGetSession(t *testing.T, s auth.Store) {
	want := newSession("ses_1", "usr_1", now())
	want.RememberMe = true
	createSessions(t, s, want)
	got, err := s.GetSession(context.Background(), want.ID)
	mustOK(t, "get session", err)
	checkSession(t, got, want)
	if !got.Active(want.CreatedAt) {
		t.Errorf("a fresh session is not active")
	}
}

func testUnknownSession(t *testing.T, s auth.Store) {
	_, err := s.GetSession(context.Background(), "ses_nope")
	mustErr(t, "get unknown session", err, auth.ErrNotFound)
}

func testDuplicateSession(t *testing.T, s auth.Store) {
	createSessions(t, s, newSession("ses_1", "usr_1", now()))
	err := s.CreateSession(context.Background(), newSession("ses_1", "usr_2", now()))
	mustErr(t, "second session with the same id", err, auth.ErrAlreadyExists)
}

func testListUserSessions(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	createSessions(t, s,
		newSession("ses_c", "usr_1", t0.Add(2*time.Minute)),
		newSession("ses_a", "usr_1", t0),
		newSession("ses_x", "usr_2", t0.Add(time.Minute)),
		newSession("ses_b", "usr_1", t0.Add(time.Minute)),
	)
	_, err := s.RevokeSession(ctx, "ses_b", t0.Add(3*time.Minute), "test")
	mustOK(t, "revoke", err)

	got, err := s.ListUserSessions(ctx, "usr_1")
	mustOK(t, "list", err)
	var gotIDs []string
	for _, sess := range got {
		gotIDs = append(gotIDs, sess.ID)
	}
	if want := []string{"ses_a", "ses_b", "ses_c"}; !slices.Equal(gotIDs, want) {
		t.Errorf("sessions of usr_1 = %v, want %v (oldest first, revoked included)", gotIDs, want)
	}
	if len(got) == 3 && !got[1].Revoked {
		t.Errorf("revoked session listed as not revoked: %+v", got[1])
	}

	got, err = s.ListUserSessions(ctx, "usr_nobody")
	mustOK(t, "list for a user without sessions", err)
	if len(got) != 0 {
		t.Errorf("sessions of a user without any = %+v", got)
	}
}

func testTouchSession(t *testing.T, s auth.Store) {
	ctx := context.Background()
	want := newSession("ses_1", "usr_1", now())
	createSessions(t, s, want)
	at, exp := want.CreatedAt.Add(time.Hour), want.CreatedAt.Add(48*time.Hour)
	mustOK(t, "touch", s.TouchSession(ctx, want.ID, at, exp))

	got, err := s.GetSession(ctx, want.ID)
	mustOK(t, "get", err)
	want.LastUsedAt, want.ExpiresAt = at, exp
	checkSession(t, got, want)
}

func testTouchRevokedSession(t *testing.T, s auth.Store) {
	ctx := context.Background()
	sess := newSession("ses_1", "usr_1", now())
	createSessions(t, s, sess)
	_, err := s.RevokeSession(ctx, sess.ID, sess.CreatedAt, "test")
	mustOK(t, "revoke", err)

	err = s.TouchSession(ctx, sess.ID, sess.CreatedAt.Add(time.Hour), sess.CreatedAt.Add(48*time.Hour))
	mustErr(t, "touch a revoked session", err, auth.ErrNotFound)
	got, err := s.GetSession(ctx, sess.ID)
	mustOK(t, "get", err)
	if !got.Revoked || !sameTime(got.ExpiresAt, sess.ExpiresAt) {
		t.Errorf("touching a revoked session changed it: %+v", got)
	}

	err = s.TouchSession(ctx, "ses_nope", sess.CreatedAt, sess.ExpiresAt)
	mustErr(t, "touch an unknown session", err, auth.ErrNotFound)
}

func testRevokeSessionIdempotent(t *testing.T, s auth.Store) {
	ctx := context.Background()
	want := newSession("ses_1", "usr_1", now())
	createSessions(t, s, want)
	at := want.CreatedAt.Add(time.Minute)

	done, err := s.RevokeSession(ctx, want.ID, at, "logout")
	mustOK(t, "first revoke", err)
	if !done {
		t.Errorf("first revoke reported false")
	}
	done, err = s.RevokeSession(ctx, want.ID, at.Add(time.Minute), "again")
	mustOK(t, "second revoke", err)
	if done {
		t.Errorf("second revoke reported true")
	}

	got, err := s.GetSession(ctx, want.ID)
	mustOK(t, "get", err)
	want.Revoked, want.RevokedAt, want.RevokeReason = true, at, "logout"
	checkSession(t, got, want) // the first revocation's time and reason are kept
	if got.Active(at) {
		t.Errorf("a revoked session is active")
	}
}

// race starts n goroutines that call f(i) at once and waits for all of them.
func race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			f(i)
		})
	}
	start.Done()
	done.Wait()
}

func testRevokeSessionConcurrent(t *testing.T, s auth.Store) {
	ctx := context.Background()
	sess := newSession("ses_1", "usr_1", now())
	createSessions(t, s, sess)
	var (
		mu   sync.Mutex
		wins int
		errs []error
	)
	race(concurrency, func(int) {
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

// testRevokeWinsOverTouch races rotations (TouchSession) against a revocation: whatever the
// interleaving, the session must end revoked. A store that updates by read-modify-write of the
// whole document would write a stale "not revoked" back.
func testRevokeWinsOverTouch(t *testing.T, s auth.Store) {
	ctx := context.Background()
	const rounds, touches = 10, 10
	t0 := now()
	for round := range rounds {
		sess := newSession(fmt.Sprintf("ses_%d", round), "usr_1", t0)
		createSessions(t, s, sess)
		race(touches+1, func(i int) {
			if i == 0 {
				if _, err := s.RevokeSession(ctx, sess.ID, t0, "race"); err != nil {
					t.Errorf("revoke: %v", err)
				}
				return
			}
			err := s.TouchSession(ctx, sess.ID, t0.Add(time.Duration(i)*time.Second), t0.Add(48*time.Hour))
			if err != nil && !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("touch: %v", err)
			}
		})
		got, err := s.GetSession(ctx, sess.ID)
		mustOK(t, "get", err)
		if !got.Revoked {
			t.Fatalf("round %d: a concurrent touch undid the revocation: %+v", round, got)
		}
	}
}

func testListSessionsRevokedSince(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	createSessions(t, s,
		newSession("ses_1", "usr_1", t0),
		newSession("ses_2", "usr_1", t0),
		newSession("ses_3", "usr_2", t0),
		newSession("ses_4", "usr_2", t0),
	)
	for id, at := range map[string]time.Time{"ses_1": t0, "ses_2": t0.Add(time.Minute), "ses_3": t0.Add(2 * time.Minute)} {
		_, err := s.RevokeSession(ctx, id, at, "test")
		mustOK(t, "revoke "+id, err)
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
		mustOK(t, "list revoked", err)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("revoked since t0%+v = %v, want %v", tc.since.Sub(t0), got, tc.want)
		}
	}
}

func newRefreshToken(hash, sessionID string, issued time.Time) session.RefreshToken {
	return session.RefreshToken{Hash: hash, SessionID: sessionID, UserID: "usr_1", IssuedAt: issued,
		ExpiresAt: issued.Add(24 * time.Hour)}
}

func checkRefreshToken(t *testing.T, got, want session.RefreshToken) {
	t.Helper()
	if got.Hash != want.Hash || got.SessionID != want.SessionID || got.UserID != want.UserID {
		t.Errorf("refresh token = %+v, want %+v", got, want)
	}
	mustTime(t, "issued_at", got.IssuedAt, want.IssuedAt)
	mustTime(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
}

func testSpendRefreshToken(t *testing.T, s auth.Store) {
	ctx := context.Background()
	want := newRefreshToken("hash_1", "ses_1", now())
	mustOK(t, "add", s.AddRefreshToken(ctx, want))
	mustOK(t, "add another", s.AddRefreshToken(ctx, newRefreshToken("hash_2", "ses_1", now())))

	got, err := s.SpendRefreshToken(ctx, want.Hash, want.IssuedAt.Add(time.Minute))
	mustOK(t, "first spend", err)
	checkRefreshToken(t, got, want)

	got, err = s.SpendRefreshToken(ctx, want.Hash, want.IssuedAt.Add(2*time.Minute))
	mustErr(t, "second spend", err, session.ErrAlreadySpent)
	checkRefreshToken(t, got, want) // the token comes back with the error: its session is needed

	_, err = s.SpendRefreshToken(ctx, "hash_2", want.IssuedAt.Add(time.Minute))
	mustOK(t, "spending one token leaves the others unspent", err)
}

func testCompleteRotation(t *testing.T, s auth.Store) {
	ctx := context.Background()
	rt := newRefreshToken("hash_1", "ses_1", now())
	mustOK(t, "add", s.AddRefreshToken(ctx, rt))
	spentAt := rt.IssuedAt.Add(time.Minute)
	_, err := s.SpendRefreshToken(ctx, rt.Hash, spentAt)
	mustOK(t, "spend", err)

	got, err := s.SpendRefreshToken(ctx, rt.Hash, spentAt.Add(time.Second))
	mustErr(t, "spend again before the rotation completed", err, session.ErrAlreadySpent)
	if got.Rotated {
		t.Errorf("rotated before CompleteRotation")
	}
	mustTime(t, "spent_at (the first spend's)", got.SpentAt, spentAt)

	mustOK(t, "complete rotation", s.CompleteRotation(ctx, rt.Hash))
	got, err = s.SpendRefreshToken(ctx, rt.Hash, spentAt.Add(2*time.Second))
	mustErr(t, "spend again after the rotation completed", err, session.ErrAlreadySpent)
	if !got.Rotated {
		t.Errorf("not rotated after CompleteRotation")
	}
	mustErr(t, "complete the rotation of an unspent token", s.CompleteRotation(ctx, "hash_nope"), auth.ErrNotFound)
}

func testSpendUnknownRefreshToken(t *testing.T, s auth.Store) {
	_, err := s.SpendRefreshToken(context.Background(), "hash_nope", now())
	mustErr(t, "spend unknown", err, auth.ErrNotFound)
}

func testDuplicateRefreshToken(t *testing.T, s auth.Store) {
	ctx := context.Background()
	mustOK(t, "add", s.AddRefreshToken(ctx, newRefreshToken("hash_1", "ses_1", now())))
	err := s.AddRefreshToken(ctx, newRefreshToken("hash_1", "ses_2", now()))
	mustErr(t, "second token with the same hash", err, auth.ErrAlreadyExists)
}

func testSpendRefreshTokenConcurrent(t *testing.T, s auth.Store) {
	ctx := context.Background()
	rt := newRefreshToken("hash_1", "ses_1", now())
	mustOK(t, "add", s.AddRefreshToken(ctx, rt))
	var (
		mu           sync.Mutex
		wins, spent  int
		unexpected   []error
		wrongSession int
	)
	race(concurrency, func(int) {
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
	if wins != 1 || spent != concurrency-1 {
		t.Errorf("%d concurrent spends: %d won, %d got ErrAlreadySpent; want 1 and %d",
			concurrency, wins, spent, concurrency-1)
	}
	if wrongSession > 0 {
		t.Errorf("%d spends did not return the token's session", wrongSession)
	}
}

func newSigningKey(id string, created time.Time) token.SigningKey {
	return token.SigningKey{ID: id, Alg: token.AlgEdDSA, PublicDER: []byte("public " + id),
		PrivateSealed: []byte{0, 1, 2, 0xff, byte(len(id))}, CreatedAt: created}
}

func testSigningKeys(t *testing.T, s auth.Store) {
	ctx := context.Background()
	keys, err := s.ListSigningKeys(ctx)
	mustOK(t, "list empty", err)
	if len(keys) != 0 {
		t.Fatalf("empty store lists keys: %+v", keys)
	}
	t0 := now()
	want := []token.SigningKey{newSigningKey("k_a", t0), newSigningKey("k_b", t0.Add(time.Hour)), newSigningKey("k_c", t0.Add(2*time.Hour))}
	want[1].Alg = token.AlgES256
	for _, i := range []int{2, 0, 1} { // out of order: the store must sort by creation
		mustOK(t, "create key", s.CreateSigningKey(ctx, want[i]))
	}
	keys, err = s.ListSigningKeys(ctx)
	mustOK(t, "list", err)
	if len(keys) != len(want) {
		t.Fatalf("listed %d keys, want %d", len(keys), len(want))
	}
	for i, k := range keys {
		w := want[i]
		if k.ID != w.ID || k.Alg != w.Alg || string(k.PublicDER) != string(w.PublicDER) ||
			string(k.PrivateSealed) != string(w.PrivateSealed) {
			t.Errorf("key %d = %+v, want %+v (oldest first)", i, k, w)
		}
		mustTime(t, "created_at", k.CreatedAt, w.CreatedAt)
	}
}

func testDuplicateSigningKey(t *testing.T, s auth.Store) {
	ctx := context.Background()
	mustOK(t, "create", s.CreateSigningKey(ctx, newSigningKey("k_a", now())))
	err := s.CreateSigningKey(ctx, newSigningKey("k_a", now()))
	mustErr(t, "second key with the same id", err, auth.ErrAlreadyExists)
}

func newAPIKey(id, user string, at time.Time) apikey.Key {
	return apikey.Key{ID: id, UserID: user, OrgID: "acme", Name: "ci " + id, SecretHash: "hash-" + id,
		Permissions: []string{"projects:read"}, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
}

func testAPIKeys(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	a, b, c := newAPIKey("key_a", "usr_1", t0), newAPIKey("key_b", "usr_1", t0.Add(time.Second)), newAPIKey("key_c", "usr_2", t0)
	for _, k := range []apikey.Key{a, b, c} {
		mustOK(t, "create "+k.ID, s.CreateAPIKey(ctx, k))
	}
	mustErr(t, "a second key with the same id", s.CreateAPIKey(ctx, newAPIKey("key_a", "usr_3", t0)), auth.ErrAlreadyExists)
	got, err := s.GetAPIKey(ctx, "key_a")
	mustOK(t, "get", err)
	if got.UserID != "usr_1" || got.SecretHash != "hash-key_a" || !slices.Equal(got.Permissions, a.Permissions) || got.Revoked {
		t.Errorf("key = %+v, want %+v", got, a)
	}
	mustTime(t, "expires_at", got.ExpiresAt, a.ExpiresAt)
	_, err = s.GetAPIKey(ctx, "key_nope")
	mustErr(t, "get unknown", err, auth.ErrNotFound)
	list, err := s.ListAPIKeys(ctx, "usr_1")
	mustOK(t, "list", err)
	if len(list) != 2 || list[0].ID != "key_a" || list[1].ID != "key_b" {
		t.Errorf("usr_1's keys = %+v, want key_a, key_b", list)
	}
}

func testRevokeAPIKey(t *testing.T, s auth.Store) {
	ctx := context.Background()
	mustOK(t, "create", s.CreateAPIKey(ctx, newAPIKey("key_a", "usr_1", now())))
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 { // touches race the revocations: none may undo one
				_ = s.TouchAPIKey(ctx, "key_a", now())
				return
			}
			done, err := s.RevokeAPIKey(ctx, "key_a", now())
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
	mustOK(t, "get", err)
	if !got.Revoked || got.RevokedAt.IsZero() {
		t.Errorf("key after revocation = %+v", got)
	}
	list, err := s.ListAPIKeys(ctx, "usr_1")
	mustOK(t, "list", err)
	if len(list) != 1 || !list[0].Revoked {
		t.Errorf("listed key not revoked: %+v", list)
	}
}

func testTouchAPIKey(t *testing.T, s auth.Store) {
	ctx := context.Background()
	mustOK(t, "create", s.CreateAPIKey(ctx, newAPIKey("key_a", "usr_1", now())))
	used := now().Add(time.Minute)
	mustOK(t, "touch", s.TouchAPIKey(ctx, "key_a", used))
	got, err := s.GetAPIKey(ctx, "key_a")
	mustOK(t, "get", err)
	mustTime(t, "last_used_at", got.LastUsedAt, used)
	mustErr(t, "touch unknown", s.TouchAPIKey(ctx, "key_nope", used), auth.ErrNotFound)
}

func testMFA(t *testing.T, s auth.Store) {
	ctx := context.Background()
	_, err := s.GetMFA(ctx, "usr_1")
	mustErr(t, "get before enrollment", err, auth.ErrNotFound)
	m := mfa.Factor{UserID: "usr_1", SecretSealed: []byte("sealed"), CreatedAt: now()}
	mustOK(t, "put pending", s.PutMFA(ctx, m))
	m.Enabled, m.RecoveryHashes, m.EnabledAt = true, []string{"h1", "h2"}, now()
	mustOK(t, "replace with enabled", s.PutMFA(ctx, m))
	got, err := s.GetMFA(ctx, "usr_1")
	mustOK(t, "get", err)
	if !got.Enabled || !slices.Equal(got.RecoveryHashes, []string{"h1", "h2"}) || string(got.SecretSealed) != "sealed" {
		t.Errorf("mfa = %+v", got)
	}
	mustOK(t, "delete", s.DeleteMFA(ctx, "usr_1"))
	mustErr(t, "delete again", s.DeleteMFA(ctx, "usr_1"), auth.ErrNotFound)
}

func testClaimTOTPStep(t *testing.T, s auth.Store) {
	ctx := context.Background()
	last, err := s.LastTOTPStep(ctx, "usr_1")
	mustOK(t, "last step before any", err)
	if last != 0 {
		t.Errorf("last step = %d, want 0", last)
	}
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.ClaimTOTPStep(ctx, "usr_1", 1000, now())
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, auth.ErrAlreadyExists):
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent claims of one step won, want exactly 1", wins.Load(), n)
	}
	mustOK(t, "a later step", s.ClaimTOTPStep(ctx, "usr_1", 1001, now()))
	mustOK(t, "another user's same step", s.ClaimTOTPStep(ctx, "usr_2", 1001, now()))
	if last, err = s.LastTOTPStep(ctx, "usr_1"); err != nil || last != 1001 {
		t.Errorf("last step = %d, %v; want 1001", last, err)
	}
}

func testSpendRecoveryCode(t *testing.T, s auth.Store) {
	ctx := context.Background()
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if s.SpendRecoveryCode(ctx, "usr_1", "hash", now()) == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent spends of one recovery code won, want exactly 1", wins.Load(), n)
	}
	mustErr(t, "spend again", s.SpendRecoveryCode(ctx, "usr_1", "hash", now()), auth.ErrAlreadyExists)
	mustOK(t, "another user's code with the same hash", s.SpendRecoveryCode(ctx, "usr_2", "hash", now()))
}

func testLockReleases(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := now()
	_, err := s.LockReleasedAt(ctx, "usr_1")
	mustErr(t, "a user never released", err, auth.ErrNotFound)
	mustOK(t, "release", s.ReleaseLock(ctx, "usr_1", t0))
	mustOK(t, "release again, later", s.ReleaseLock(ctx, "usr_1", t0.Add(time.Minute)))
	mustOK(t, "release another user", s.ReleaseLock(ctx, "usr_10", t0))
	if at, err := s.LockReleasedAt(ctx, "usr_1"); err != nil || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("LockReleasedAt(usr_1) = %v, %v; want the latest release %v", at, err, t0.Add(time.Minute))
	}
	if at, err := s.LockReleasedAt(ctx, "usr_10"); err != nil || !at.Equal(t0) {
		t.Errorf("LockReleasedAt(usr_10) = %v, %v; want %v", at, err, t0)
	}
}

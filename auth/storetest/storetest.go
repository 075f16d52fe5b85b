// Package storetest is the conformance suite of what auth.Store adds to the capability
// packages' stores (users, lock releases, and erasing every record of a user across all of
// them); each of those has its own suite (session/sessiontest, apikey/apikeytest, mfa/mfatest,
// token/tokentest), in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey/apikeytest"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/session/sessiontest"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// now is a base time at MongoDB's resolution (milliseconds, UTC).
// sameTime compares instants within a millisecond (stores may keep only milliseconds).
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
		conformance.MustOK(t, "create user "+u.ID, s.CreateUser(context.Background(), u))
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
	conformance.MustTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	conformance.MustTime(t, "updated_at", got.UpdatedAt, want.UpdatedAt)
}

func testDeleteUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()),
		newUser("usr_2", "bob@example.com", "", "acme", conformance.Now()))
	conformance.MustOK(t, "delete", s.DeleteUser(ctx, "usr_1"))
	_, err := s.GetUser(ctx, "usr_1")
	conformance.MustErr(t, "get a deleted user", err, storeerr.ErrNotFound)
	conformance.MustErr(t, "delete again", s.DeleteUser(ctx, "usr_1"), storeerr.ErrNotFound)
	createUsers(t, s, newUser("usr_3", "ada@example.com", "ada", "acme", conformance.Now())) // email and username free again
	_, err = s.GetUser(ctx, "usr_2")
	conformance.MustOK(t, "the other user is untouched", err)
}

func ptr[T any](v T) *T { return &v }

func getUser(t *testing.T, s auth.Store, id string) auth.User {
	t.Helper()
	u, err := s.GetUser(context.Background(), id)
	conformance.MustOK(t, "get user "+id, err)
	return u
}

func testUpdateUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	want := newUser("usr_1", "ada@example.com", "ada", "acme", t0)
	createUsers(t, s, want, newUser("usr_2", "bob@example.com", "bob", "acme", t0))

	// One field at a time; the rest stay as they are.
	want.Email, want.UpdatedAt = "ada.lovelace@example.com", t0.Add(time.Minute)
	conformance.MustOK(t, "update email", s.UpdateUser(ctx, "usr_1", auth.UserChange{Email: ptr(want.Email), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)
	want.Username, want.UpdatedAt = "lovelace", t0.Add(2*time.Minute)
	conformance.MustOK(t, "update username", s.UpdateUser(ctx, "usr_1", auth.UserChange{Username: ptr(want.Username), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)
	want.Disabled, want.UpdatedAt = true, t0.Add(3*time.Minute)
	conformance.MustOK(t, "disable", s.UpdateUser(ctx, "usr_1", auth.UserChange{Disabled: ptr(true), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)
	want.PasswordHash, want.Disabled, want.UpdatedAt = []byte("$2a$04$another.hash"), false, t0.Add(4*time.Minute)
	conformance.MustOK(t, "new password and enable", s.UpdateUser(ctx, "usr_1",
		auth.UserChange{PasswordHash: want.PasswordHash, Disabled: ptr(false), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_1"), want)

	// The new email and username find the user; the old ones are free again.
	got, err := s.GetUserByEmail(ctx, "ada.lovelace@example.com")
	conformance.MustOK(t, "get by new email", err)
	checkUser(t, got, want)
	got, err = s.GetUserByUsername(ctx, "lovelace")
	conformance.MustOK(t, "get by new username", err)
	checkUser(t, got, want)
	_, err = s.GetUserByEmail(ctx, "ada@example.com")
	conformance.MustErr(t, "get by old email", err, storeerr.ErrNotFound)
	createUsers(t, s, newUser("usr_3", "ada@example.com", "ada", "acme", t0))

	// Setting a field to the value it has is no collision with oneself.
	conformance.MustOK(t, "update to the same email", s.UpdateUser(ctx, "usr_1", auth.UserChange{Email: ptr(want.Email), UpdatedAt: want.UpdatedAt}))
	checkUser(t, getUser(t, s, "usr_2"), newUser("usr_2", "bob@example.com", "bob", "acme", t0))
}

func testUpdateUserCollision(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	ada, bob := newUser("usr_1", "ada@example.com", "ada", "acme", t0), newUser("usr_2", "bob@example.com", "", "acme", t0)
	createUsers(t, s, ada, bob)
	later := t0.Add(time.Minute)
	err := s.UpdateUser(ctx, "usr_2", auth.UserChange{Email: ptr("ada@example.com"), Disabled: ptr(true), UpdatedAt: later})
	conformance.MustErr(t, "take another user's email", err, storeerr.ErrAlreadyExists)
	err = s.UpdateUser(ctx, "usr_2", auth.UserChange{Username: ptr("ada"), Disabled: ptr(true), UpdatedAt: later})
	conformance.MustErr(t, "take another user's username", err, storeerr.ErrAlreadyExists)
	// Nothing of a refused update is written, to either user.
	checkUser(t, getUser(t, s, "usr_1"), ada)
	checkUser(t, getUser(t, s, "usr_2"), bob)
	got, err := s.GetUserByEmail(ctx, "ada@example.com")
	conformance.MustOK(t, "get by email after refused updates", err)
	checkUser(t, got, ada)
}

func testUpdateUnknownUser(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()))
	err := s.UpdateUser(context.Background(), "usr_nope", auth.UserChange{Disabled: ptr(true), UpdatedAt: conformance.Now()})
	conformance.MustErr(t, "update an unknown user", err, storeerr.ErrNotFound)
	conformance.MustOK(t, "delete", s.DeleteUser(context.Background(), "usr_1"))
	err = s.UpdateUser(context.Background(), "usr_1", auth.UserChange{Email: ptr("x@example.com"), UpdatedAt: conformance.Now()})
	conformance.MustErr(t, "update a deleted user", err, storeerr.ErrNotFound)
	if n, _ := s.CountUsers(context.Background()); n != 0 {
		t.Errorf("an update of a deleted user created one: %d users", n)
	}
}

func testUpdateUserConcurrentEmail(t *testing.T, s auth.Store) {
	ctx := context.Background()
	for i := range conformance.Concurrency {
		createUsers(t, s, newUser(fmt.Sprintf("usr_%02d", i), fmt.Sprintf("u%02d@example.com", i), "", "acme", conformance.Now()))
	}
	var wins atomic.Int32
	conformance.Race(conformance.Concurrency, func(i int) {
		err := s.UpdateUser(ctx, fmt.Sprintf("usr_%02d", i), auth.UserChange{Email: ptr("taken@example.com"), UpdatedAt: conformance.Now()})
		switch {
		case err == nil:
			wins.Add(1)
		case !errors.Is(err, storeerr.ErrAlreadyExists):
			t.Errorf("update %d: %v", i, err)
		}
	})
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent updates to one email won, want exactly 1", wins.Load(), conformance.Concurrency)
	}
	users, err := s.ListUsers(ctx, auth.UserQuery{Prefix: "taken@", Limit: conformance.Concurrency})
	conformance.MustOK(t, "list", err)
	if len(users) != 1 {
		t.Errorf("%d users have the email, want 1", len(users))
	}
}

// userRecords creates, for user, two sessions (one revoked), a spent and an unspent refresh
// token, two API keys (one revoked), a second factor, a TOTP step and a spent recovery code.
func userRecords(t *testing.T, s auth.Store, user string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, sid := range []string{user + "_ses_1", user + "_ses_2"} {
		_, err := s.CreateSession(ctx, sessiontest.NewSession(sid, user, at))
		conformance.MustOK(t, "create session", err)
	}
	_, err := s.RevokeSession(ctx, user+"_ses_2", at, "test")
	conformance.MustOK(t, "revoke", err)
	for _, h := range []string{"spent", "unspent"} {
		rt := sessiontest.NewRefreshToken(user+"_"+h, user+"_ses_1", at)
		rt.UserID = user
		conformance.MustOK(t, "add refresh token", s.AddRefreshToken(ctx, rt))
	}
	_, err = s.SpendRefreshToken(ctx, user+"_spent", at)
	conformance.MustOK(t, "spend", err)
	conformance.MustOK(t, "create key", s.CreateAPIKey(ctx, apikeytest.NewKey(user+"_key_1", user, at)))
	conformance.MustOK(t, "create key", s.CreateAPIKey(ctx, apikeytest.NewKey(user+"_key_2", user, at)))
	_, err = s.RevokeAPIKey(ctx, user+"_key_2", at)
	conformance.MustOK(t, "revoke key", err)
	conformance.MustOK(t, "put mfa", s.PutMFA(ctx, mfa.Factor{UserID: user, SecretSealed: []byte("sealed"), Enabled: true, CreatedAt: at}))
	conformance.MustOK(t, "claim totp step", s.ClaimTOTPStep(ctx, user, 1000, at))
	conformance.MustOK(t, "spend recovery code", s.SpendRecoveryCode(ctx, user, "hash", at))
	conformance.MustOK(t, "release lock", s.ReleaseLock(ctx, user, at))
}

func testEraseUserRecords(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	// usr_1 and usr_10: a prefix of one id must not select the other's records.
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", t0), newUser("usr_10", "bob@example.com", "bob", "acme", t0))
	userRecords(t, s, "usr_1", t0)
	userRecords(t, s, "usr_10", t0)

	conformance.MustOK(t, "erase", s.EraseUserRecords(ctx, "usr_1"))
	conformance.MustOK(t, "erase again", s.EraseUserRecords(ctx, "usr_1"))
	conformance.MustOK(t, "erase a user without records", s.EraseUserRecords(ctx, "usr_nobody"))

	// The account itself is DeleteUser's business.
	getUser(t, s, "usr_1")
	// usr_1's records are gone: what could only be inserted once can be inserted again.
	sessions, err := s.ListUserSessions(ctx, "usr_1")
	conformance.MustOK(t, "list sessions", err)
	if len(sessions) != 0 {
		t.Errorf("sessions after erase: %+v", sessions)
	}
	_, err = s.GetSession(ctx, "usr_1_ses_1")
	conformance.MustErr(t, "get an erased session", err, storeerr.ErrNotFound)
	_, err = s.SpendRefreshToken(ctx, "usr_1_unspent", t0)
	conformance.MustErr(t, "spend an erased refresh token", err, storeerr.ErrNotFound)
	rt := sessiontest.NewRefreshToken("usr_1_spent", "ses_new", t0)
	conformance.MustOK(t, "add a token with an erased token's hash", s.AddRefreshToken(ctx, rt))
	_, err = s.SpendRefreshToken(ctx, "usr_1_spent", t0)
	conformance.MustOK(t, "spend it (the erased spend record is gone)", err)
	keys, err := s.ListAPIKeys(ctx, "usr_1")
	conformance.MustOK(t, "list keys", err)
	if len(keys) != 0 {
		t.Errorf("api keys after erase: %+v", keys)
	}
	_, err = s.GetAPIKey(ctx, "usr_1_key_1")
	conformance.MustErr(t, "get an erased key", err, storeerr.ErrNotFound)
	conformance.MustOK(t, "create a key with an erased key's id", s.CreateAPIKey(ctx, apikeytest.NewKey("usr_1_key_2", "usr_x", t0)))
	if k, err := s.GetAPIKey(ctx, "usr_1_key_2"); err != nil || k.Revoked {
		t.Errorf("a key with an erased revoked key's id = %+v, %v; want it unrevoked (the revocation record is erased)", k, err)
	}
	_, err = s.GetMFA(ctx, "usr_1")
	conformance.MustErr(t, "get erased mfa", err, storeerr.ErrNotFound)
	if last, err := s.LastTOTPStep(ctx, "usr_1"); err != nil || last != 0 {
		t.Errorf("last totp step after erase = %d, %v; want 0", last, err)
	}
	_, err = s.LockReleasedAt(ctx, "usr_1")
	conformance.MustErr(t, "an erased lock release", err, storeerr.ErrNotFound)
	conformance.MustOK(t, "claim an erased totp step", s.ClaimTOTPStep(ctx, "usr_1", 1000, t0))
	conformance.MustOK(t, "spend an erased recovery code", s.SpendRecoveryCode(ctx, "usr_1", "hash", t0))
	// Session revocations stay: they keep the erased sessions' access tokens refused.
	revoked, err := s.ListSessionsRevokedSince(ctx, t0)
	conformance.MustOK(t, "list revoked sessions", err)
	if !slices.Contains(revoked, "usr_1_ses_2") {
		t.Errorf("revoked sessions after erase = %v; the revocation of usr_1_ses_2 must stay", revoked)
	}

	// usr_10's records are untouched.
	sessions, err = s.ListUserSessions(ctx, "usr_10")
	conformance.MustOK(t, "list the other user's sessions", err)
	if len(sessions) != 2 || sessions[0].Revoked == sessions[1].Revoked {
		t.Errorf("the other user's sessions = %+v, want two, one revoked", sessions)
	}
	_, err = s.SpendRefreshToken(ctx, "usr_10_spent", t0)
	conformance.MustErr(t, "the other user's spent token", err, session.ErrAlreadySpent)
	_, err = s.SpendRefreshToken(ctx, "usr_10_unspent", t0)
	conformance.MustOK(t, "the other user's unspent token", err)
	keys, err = s.ListAPIKeys(ctx, "usr_10")
	conformance.MustOK(t, "list the other user's keys", err)
	if len(keys) != 2 || keys[0].Revoked || !keys[1].Revoked {
		t.Errorf("the other user's keys = %+v, want two, the second revoked", keys)
	}
	if _, err := s.GetMFA(ctx, "usr_10"); err != nil {
		t.Errorf("the other user's mfa: %v", err)
	}
	if last, err := s.LastTOTPStep(ctx, "usr_10"); err != nil || last != 1000 {
		t.Errorf("the other user's last totp step = %d, %v; want 1000", last, err)
	}
	conformance.MustErr(t, "the other user's spent recovery code", s.SpendRecoveryCode(ctx, "usr_10", "hash", t0), storeerr.ErrAlreadyExists)
}

func testCreateAndGetUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	want := newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now())
	want.Disabled = true
	createUsers(t, s, want)

	got, err := s.GetUser(ctx, want.ID)
	conformance.MustOK(t, "get user", err)
	checkUser(t, got, want)

	got, err = s.GetUserByEmail(ctx, want.Email)
	conformance.MustOK(t, "get user by email", err)
	checkUser(t, got, want)

	got, err = s.GetUserByUsername(ctx, want.Username)
	conformance.MustOK(t, "get user by username", err)
	checkUser(t, got, want)
}

func testDuplicateEmail(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()))
	err := s.CreateUser(context.Background(), newUser("usr_2", "ada@example.com", "other", "acme", conformance.Now()))
	conformance.MustErr(t, "second user with the same email", err, storeerr.ErrAlreadyExists)
	if n, _ := s.CountUsers(context.Background()); n != 1 {
		t.Errorf("count after rejected insert = %d, want 1", n)
	}
}

func testDuplicateUsername(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()))
	err := s.CreateUser(context.Background(), newUser("usr_2", "other@example.com", "ada", "acme", conformance.Now()))
	conformance.MustErr(t, "second user with the same username", err, storeerr.ErrAlreadyExists)
}

func testDuplicateUserID(t *testing.T, s auth.Store) {
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()))
	err := s.CreateUser(context.Background(), newUser("usr_1", "other@example.com", "other", "acme", conformance.Now()))
	conformance.MustErr(t, "second user with the same id", err, storeerr.ErrAlreadyExists)
}

func testUsersWithoutUsername(t *testing.T, s auth.Store) {
	createUsers(t, s,
		newUser("usr_1", "a@example.com", "", "acme", conformance.Now()),
		newUser("usr_2", "b@example.com", "", "acme", conformance.Now()),
		newUser("usr_3", "c@example.com", "", "acme", conformance.Now()),
	)
	n, err := s.CountUsers(context.Background())
	conformance.MustOK(t, "count", err)
	if n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
	_, err = s.GetUserByUsername(context.Background(), "")
	conformance.MustErr(t, "get by empty username", err, storeerr.ErrNotFound)
}

func testUnknownUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s, newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()))
	_, err := s.GetUser(ctx, "usr_nope")
	conformance.MustErr(t, "get unknown id", err, storeerr.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "nobody@example.com")
	conformance.MustErr(t, "get unknown email", err, storeerr.ErrNotFound)
	_, err = s.GetUserByUsername(ctx, "nobody")
	conformance.MustErr(t, "get unknown username", err, storeerr.ErrNotFound)
}

func testGetUsers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	ada, bob := newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()), newUser("usr_2", "bob@example.com", "", "other", conformance.Now())
	createUsers(t, s, ada, bob, newUser("usr_3", "eve@example.com", "eve", "acme", conformance.Now()))
	got, err := s.GetUsers(ctx, []string{"usr_2", "usr_nope", "usr_1"})
	conformance.MustOK(t, "get users", err)
	slices.SortFunc(got, func(a, b auth.User) int { return strings.Compare(a.ID, b.ID) })
	if len(got) != 2 {
		t.Fatalf("got %d users, want usr_1 and usr_2 only", len(got))
	}
	checkUser(t, got[0], ada)
	checkUser(t, got[1], bob)
	none, err := s.GetUsers(ctx, nil)
	conformance.MustOK(t, "get no users", err)
	if len(none) != 0 {
		t.Errorf("no ids: got %d users", len(none))
	}
}

func testListUsersPaging(t *testing.T, s auth.Store) {
	ctx := context.Background()
	// Inserted out of order: the store must sort by id.
	for _, id := range []string{"usr_c", "usr_a", "usr_e", "usr_b", "usr_d"} {
		createUsers(t, s, newUser(id, id+"@example.com", "", "acme", conformance.Now()))
	}
	page, err := s.ListUsers(ctx, auth.UserQuery{Limit: 2})
	conformance.MustOK(t, "first page", err)
	mustIDs(t, "first page", page, "usr_a", "usr_b")

	page, err = s.ListUsers(ctx, auth.UserQuery{After: "usr_b", Limit: 2})
	conformance.MustOK(t, "second page", err)
	mustIDs(t, "second page", page, "usr_c", "usr_d")

	page, err = s.ListUsers(ctx, auth.UserQuery{After: "usr_d", Limit: 2})
	conformance.MustOK(t, "last page", err)
	mustIDs(t, "last page", page, "usr_e")

	page, err = s.ListUsers(ctx, auth.UserQuery{After: "usr_e", Limit: 2})
	conformance.MustOK(t, "past the end", err)
	mustIDs(t, "past the end", page)

	page, err = s.ListUsers(ctx, auth.UserQuery{Limit: 100})
	conformance.MustOK(t, "everything", err)
	mustIDs(t, "everything", page, "usr_a", "usr_b", "usr_c", "usr_d", "usr_e")
}

func testListUsersPrefix(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "alice@example.com", "wonder", "acme", conformance.Now()),
		newUser("usr_2", "bob@example.com", "alfred", "acme", conformance.Now()),
		newUser("usr_3", "carol@example.com", "", "acme", conformance.Now()),
		newUser("usr_4", "dave@al.example.com", "dave", "acme", conformance.Now()),
	)
	page, err := s.ListUsers(ctx, auth.UserQuery{Prefix: "al", Limit: 10})
	conformance.MustOK(t, "prefix al", err)
	mustIDs(t, "prefix al (email or username, never the middle)", page, "usr_1", "usr_2")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: "al", After: "usr_1", Limit: 10})
	conformance.MustOK(t, "prefix al after usr_1", err)
	mustIDs(t, "prefix al after usr_1", page, "usr_2")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: "carol@", Limit: 10})
	conformance.MustOK(t, "prefix carol@", err)
	mustIDs(t, "prefix carol@", page, "usr_3")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: "zed", Limit: 10})
	conformance.MustOK(t, "prefix zed", err)
	mustIDs(t, "prefix zed", page)
}

func testListUsersPrefixLiteral(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "a.b@example.com", "", "acme", conformance.Now()),
		newUser("usr_2", "axb@example.com", "", "acme", conformance.Now()),
		newUser("usr_3", "zz@example.com", "", "acme", conformance.Now()),
	)
	page, err := s.ListUsers(ctx, auth.UserQuery{Prefix: "a.b", Limit: 10})
	conformance.MustOK(t, "prefix a.b", err)
	mustIDs(t, "prefix a.b ('.' is not a wildcard)", page, "usr_1")

	page, err = s.ListUsers(ctx, auth.UserQuery{Prefix: ".*", Limit: 10})
	conformance.MustOK(t, "prefix .*", err)
	mustIDs(t, "prefix .* (not a pattern)", page)
}

func testListUsersOrg(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "a@example.com", "", "acme", conformance.Now()),
		newUser("usr_2", "b@example.com", "", "globex", conformance.Now()),
		newUser("usr_3", "c@example.com", "", "acme", conformance.Now()),
		newUser("usr_4", "ab@example.com", "", "globex", conformance.Now()),
	)
	page, err := s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", Limit: 10})
	conformance.MustOK(t, "org acme", err)
	mustIDs(t, "org acme", page, "usr_1", "usr_3")

	page, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "globex", Prefix: "a", Limit: 10})
	conformance.MustOK(t, "org globex, prefix a", err)
	mustIDs(t, "org globex, prefix a", page, "usr_4")

	page, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "initech", Limit: 10})
	conformance.MustOK(t, "unknown org", err)
	mustIDs(t, "unknown org", page)
}

func testCountUsers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	n, err := s.CountUsers(ctx)
	conformance.MustOK(t, "count empty", err)
	if n != 0 {
		t.Fatalf("empty store counts %d users", n)
	}
	for i := range 4 {
		createUsers(t, s, newUser(fmt.Sprintf("usr_%d", i), fmt.Sprintf("u%d@example.com", i), "", "acme", conformance.Now()))
	}
	n, err = s.CountUsers(ctx)
	conformance.MustOK(t, "count", err)
	if n != 4 {
		t.Errorf("count = %d, want 4", n)
	}
}

// race starts n goroutines that call f(i) at once and waits for all of them.
// testRevokeWinsOverTouch races rotations (TouchSession) against a revocation: whatever the
// interleaving, the session must end revoked. A store that updates by read-modify-write of the
// whole document would write a stale "not revoked" back.
func testLockReleases(t *testing.T, s auth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	_, err := s.LockReleasedAt(ctx, "usr_1")
	conformance.MustErr(t, "a user never released", err, storeerr.ErrNotFound)
	conformance.MustOK(t, "release", s.ReleaseLock(ctx, "usr_1", t0))
	conformance.MustOK(t, "release again, later", s.ReleaseLock(ctx, "usr_1", t0.Add(time.Minute)))
	conformance.MustOK(t, "release another user", s.ReleaseLock(ctx, "usr_10", t0))
	if at, err := s.LockReleasedAt(ctx, "usr_1"); err != nil || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("LockReleasedAt(usr_1) = %v, %v; want the latest release %v", at, err, t0.Add(time.Minute))
	}
	if at, err := s.LockReleasedAt(ctx, "usr_10"); err != nil || !at.Equal(t0) {
		t.Errorf("LockReleasedAt(usr_10) = %v, %v; want %v", at, err, t0)
	}
}

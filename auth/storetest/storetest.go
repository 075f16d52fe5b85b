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
		{"ShouldPageUsersInOrderOfCreation", testListUsersPaging},
		{"ShouldListEachUserAsItIsAfterEveryChange", testListUsersFollowsChanges},
		{"ShouldListEveryOneOfManyConcurrentlyCreatedUsersOnce", testListUsersManyPages},
		{"ShouldFilterUsersByEmailOrUsernamePrefix", testListUsersPrefix},
		{"ShouldTreatThePrefixAsLiteralText", testListUsersPrefixLiteral},
		{"ShouldFilterUsersByOrganization", testListUsersOrg},
		{"ShouldSayWhetherItHasUsers", testAnyUsers},

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
	if any, _ := s.AnyUsers(context.Background()); any {
		t.Error("an update of a deleted user created one")
	}
	mustIDs(t, "listing after an update of a deleted user", listAll(t, s, "acme", ""))
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
	if users := listAll(t, s, "acme", "taken@"); len(users) != 1 {
		t.Errorf("the listing shows %d users with the email, want 1", len(users))
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
	mustIDs(t, "listing after a rejected insert", listAll(t, s, "acme", ""), "usr_1")
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
	mustIDs(t, "listing", listAll(t, s, "acme", ""), "usr_1", "usr_2", "usr_3")
	_, err := s.GetUserByUsername(context.Background(), "")
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

// listAll pages through org's users with prefix, two at a time, following the cursors.
func listAll(t *testing.T, s auth.Store, org, prefix string) []auth.User {
	t.Helper()
	var all []auth.User
	cursor := ""
	for range 1000 {
		page, next, err := s.ListUsers(context.Background(), auth.UserQuery{OrgID: org, Prefix: prefix, After: cursor, Limit: 2})
		conformance.MustOK(t, "list users", err)
		if len(page) > 2 {
			t.Fatalf("a page of limit 2 holds %d users", len(page))
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatal("the cursors never end")
	return nil
}

func testListUsersPaging(t *testing.T, s auth.Store) {
	ctx := context.Background()
	// In order of creation, not of id.
	for _, id := range []string{"usr_c", "usr_a", "usr_e", "usr_b", "usr_d"} {
		createUsers(t, s, newUser(id, id+"@example.com", "", "acme", conformance.Now()))
	}
	page, next, err := s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", Limit: 2})
	conformance.MustOK(t, "first page", err)
	mustIDs(t, "first page", page, "usr_c", "usr_a")

	page, next, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", After: next, Limit: 2})
	conformance.MustOK(t, "second page", err)
	mustIDs(t, "second page", page, "usr_e", "usr_b")

	page, next, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", After: next, Limit: 2})
	conformance.MustOK(t, "last page", err)
	mustIDs(t, "last page", page, "usr_d")
	if next != "" {
		t.Errorf("the last page has a next cursor %q", next)
	}

	page, next, err = s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", Limit: 5})
	conformance.MustOK(t, "everything", err)
	mustIDs(t, "everything", page, "usr_c", "usr_a", "usr_e", "usr_b", "usr_d")
	if next != "" {
		t.Errorf("a page that holds every user has a next cursor %q", next)
	}
	for _, u := range page {
		if len(u.PasswordHash) != 0 {
			t.Errorf("the listing carries %s's password hash", u.ID)
		}
	}

	for _, bad := range []string{"usr_b", "x", "0.0", "1.-1", "1"} {
		_, _, err := s.ListUsers(ctx, auth.UserQuery{OrgID: "acme", After: bad, Limit: 2})
		conformance.MustErr(t, "a cursor the store did not return: "+bad, err, auth.ErrInvalidCursor)
	}
}

// testListUsersFollowsChanges: the listing shows each user as it is after every change, and
// neither a deleted user nor one whose creation was refused.
func testListUsersFollowsChanges(t *testing.T, s auth.Store) {
	ctx := context.Background()
	createUsers(t, s,
		newUser("usr_1", "ada@example.com", "ada", "acme", conformance.Now()),
		newUser("usr_2", "bob@example.com", "bob", "acme", conformance.Now()),
		newUser("usr_3", "eve@example.com", "", "acme", conformance.Now()),
	)
	conformance.MustOK(t, "update", s.UpdateUser(ctx, "usr_1", auth.UserChange{Email: ptr("ada@new.example.com"), Username: ptr(""), Disabled: ptr(true), UpdatedAt: conformance.Now()}))
	conformance.MustOK(t, "delete", s.DeleteUser(ctx, "usr_2"))
	err := s.UpdateUser(ctx, "usr_3", auth.UserChange{Email: ptr("ada@new.example.com"), UpdatedAt: conformance.Now()})
	conformance.MustErr(t, "take another's email", err, storeerr.ErrAlreadyExists)
	err = s.CreateUser(ctx, newUser("usr_4", "eve@example.com", "", "acme", conformance.Now()))
	conformance.MustErr(t, "create with a taken email", err, storeerr.ErrAlreadyExists)
	conformance.MustOK(t, "password change", s.UpdateUser(ctx, "usr_3", auth.UserChange{PasswordHash: []byte("new hash"), UpdatedAt: conformance.Now()}))

	all := listAll(t, s, "acme", "")
	mustIDs(t, "after the changes", all, "usr_1", "usr_3")
	if u := all[0]; u.Email != "ada@new.example.com" || u.Username != "" || !u.Disabled {
		t.Errorf("usr_1 is listed as %+v, want its new email, no username, disabled", u)
	}
	if u := all[1]; u.Email != "eve@example.com" || u.Disabled {
		t.Errorf("usr_3 is listed as %+v, want it unchanged", u)
	}
	mustIDs(t, "by its new email", listAll(t, s, "acme", "ada@new"), "usr_1")
	mustIDs(t, "by its old username", listAll(t, s, "acme", "ada"), "usr_1") // the email still starts with it
	mustIDs(t, "by a deleted user's", listAll(t, s, "acme", "bob"))
}

// testListUsersManyPages: more users than a chunk of the directory holds, concurrently created,
// each listed once.
func testListUsersManyPages(t *testing.T, s auth.Store) {
	const n, writers = 300, 8
	want := make([]string, n)
	conformance.Race(writers, func(w int) {
		for i := w; i < n; i += writers {
			id := fmt.Sprintf("usr_%03d", i)
			want[i] = id
			if err := s.CreateUser(context.Background(), newUser(id, id+"@example.com", "", "acme", conformance.Now())); err != nil {
				t.Errorf("create %s: %v", id, err)
			}
		}
	})
	got := listAll(t, s, "acme", "")
	ids := make([]string, len(got))
	for i, u := range got {
		ids[i] = u.ID
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Fatalf("listed %d users (%d distinct), want each of %d once", len(ids), len(slices.Compact(slices.Clone(ids))), n)
	}
	mustIDs(t, "prefix usr_29", listAll(t, s, "acme", "usr_29"), sortedByListing(got, "usr_29")...)
}

func sortedByListing(users []auth.User, prefix string) []string {
	var ids []string
	for _, u := range users {
		if strings.HasPrefix(u.Email, prefix) {
			ids = append(ids, u.ID)
		}
	}
	return ids
}

func testListUsersPrefix(t *testing.T, s auth.Store) {
	createUsers(t, s,
		newUser("usr_1", "alice@example.com", "wonder", "acme", conformance.Now()),
		newUser("usr_2", "bob@example.com", "alfred", "acme", conformance.Now()),
		newUser("usr_3", "carol@example.com", "", "acme", conformance.Now()),
		newUser("usr_4", "dave@al.example.com", "dave", "acme", conformance.Now()),
		newUser("usr_5", "al@example.com", "", "acme", conformance.Now()),
	)
	mustIDs(t, "prefix al (email or username, never the middle)", listAll(t, s, "acme", "al"), "usr_1", "usr_2", "usr_5")
	mustIDs(t, "prefix carol@", listAll(t, s, "acme", "carol@"), "usr_3")
	mustIDs(t, "prefix zed", listAll(t, s, "acme", "zed"))
}

func testListUsersPrefixLiteral(t *testing.T, s auth.Store) {
	createUsers(t, s,
		newUser("usr_1", "a.b@example.com", "", "acme", conformance.Now()),
		newUser("usr_2", "axb@example.com", "", "acme", conformance.Now()),
		newUser("usr_3", "zz@example.com", "", "acme", conformance.Now()),
	)
	mustIDs(t, "prefix a.b ('.' is not a wildcard)", listAll(t, s, "acme", "a.b"), "usr_1")
	mustIDs(t, "prefix .* (not a pattern)", listAll(t, s, "acme", ".*"))
}

func testListUsersOrg(t *testing.T, s auth.Store) {
	createUsers(t, s,
		newUser("usr_1", "a@example.com", "", "acme", conformance.Now()),
		newUser("usr_2", "b@example.com", "", "globex", conformance.Now()),
		newUser("usr_3", "c@example.com", "", "acme", conformance.Now()),
		newUser("usr_4", "ab@example.com", "", "globex", conformance.Now()),
		newUser("usr_5", "d@example.com", "", "", conformance.Now()),
	)
	mustIDs(t, "org acme", listAll(t, s, "acme", ""), "usr_1", "usr_3")
	mustIDs(t, "org globex, prefix a", listAll(t, s, "globex", "a"), "usr_4")
	mustIDs(t, "unknown org", listAll(t, s, "initech", ""))
	mustIDs(t, "no org is the default one", listAll(t, s, "", ""), "usr_5")
	mustIDs(t, "the default org by name", listAll(t, s, auth.DefaultOrgID, ""), "usr_5")
}

func testAnyUsers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	any, err := s.AnyUsers(ctx)
	conformance.MustOK(t, "any in an empty store", err)
	if any {
		t.Fatal("an empty store says it has users")
	}
	createUsers(t, s, newUser("usr_1", "u1@example.com", "", "acme", conformance.Now()))
	any, err = s.AnyUsers(ctx)
	conformance.MustOK(t, "any", err)
	if !any {
		t.Error("a store with a user says it has none")
	}
	conformance.MustOK(t, "delete", s.DeleteUser(ctx, "usr_1"))
	if any, _ = s.AnyUsers(ctx); any {
		t.Error("a store whose only user was deleted says it has users")
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

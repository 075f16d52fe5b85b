package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
)

// events is an audit.Recorder that keeps what it is given, and remembers which events were
// asked to be durable.
type events struct {
	mu      sync.Mutex
	list    []audit.Event
	durable []bool
	fail    error // returned by RecordDurable when set
}

func (r *events) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list, r.durable = append(r.list, e), append(r.durable, false)
	return nil
}

func (r *events) RecordDurable(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.list, r.durable = append(r.list, e), append(r.durable, true)
	return nil
}

// of returns the events of type typ about subject, and whether each was durable.
func (r *events) of(typ, subject string) ([]audit.Event, []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Event
	var durable []bool
	for i, e := range r.list {
		if e.Type == typ && e.Subject == subject {
			out, durable = append(out, e), append(durable, r.durable[i])
		}
	}
	return out, durable
}

// adminEnv is an env whose service records its events.
func adminEnv(t *testing.T, mutate func(*auth.Config)) (*env, *events) {
	t.Helper()
	e := &env{store: newMongoStore(t), master: newMasterKey(t), clock: newTestClock()}
	e.keys = loadKeySet(t, e.store, e.master, token.AlgEdDSA, e.clock.Now())
	rec := &events{}
	e.svc = e.newService(t, e.keys, func(c *auth.Config) {
		c.Audit = rec
		if mutate != nil {
			mutate(c)
		}
	})
	return e, rec
}

func ptr[T any](v T) *T { return &v }

// wantOneDurable checks that exactly one event of typ about subject was recorded, durably, and
// returns it.
func wantOneDurable(t *testing.T, rec *events, typ, subject string) audit.Event {
	t.Helper()
	got, durable := rec.of(typ, subject)
	if len(got) != 1 || !durable[0] {
		t.Fatalf("%s events about %s: %+v (durable %v), want exactly one, durable", typ, subject, got, durable)
	}
	return got[0]
}

func TestShouldCutADisabledUserOffAndLetItBackInOnceEnabled(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, nil)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	first, second := e.login(t, "ada"), e.login(t, "ada@example.com")
	_, key, err := e.svc.CreateAPIKey(ctx, apikey.Request{UserID: u.ID, OrgID: u.OrgID, Name: "ci", Permissions: []string{"users:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Caller(ctx, key); err != nil {
		t.Fatalf("the key before the user is disabled: %v", err)
	}

	got, changed, err := e.svc.UpdateUser(ctx, u.ID, auth.UserChanges{Disabled: ptr(true)})
	if err != nil || !got.Disabled || !slices.Equal(changed, []string{"disabled"}) {
		t.Fatalf("disable: %+v %v %v", got, changed, err)
	}
	for name, tok := range map[string]string{"first": first.AccessToken, "second": second.AccessToken} {
		_, _, err := e.svc.Caller(ctx, auth.Secret(tok))
		wantCode(t, "the "+name+" session's access token", err, apierr.TokenRevoked)
	}
	_, _, err = e.svc.Caller(ctx, key)
	wantCode(t, "the API key", err, apierr.TokenInvalid)
	_, err = e.svc.Refresh(ctx, auth.Secret(first.RefreshToken))
	wantCode(t, "refresh", err, apierr.TokenRevoked)
	_, _, err = e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	wantCode(t, "login with the right password", err, apierr.AccountDisabled)
	ev := wantOneDurable(t, rec, audit.UserDisabled, u.ID)
	if ev.Details["sessions_revoked"] != 2 || ev.Details["api_keys_revoked"] != 1 || ev.OrgID != "acme" {
		t.Errorf("USER_DISABLED event: %+v", ev)
	}
	if got, _ := rec.of(audit.UserUpdated, u.ID); len(got) != 0 {
		t.Errorf("disabling alone recorded USER_UPDATED too: %+v", got)
	}

	// Disabling a disabled user changes nothing and records nothing more.
	if _, changed, err := e.svc.UpdateUser(ctx, u.ID, auth.UserChanges{Disabled: ptr(true)}); err != nil || len(changed) != 0 {
		t.Fatalf("disable again: %v %v", changed, err)
	}
	wantOneDurable(t, rec, audit.UserDisabled, u.ID)

	// Enabled again: a new login works; the old sessions and the key stay dead.
	if _, changed, err := e.svc.UpdateUser(ctx, u.ID, auth.UserChanges{Disabled: ptr(false)}); err != nil || !slices.Equal(changed, []string{"disabled"}) {
		t.Fatalf("enable: %v %v", changed, err)
	}
	ev = wantOneDurable(t, rec, audit.UserUpdated, u.ID)
	if !slices.Equal(ev.Details["fields"].([]string), []string{"disabled"}) || ev.Details["disabled"] != false {
		t.Errorf("USER_UPDATED event of the re-enable: %+v", ev)
	}
	again := e.login(t, "ada")
	if _, _, err := e.svc.Caller(ctx, auth.Secret(again.AccessToken)); err != nil {
		t.Fatalf("a new login after re-enabling: %v", err)
	}
	_, _, err = e.svc.Caller(ctx, auth.Secret(first.AccessToken))
	wantCode(t, "an old session after re-enabling", err, apierr.TokenRevoked)
	_, _, err = e.svc.Caller(ctx, key)
	wantCode(t, "the API key after re-enabling", err, apierr.TokenInvalid)
}

func TestShouldUpdateEmailAndUsernameAndSayWhichOneIsTaken(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, nil)
	ctx := context.Background()
	ada := e.createUser(t, "ada@example.com", "ada")
	e.createUser(t, "bob@example.com", "bob")

	e.clock.Advance(time.Minute)
	got, changed, err := e.svc.UpdateUser(ctx, ada.ID, auth.UserChanges{Email: ptr("  Ada.Lovelace@Example.COM "), Username: ptr("Lovelace")})
	if err != nil || got.Email != "ada.lovelace@example.com" || got.Username != "lovelace" || !slices.Equal(changed, []string{"email", "username"}) ||
		!got.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("update: %+v %v %v", got, changed, err)
	}
	if stored, _ := e.store.GetUser(ctx, ada.ID); stored.Email != got.Email || stored.Username != got.Username ||
		!stored.UpdatedAt.Equal(got.UpdatedAt) || !stored.CreatedAt.Equal(ada.CreatedAt) {
		t.Fatalf("stored after update: %+v, want %+v", stored, got)
	}
	ev := wantOneDurable(t, rec, audit.UserUpdated, ada.ID)
	b, _ := json.Marshal(ev.Details)
	if string(b) != `{"fields":["email","username"]}` {
		t.Errorf("USER_UPDATED details = %s, want the field names only", b)
	}
	e.login(t, "lovelace")

	for _, tc := range []struct {
		name string
		ch   auth.UserChanges
		want error
	}{
		{"another user's email", auth.UserChanges{Email: ptr("BOB@example.com")}, auth.ErrEmailTaken},
		{"another user's username", auth.UserChanges{Username: ptr("bob")}, auth.ErrUsernameTaken},
		{"a free email and another user's username", auth.UserChanges{Email: ptr("free@example.com"), Username: ptr("bob"), Disabled: ptr(true)}, auth.ErrUsernameTaken},
	} {
		_, _, err := e.svc.UpdateUser(ctx, ada.ID, tc.ch)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name  string
		ch    auth.UserChanges
		field string
	}{
		{"a malformed email", auth.UserChanges{Email: ptr("not an email"), Disabled: ptr(true)}, "email"},
		{"a malformed username", auth.UserChanges{Username: ptr("a"), Disabled: ptr(true)}, "username"},
	} {
		_, _, err := e.svc.UpdateUser(ctx, ada.ID, tc.ch)
		if apierr.CodeOf(err) != apierr.InvalidArgument || apierr.From(err).Details["field"] != tc.field {
			t.Errorf("%s: err = %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
	// Nothing of a refused update was written or recorded.
	if stored, _ := e.store.GetUser(ctx, ada.ID); stored.Email != "ada.lovelace@example.com" || stored.Username != "lovelace" || stored.Disabled {
		t.Fatalf("stored after refused updates: %+v", stored)
	}
	wantOneDurable(t, rec, audit.UserUpdated, ada.ID)
	// The same values again: no change, no event.
	if _, changed, err := e.svc.UpdateUser(ctx, ada.ID, auth.UserChanges{Email: ptr("ada.lovelace@example.com")}); err != nil || len(changed) != 0 {
		t.Fatalf("an update to the same email: %v %v", changed, err)
	}
	wantOneDurable(t, rec, audit.UserUpdated, ada.ID)
	_, _, err = e.svc.UpdateUser(ctx, "usr_nope", auth.UserChanges{Disabled: ptr(true)})
	wantCode(t, "an unknown user", err, apierr.NotFound)
}

func TestShouldDeleteAUserAndItsCredentials(t *testing.T) {
	t.Parallel()
	for _, erase := range []bool{false, true} {
		t.Run(map[bool]string{false: "delete", true: "erase"}[erase], func(t *testing.T) {
			t.Parallel()
			e, rec := adminEnv(t, nil)
			ctx := context.Background()
			u := e.createUser(t, "ada@example.com", "ada")
			tok := e.login(t, "ada")
			_, key, err := e.svc.CreateAPIKey(ctx, apikey.Request{UserID: u.ID, OrgID: u.OrgID, Name: "ci", Permissions: []string{"users:read"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.store.PutMFA(ctx, mfa.Factor{UserID: u.ID, SecretSealed: []byte("sealed"), Enabled: true}); err != nil {
				t.Fatal(err)
			}
			var deprovisioned []string
			err = e.svc.DeleteUser(ctx, u.ID, auth.DeleteUserOptions{Erase: erase, Deprovision: func(_ context.Context, d auth.User) error {
				if !d.Disabled {
					t.Errorf("deprovisioned before being disabled: %+v", d)
				}
				deprovisioned = append(deprovisioned, d.ID)
				return nil
			}})
			if err != nil {
				t.Fatalf("delete: %v", err)
			}
			if !slices.Equal(deprovisioned, []string{u.ID}) {
				t.Errorf("deprovisioned %v, want %s once", deprovisioned, u.ID)
			}
			_, err = e.svc.GetUser(ctx, u.ID)
			wantCode(t, "get the deleted user", err, apierr.NotFound)
			_, _, err = e.svc.Caller(ctx, auth.Secret(tok.AccessToken))
			wantCode(t, "its access token", err, apierr.TokenRevoked)
			_, _, err = e.svc.Caller(ctx, key)
			wantCode(t, "its API key", err, apierr.TokenInvalid)
			_, err = e.svc.Refresh(ctx, auth.Secret(tok.RefreshToken))
			if erase {
				wantCode(t, "its erased refresh token", err, apierr.TokenInvalid)
			} else {
				wantCode(t, "its refresh token", err, apierr.TokenRevoked)
			}
			_, _, err = e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
			if !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Errorf("login of the deleted user: %v, want the unknown-account answer", err)
			}
			if _, err := e.store.GetMFA(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("its second factor after deletion: %v", err)
			}
			sessions, _ := e.store.ListUserSessions(ctx, u.ID)
			keys, _ := e.store.ListAPIKeys(ctx, u.ID)
			if kept := len(sessions) + len(keys); (kept == 0) != erase {
				t.Errorf("erase %v: %d sessions and %d keys kept", erase, len(sessions), len(keys))
			}
			ev := wantOneDurable(t, rec, audit.UserDeleted, u.ID)
			if ev.Details["erase"] != erase || ev.Details["sessions_revoked"] != 1 || ev.Details["api_keys_revoked"] != 1 {
				t.Errorf("USER_DELETED event: %+v", ev)
			}
			err = e.svc.DeleteUser(ctx, u.ID, auth.DeleteUserOptions{})
			wantCode(t, "delete again", err, apierr.NotFound)
			// The email and username are free again: a new account, with a new id.
			if again := e.createUser(t, "ada@example.com", "ada"); again.ID == u.ID {
				t.Errorf("the new account got the deleted one's id")
			}
		})
	}
}

func TestShouldLeaveAUserDisabledWhenItsDeletionFailsHalfWay(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, nil)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	tok := e.login(t, "ada")
	boom := apierr.New(apierr.Internal, "rbac is down")
	err := e.svc.DeleteUser(ctx, u.ID, auth.DeleteUserOptions{Deprovision: func(context.Context, auth.User) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("delete with a failing deprovision: %v", err)
	}
	stored, err := e.store.GetUser(ctx, u.ID)
	if err != nil || !stored.Disabled {
		t.Fatalf("after a failed deletion the user is %+v (%v), want it kept and disabled", stored, err)
	}
	_, _, err = e.svc.Caller(ctx, auth.Secret(tok.AccessToken))
	wantCode(t, "its access token", err, apierr.TokenRevoked)
	if got, _ := rec.of(audit.UserDeleted, u.ID); len(got) != 0 {
		t.Errorf("a failed deletion was recorded as done: %+v", got)
	}
	if err := e.svc.DeleteUser(ctx, u.ID, auth.DeleteUserOptions{}); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	wantOneDurable(t, rec, audit.UserDeleted, u.ID)
}

func TestShouldChangeAPasswordOnlyWithTheCurrentOne(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, func(c *auth.Config) {
		c.Lockout = throttle.NewLocalLockout(throttle.Policy{Attempts: 3, Window: time.Hour, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100}, nil)
	})
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	current, other := e.login(t, "ada"), e.login(t, "ada")
	next := auth.Secret("a brand new passphrase")

	self := token.Claims{Subject: u.ID, SessionID: current.SessionID}
	change := func(c token.Claims, cur, next auth.Secret) (int, error) {
		return e.svc.ChangePassword(ctx, c, auth.Proof{Password: cur}, next)
	}
	_, err := change(self, "wrong password!", next)
	wantCode(t, "a wrong current password", err, apierr.InvalidCredentials)
	for _, tc := range []struct {
		name          string
		current, next auth.Secret
		field         string
	}{
		{"no current password", "", next, "current_password"},
		{"a common new password", testPassword, "password1", "new_password"},
		{"a short new password", testPassword, "short", "new_password"},
		{"a new password over 72 bytes", testPassword, auth.Secret(strings.Repeat("x", 73)), "new_password"},
	} {
		_, err := change(self, tc.current, tc.next)
		if apierr.CodeOf(err) != apierr.InvalidArgument || apierr.From(err).Details["field"] != tc.field {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), tc.next.Reveal()) && len(tc.next.Reveal()) > 0 {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	// Nothing changed: both sessions live, the old password works.
	for _, tok := range []auth.Tokens{current, other} {
		if _, _, err := e.svc.Caller(ctx, auth.Secret(tok.AccessToken)); err != nil {
			t.Fatalf("a session after refused changes: %v", err)
		}
	}
	e.login(t, "ada")

	n, err := change(self, testPassword, next)
	if err != nil || n != 2 { // other, and the check login just above
		t.Fatalf("change: revoked %d, %v; want the 2 other sessions", n, err)
	}
	if _, _, err := e.svc.Caller(ctx, auth.Secret(current.AccessToken)); err != nil {
		t.Fatalf("the session the change was made from: %v", err)
	}
	_, _, err = e.svc.Caller(ctx, auth.Secret(other.AccessToken))
	wantCode(t, "another session", err, apierr.TokenRevoked)
	_, _, err = e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	wantCode(t, "the old password", err, apierr.InvalidCredentials)
	if _, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: next}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	ev := wantOneDurable(t, rec, audit.UserUpdated, u.ID)
	b, _ := json.Marshal(ev.Details)
	if string(b) != `{"by":"self","fields":["password"],"sessions_revoked":2}` {
		t.Errorf("USER_UPDATED details = %s", b)
	}

	// Wrong current passwords count as failed logins: the third locks the account, after which
	// even the right one is refused, at login too.
	for range 3 {
		_, err := change(token.Claims{Subject: u.ID}, "wrong password!", "yet another passphrase")
		wantCode(t, "a wrong current password", err, apierr.InvalidCredentials)
	}
	_, err = change(token.Claims{Subject: u.ID}, next, "yet another passphrase")
	wantCode(t, "the right current password of a locked account", err, apierr.InvalidCredentials)
	_, _, err = e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: next})
	wantCode(t, "login of the locked account", err, apierr.InvalidCredentials)
	failed, _ := rec.of(audit.AuthFailed, u.ID)
	during := 0
	for _, ev := range failed {
		if ev.Details["during"] == "password_change" && ev.Details["reason"] == audit.ReasonInvalidPassword {
			during++
		}
	}
	if during != 4 {
		t.Errorf("%d AUTH_FAILED events of password changes, want 4 (one per wrong current password): %+v", during, failed)
	}
}

func TestShouldResetAPasswordAndEndEverySession(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, nil)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	a, b := e.login(t, "ada"), e.login(t, "ada")
	_, err := e.svc.ResetPassword(ctx, u.ID, "12345678")
	if apierr.From(err).Details["field"] != "new_password" {
		t.Fatalf("a common new password: %v", err)
	}
	n, err := e.svc.ResetPassword(ctx, u.ID, "an administrator's choice")
	if err != nil || n != 2 {
		t.Fatalf("reset: revoked %d, %v", n, err)
	}
	for _, tok := range []auth.Tokens{a, b} {
		_, _, err := e.svc.Caller(ctx, auth.Secret(tok.AccessToken))
		wantCode(t, "a session after the reset", err, apierr.TokenRevoked)
	}
	if _, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: "an administrator's choice"}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	ev := wantOneDurable(t, rec, audit.UserUpdated, u.ID)
	if ev.Details["by"] != "admin" || ev.Severity != audit.Warning {
		t.Errorf("USER_UPDATED event of a reset: %+v", ev)
	}
	_, err = e.svc.ResetPassword(ctx, "usr_nope", "an administrator's choice")
	wantCode(t, "an unknown user", err, apierr.NotFound)
}

func TestShouldFailADisableWhoseAuditRecordIsNotWrittenButKeepTheUserCutOff(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, nil)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	tok := e.login(t, "ada")
	rec.mu.Lock()
	rec.fail = errors.New("audit store unreachable")
	rec.mu.Unlock()
	_, _, err := e.svc.UpdateUser(ctx, u.ID, auth.UserChanges{Disabled: ptr(true)})
	wantCode(t, "disable without an audit record", err, apierr.Internal)
	_, _, err = e.svc.Caller(ctx, auth.Secret(tok.AccessToken))
	wantCode(t, "the disabled user's token", err, apierr.TokenRevoked)
}

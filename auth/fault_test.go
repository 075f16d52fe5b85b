package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// When the database goes away under a running service, every flow that needs it answers
// INTERNAL: no login, refresh, caller, credential or account change succeeds on what it could
// not read or write, and nothing is answered as if the account did not exist.
func TestShouldFailClosedInEveryFlowWhenTheDatabaseIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, lose := mongotest.LosableDatabase(t)
	store, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, master: newMasterKey(t), clock: newTestClock()}
	e.keys = loadKeySet(t, e.store, e.master, token.AlgEdDSA, e.clock.Now())
	e.svc = e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL = -1 })
	u := e.createUser(t, "ada@example.com", "ada")
	tokens := e.login(t, "ada")
	claims := e.validate(t, e.svc, tokens.AccessToken)
	lose()

	email, disabled := "ada2@example.com", true
	type result struct {
		call string
		err  error
	}
	results := []result{
		{"Login", third(e.svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword}))},
		{"Refresh", second(e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken)))},
		{"Caller", third(e.svc.Caller(ctx, auth.Secret(tokens.AccessToken)))},
		{"Revoke", second(e.svc.Revoke(ctx, auth.Secret(tokens.AccessToken)))},
		{"Logout", second(e.svc.Logout(ctx, &claims, "", true))},
		{"Sessions", second(e.svc.Sessions(ctx, claims))},
		{"CreateUser", second(e.svc.CreateUser(ctx, auth.NewUser{Email: "bob@example.com", Password: testPassword, OrgID: "acme"}))},
		{"GetUser", second(e.svc.GetUser(ctx, u.ID))},
		{"FindUser", second(e.svc.FindUser(ctx, "ada@example.com", ""))},
		{"ListUsers", third(e.svc.ListUsers(ctx, "", "", 10, ""))},
		{"NoUsers", second(e.svc.NoUsers(ctx))},
		{"UpdateUser", third(e.svc.UpdateUser(ctx, u.ID, auth.UserChanges{Email: &email, Disabled: &disabled}))},
		{"ResetPassword", second(e.svc.ResetPassword(ctx, u.ID, "a brand new passphrase"))},
		{"ChangePassword", second(e.svc.ChangePassword(ctx, claims, auth.Proof{Password: testPassword}, "a brand new passphrase"))},
		{"DeleteUser", e.svc.DeleteUser(ctx, u.ID, auth.DeleteUserOptions{Erase: true})},
		{"CreateAPIKey", third(e.svc.CreateAPIKey(ctx, apikey.Request{UserID: u.ID, OrgID: "acme", Name: "ci", Permissions: []string{"projects:read"}}))},
		{"ListAPIKeys", second(e.svc.ListAPIKeys(ctx, u.ID))},
		{"RevokeAPIKeysOf", second(e.svc.RevokeAPIKeysOf(ctx, u.ID))},
		{"EnrollMFA", second(e.svc.EnrollMFA(ctx, u))},
		{"VerifyMFA", e.svc.VerifyMFA(ctx, u, "123456")},
		{"StepUp", e.svc.StepUp(ctx, u, claims, auth.Proof{Password: testPassword}, "test", true)},
		{"ReleaseLock", e.svc.ReleaseLock(ctx, u.ID, "test")},
		{"RotateSigningKey", second(e.svc.RotateSigningKey(ctx))},
		{"Bootstrap", third(e.svc.Bootstrap(ctx, "root@example.com", testPassword, nil))},
	}
	for _, r := range results {
		if apierr.CodeOf(r.err) != apierr.Internal {
			t.Errorf("%s without a database: %v, want INTERNAL", r.call, r.err)
		}
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

// downLockout is a lockout whose store cannot be reached; after n good Begins, everything fails.
type downLockout struct {
	throttle.Lockout
	failBegin, failFail, failSucceed, failUnlock bool
}

var errLockoutDown = errors.New("lockout store unreachable")

func (d *downLockout) Begin(ctx context.Context, account, source string) (throttle.Attempt, error) {
	if d.failBegin {
		return throttle.Attempt{}, errLockoutDown
	}
	return d.Lockout.Begin(ctx, account, source)
}

func (d *downLockout) Fail(ctx context.Context, account, source string) error {
	if d.failFail {
		return errLockoutDown
	}
	return d.Lockout.Fail(ctx, account, source)
}

func (d *downLockout) Succeed(ctx context.Context, account, source string) error {
	if d.failSucceed {
		return errLockoutDown
	}
	return d.Lockout.Succeed(ctx, account, source)
}

func (d *downLockout) Unlock(ctx context.Context, account string) error {
	if d.failUnlock {
		return errLockoutDown
	}
	return d.Lockout.Unlock(ctx, account)
}

// When the lockout cannot be asked, reserved, counted or cleared, no password check succeeds
// (fail closed), and the answer says the lockout is unavailable rather than blaming the password.
func TestShouldRefuseEveryPasswordCheckWhenTheLockoutIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	for _, tc := range []struct {
		name     string
		down     downLockout
		password auth.Secret
	}{
		{"the reservation fails", downLockout{failBegin: true}, testPassword},
		{"counting a wrong password fails", downLockout{failFail: true}, "not the password"},
		{"clearing after the right password fails", downLockout{failSucceed: true}, testPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := tc.down
			down.Lockout = throttle.NewLocalLockout(throttle.DefaultPolicy, e.clock.Now)
			svc := e.newService(t, e.keys, func(c *auth.Config) { c.Lockout = &down })
			_, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: tc.password})
			if apierr.CodeOf(err) != apierr.Internal || !strings.Contains(err.Error(), "unavailable") {
				t.Errorf("login: %v, want INTERNAL (lockout unavailable)", err)
			}
			tokens := e.login(t, "ada")
			claims := e.validate(t, e.svc, tokens.AccessToken)
			if err := svc.StepUp(ctx, u, claims, auth.Proof{Password: tc.password}, "test", true); apierr.CodeOf(err) != apierr.Internal {
				t.Errorf("step-up: %v, want INTERNAL", err)
			}
		})
	}
	down := &downLockout{Lockout: throttle.NewLocalLockout(throttle.DefaultPolicy, e.clock.Now), failUnlock: true}
	svc := e.newService(t, e.keys, func(c *auth.Config) { c.Lockout = down })
	for call, err := range map[string]error{"Unlock": svc.Unlock(ctx, u.ID), "ReleaseLock": svc.ReleaseLock(ctx, u.ID, "test")} {
		if apierr.CodeOf(err) != apierr.Internal {
			t.Errorf("%s with the lockout down: %v, want INTERNAL", call, err)
		}
	}
}

// A user disabled or deleted behind the service's back (by another instance, or in the store
// directly) gets nothing more from its refresh token or its API keys, and a token without a
// session cannot be revoked as if it had one.
func TestShouldRefuseCredentialsOfAUserChangedBehindTheService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.svc = e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL = -1 })
	ada := e.createUser(t, "ada@example.com", "ada")
	tokens := e.login(t, "ada")
	_, key, err := e.svc.CreateAPIKey(ctx, apikey.Request{UserID: ada.ID, OrgID: "acme", Name: "ci", Permissions: []string{"projects:read"}})
	if err != nil {
		t.Fatal(err)
	}
	disabled := true
	if err := e.store.UpdateUser(ctx, ada.ID, auth.UserChange{Disabled: &disabled, UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken)); apierr.CodeOf(err) != apierr.AccountDisabled {
		t.Errorf("refresh of a disabled user: %v, want ACCOUNT_DISABLED", err)
	}
	if _, _, err := e.svc.Caller(ctx, key); apierr.CodeOf(err) != apierr.TokenInvalid {
		t.Errorf("an API key of a disabled user: %v, want TOKEN_INVALID", err)
	}

	bob := e.createUser(t, "bob@example.com", "bob")
	bobTokens := e.login(t, "bob")
	if err := e.store.DeleteUser(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refresh(ctx, auth.Secret(bobTokens.RefreshToken)); apierr.CodeOf(err) != apierr.TokenRevoked {
		t.Errorf("refresh of a deleted user: %v, want TOKEN_REVOKED", err)
	}

	sessionless, err := auth.MintAccessToken(e.svc, ada.ID, "", "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Revoke(ctx, auth.Secret(sessionless)); apierr.CodeOf(err) != apierr.TokenInvalid {
		t.Errorf("revoking a token without a session: %v, want TOKEN_INVALID", err)
	}
	carol := e.createUser(t, "carol@example.com", "carol")
	_, carolKey, err := e.svc.CreateAPIKey(ctx, apikey.Request{UserID: carol.ID, OrgID: "acme", Name: "ci", Permissions: []string{"projects:read"}})
	if err != nil {
		t.Fatal(err)
	}
	keyClaims, err := e.svc.Validate(ctx, carolKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Logout(ctx, &keyClaims, "", false); apierr.CodeOf(err) != apierr.InvalidArgument {
		t.Errorf("logging out the current session of an API key: %v, want INVALID_ARGUMENT", err)
	}
}

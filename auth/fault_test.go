package auth_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
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

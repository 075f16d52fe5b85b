package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/session"
)

// A grant with an end (a single sign-on's) refreshes until then and never after, however
// often it was refreshed.
func TestShouldEndAGrantAtItsNotAfterWhateverItsRefreshes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.svc.CreateUser(ctx, auth.NewUser{Email: "g@example.com", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	tok, err := e.svc.OpenGrant(ctx, "ses_grantnotafter00000000000", u.ID, session.Grant{ClientID: "mcp_c", Resource: "urn:test",
		Scopes: []string{"users:read"}, AuthTime: now}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(50 * time.Minute)
	if tok, err = e.svc.RefreshGrant(ctx, auth.Secret(tok.RefreshToken), "mcp_c", nil); err != nil {
		t.Fatalf("refresh before the end: %v", err)
	}
	e.clock.Advance(20 * time.Minute)
	if _, err := e.svc.RefreshGrant(ctx, auth.Secret(tok.RefreshToken), "mcp_c", nil); apierr.CodeOf(err) != apierr.TokenExpired {
		t.Fatalf("refresh after the end: %v, want TOKEN_EXPIRED", err)
	}
	if _, err := e.svc.Validate(ctx, auth.Secret(tok.AccessToken)); apierr.CodeOf(err) != apierr.TokenRevoked && apierr.CodeOf(err) != apierr.TokenExpired {
		t.Errorf("the grant's access token after its end: %v, want refused", err)
	}
}

// A session a single sign-on opened for mcpauth's own tools (sso_login) refreshes with
// auth_refresh until the connector's lifetime ends, and never after; a disabled account gets none.
func TestShouldEndAnSSOSessionAtItsNotAfterWhateverItsRefreshes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.svc.CreateUser(ctx, auth.NewUser{Email: "sso@example.com", NoPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, got, err := e.svc.OpenSSOSession(ctx, u.ID, "op", e.clock.Now().Add(time.Hour), "stdio")
	if err != nil || got.ID != u.ID || got.PasswordHash != nil {
		t.Fatalf("open: %v %+v", err, got)
	}
	e.clock.Advance(50 * time.Minute)
	if tok, err = e.svc.Refresh(ctx, auth.Secret(tok.RefreshToken)); err != nil {
		t.Fatalf("refresh before the end: %v", err)
	}
	e.clock.Advance(20 * time.Minute)
	if _, err := e.svc.Refresh(ctx, auth.Secret(tok.RefreshToken)); apierr.CodeOf(err) != apierr.TokenExpired {
		t.Fatalf("refresh after the end: %v, want TOKEN_EXPIRED", err)
	}
	if _, _, err := e.svc.UpdateUser(ctx, u.ID, auth.UserChanges{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.OpenSSOSession(ctx, u.ID, "op", e.clock.Now().Add(time.Hour), "stdio"); apierr.CodeOf(err) != apierr.AccountDisabled {
		t.Errorf("a disabled account's sso session: %v, want ACCOUNT_DISABLED", err)
	}
}

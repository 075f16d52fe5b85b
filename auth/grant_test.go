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
		Scopes: []string{"users:read"}, AuthTime: now, NotAfter: now.Add(time.Hour)})
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

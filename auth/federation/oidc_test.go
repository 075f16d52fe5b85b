package federation_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/internal/mcptest"
)

type provider struct{ issuer string }

func freeRedirect(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String() + "/sso/op/callback"
}

func TestShouldProveAnIdentityThroughARealOpenIDProvider(t *testing.T) {
	redirect := freeRedirect(t)
	issuer, _ := mcptest.StartOpenIDProvider(t, redirect, map[string]map[string]any{
		"ada":   {"email": "ada@example.com", "email_verified": true, "preferred_username": "ada", "groups": []string{"eng", "admins"}},
		"grace": {"email": "grace@example.com", "preferred_username": "grace"}, // no email_verified
	})
	op := provider{issuer: issuer}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := federation.NewOIDC(ctx, federation.OIDCConfig{ID: "op", Name: "Test OP", Issuer: op.issuer, ClientID: mcptest.ProviderClientID,
		ClientSecret: mcptest.ProviderClientSecret, RedirectURL: redirect, Scopes: []string{"openid", "email", "profile", "groups"}})
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(login string) (federation.Identity, error) {
		t.Helper()
		state, nonce, verifier := mcptest.RandomHex(16), mcptest.RandomHex(16), oauth2.GenerateVerifier()
		back, err := mcptest.ProviderLogin(ctx, nil, c.LoginURL(state, nonce, verifier), redirect, login)
		if err != nil {
			t.Fatalf("the provider's pages: %v", err)
		}
		if back.Query().Get("state") != state || back.Query().Get("code") == "" {
			t.Fatalf("callback %s: want the code and this sign-in's state", back)
		}
		return c.HandleCallback(ctx, back.Query().Get("code"), nonce, verifier)
	}
	id, err := signIn("ada")
	if err != nil {
		t.Fatal(err)
	}
	if id.Issuer != op.issuer || id.Subject != "ada" || id.Email != "ada@example.com" || !id.EmailVerified ||
		id.Username != "ada" || !slices.Equal(id.Groups, []string{"eng", "admins"}) || id.ConnectorID != "op" {
		t.Errorf("identity %+v", id)
	}
	id, err = signIn("grace")
	if err != nil || id.EmailVerified || id.Email != "grace@example.com" {
		t.Errorf("an email the provider did not say is verified: %+v %v; want email_verified false", id, err)
	}

	t.Run("a code is bound to its nonce and verifier", func(t *testing.T) {
		state, nonce, verifier := mcptest.RandomHex(16), mcptest.RandomHex(16), oauth2.GenerateVerifier()
		back, err := mcptest.ProviderLogin(ctx, nil, c.LoginURL(state, nonce, verifier), redirect, "ada")
		if err != nil {
			t.Fatal(err)
		}
		code := back.Query().Get("code")
		if _, err := c.HandleCallback(ctx, code, nonce, oauth2.GenerateVerifier()); !federation.IsRefused(err) {
			t.Errorf("another verifier: %v, want a refusal", err)
		}
		// The provider spent the code on the refused exchange (one use): a second sign-in.
		state, nonce, verifier = mcptest.RandomHex(16), mcptest.RandomHex(16), oauth2.GenerateVerifier()
		back, err = mcptest.ProviderLogin(ctx, nil, c.LoginURL(state, nonce, verifier), redirect, "ada")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.HandleCallback(ctx, back.Query().Get("code"), "another-nonce", verifier); !federation.IsRefused(err) {
			t.Errorf("another nonce: %v, want a refusal", err)
		}
	})

	t.Run("a provider that names another issuer is refused at discovery", func(t *testing.T) {
		_, err := federation.NewOIDC(ctx, federation.OIDCConfig{ID: "op", Issuer: "http://localhost" + op.issuer[len("http://127.0.0.1"):],
			ClientID: mcptest.ProviderClientID, RedirectURL: redirect})
		if err == nil {
			t.Fatal("discovery under another issuer name accepted")
		}
	})
}

package federation_test

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/internal/mcptest"
)

// provider is a running node-oidc-provider (testdata/clients/oidc-op.mjs).
type provider struct {
	issuer string
}

const (
	testClient = "mcpauth"
	testSecret = "op-client-secret-for-tests-only"
)

// startProvider starts a real OpenID Provider with one confidential client whose redirect URI
// is redirect, and the accounts (login → claims).
func startProvider(t *testing.T, redirect string, accounts map[string]map[string]any) provider {
	t.Helper()
	nc := mcptest.FindNodeClients(t)
	cfg, _ := json.Marshal(map[string]any{
		"clients": []map[string]any{{"client_id": testClient, "client_secret": testSecret, "redirect_uris": []string{redirect},
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}}},
		"accounts": accounts,
	})
	p := mcptest.StartProc(t, nc.Node, append(mcptest.BaseEnv(), "OP_CONFIG="+string(cfg)), nil, filepath.Join(nc.Dir, "oidc-op.mjs"))
	m, err := p.Stdout.WaitFor(regexp.MustCompile(`LISTENING (\S+)`), p.Exited, 30*time.Second)
	if err != nil {
		t.Fatalf("the OpenID Provider did not start: %v\n%s", err, p.Stderr)
	}
	return provider{issuer: m[1]}
}

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
	op := startProvider(t, redirect, map[string]map[string]any{
		"ada":   {"email": "ada@example.com", "email_verified": true, "preferred_username": "ada", "groups": []string{"eng", "admins"}},
		"grace": {"email": "grace@example.com", "preferred_username": "grace"}, // no email_verified
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := federation.NewOIDC(ctx, federation.OIDCConfig{ID: "op", Name: "Test OP", Issuer: op.issuer, ClientID: testClient,
		ClientSecret: testSecret, RedirectURL: redirect, Scopes: []string{"openid", "email", "profile", "groups"}})
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
			ClientID: testClient, RedirectURL: redirect})
		if err == nil {
			t.Fatal("discovery under another issuer name accepted")
		}
	})
}

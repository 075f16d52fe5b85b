package federation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bduf/mcpauth/auth/federation"
)

// scriptedProvider is a provider whose token endpoint answers the ID token the test sets: the
// ways a real one could be wrong (or impersonated) that a certified OP cannot be made to show.
type scriptedProvider struct {
	*httptest.Server
	key  *ecdsa.PrivateKey
	mu   sync.Mutex
	next string
}

func newScriptedProvider(t *testing.T) *scriptedProvider {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := &scriptedProvider{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.URL, "authorization_endpoint": p.URL + "/auth",
			"token_endpoint": p.URL + "/token", "jwks_uri": p.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": p.next})
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *scriptedProvider) answer(tok string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = tok
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestShouldRefuseIDTokensThatDoNotVerify(t *testing.T) {
	p := newScriptedProvider(t)
	ctx := context.Background()
	c, err := federation.NewOIDC(ctx, federation.OIDCConfig{ID: "scripted", Issuer: p.URL, ClientID: "mcpauth",
		ClientSecret: "shared-secret", RedirectURL: "http://127.0.0.1:1/cb"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": p.URL, "sub": "u1", "aud": "mcpauth", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(),
			"nonce": "n1", "email": "u1@example.com", "email_verified": true, "groups": []string{"eng"}}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tt := range []struct {
		name string
		tok  string
	}{
		{"signed by another key", sign(t, jwt.SigningMethodES256, other, "k1", good())},
		{"for another client", sign(t, jwt.SigningMethodES256, p.key, "k1", with("aud", "another-client"))},
		{"from another issuer", sign(t, jwt.SigningMethodES256, p.key, "k1", with("iss", "https://evil.example"))},
		{"expired", sign(t, jwt.SigningMethodES256, p.key, "k1", with("exp", now.Add(-time.Hour).Unix()))},
		{"without a nonce", sign(t, jwt.SigningMethodES256, p.key, "k1", with("nonce", nil))},
		{"another sign-in's nonce", sign(t, jwt.SigningMethodES256, p.key, "k1", with("nonce", "n2"))},
		{"HMAC with the client secret", sign(t, jwt.SigningMethodHS256, []byte("shared-secret"), "k1", good())},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", good())},
		{"no subject", sign(t, jwt.SigningMethodES256, p.key, "k1", with("sub", nil))},
		{"not a JWT", "garbage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.answer(tt.tok)
			id, err := c.HandleCallback(ctx, "code", "n1", "verifier")
			if !federation.IsRefused(err) {
				t.Errorf("identity %+v, error %v: want a refusal", id, err)
			}
		})
	}
	// The positive control: the same provider's good token is accepted.
	p.answer(sign(t, jwt.SigningMethodES256, p.key, "k1", good()))
	if id, err := c.HandleCallback(ctx, "code", "n1", "verifier"); err != nil || id.Subject != "u1" || !id.EmailVerified {
		t.Fatalf("the good token: %+v %v", id, err)
	}
}

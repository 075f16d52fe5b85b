package federation

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig configures a generic OpenID Connect connector.
type OIDCConfig struct {
	ID, Name string
	// Issuer is the provider's issuer: discovery is fetched from it and must name it exactly.
	Issuer                 string
	ClientID, ClientSecret string
	// RedirectURL is mcpauth's callback for this connector.
	RedirectURL string
	// Scopes default to openid, email and profile (openid is always asked).
	Scopes []string
	// Claim names: default email, preferred_username and groups.
	EmailClaim, UsernameClaim, GroupsClaim string
	// SigningAlgs are the ID-token algorithms accepted (default RS256, ES256, PS256, EdDSA:
	// never none, never HMAC with the client secret).
	SigningAlgs []string
	// HTTPClient reaches the provider (default: 10 s timeout).
	HTTPClient *http.Client
	Now        func() time.Time
}

// OIDC is a generic OpenID Connect connector (go-oidc and x/oauth2): discovery with issuer
// equality, the authorization code flow with state, nonce and PKCE, the ID token verified by
// the provider's keys.
type OIDC struct {
	cfg      OIDCConfig
	oauth    oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	client   *http.Client
}

var _ CallbackConnector = (*OIDC)(nil)

// DefaultSigningAlgs are the ID-token algorithms a connector accepts unless configured.
var DefaultSigningAlgs = []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA}

// NewOIDC discovers the provider and returns the connector.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.ID == "" || cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc connector: id, issuer, client id and redirect URL are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.SigningAlgs) == 0 {
		cfg.SigningAlgs = DefaultSigningAlgs
	}
	for _, a := range cfg.SigningAlgs {
		if !slices.Contains(DefaultSigningAlgs, a) && a != oidc.RS384 && a != oidc.RS512 && a != oidc.ES384 && a != oidc.ES512 &&
			a != oidc.PS384 && a != oidc.PS512 {
			return nil, errors.New("oidc connector: signing algorithm " + a + " is not accepted (asymmetric ones only)")
		}
	}
	if cfg.EmailClaim == "" {
		cfg.EmailClaim = "email"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, s := range cmpScopes(cfg.Scopes) {
		if s != oidc.ScopeOpenID {
			scopes = append(scopes, s)
		}
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil { // unreachable, or a discovery document naming another issuer
		return nil, errf("discover %s: %w", cfg.Issuer, err)
	}
	return &OIDC{
		cfg: cfg,
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: cfg.RedirectURL, Scopes: scopes},
		provider: provider,
		verifier: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, SupportedSigningAlgs: cfg.SigningAlgs, Now: cfg.Now}),
		client:   cfg.HTTPClient,
	}, nil
}

func cmpScopes(s []string) []string {
	if len(s) == 0 {
		return []string{oidc.ScopeOpenID, "email", "profile"}
	}
	return s
}

// ID is the connector's id.
func (c *OIDC) ID() string { return c.cfg.ID }

// Name is what the login page shows.
func (c *OIDC) Name() string {
	if c.cfg.Name != "" {
		return c.cfg.Name
	}
	return c.cfg.ID
}

// LoginURL is the provider's authorization URL for this sign-in.
func (c *OIDC) LoginURL(state, nonce, verifier string) string {
	return c.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

// HandleCallback redeems code and verifies the ID token.
func (c *OIDC) HandleCallback(ctx context.Context, code, nonce, verifier string) (Identity, error) {
	ctx = oidc.ClientContext(ctx, c.client)
	tok, err := c.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Identity{}, refused("the provider refused the code", err)
		}
		return Identity{}, errf("redeem the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, refused("no ID token in the provider's answer", nil)
	}
	idt, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, refused("the ID token does not verify", err)
	}
	if nonce == "" || idt.Nonce != nonce {
		return Identity{}, refused("the ID token's nonce is not this sign-in's", nil)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, refused("the ID token's claims are unreadable", err)
	}
	if err := c.addUserInfo(ctx, tok, idt.Subject, claims); err != nil {
		return Identity{}, err
	}
	id := Identity{ConnectorID: c.cfg.ID, Issuer: idt.Issuer, Subject: idt.Subject,
		Email: str(claims[c.cfg.EmailClaim]), Username: str(claims[c.cfg.UsernameClaim]),
		Groups: strs(claims[c.cfg.GroupsClaim]), AMR: strs(claims["amr"])}
	id.EmailVerified, _ = claims["email_verified"].(bool) // missing or not a boolean: not verified
	if id.Subject == "" {
		return Identity{}, refused("the ID token has no subject", nil)
	}
	return id, nil
}

// addUserInfo fills the claims the ID token left out from the userinfo endpoint (providers that
// follow OpenID Connect to the letter put scope claims there when an access token is issued).
// The userinfo's subject must be the ID token's; the ID token's own claims win.
func (c *OIDC) addUserInfo(ctx context.Context, tok *oauth2.Token, subject string, claims map[string]any) error {
	_, hasEmail := claims[c.cfg.EmailClaim]
	_, hasGroups := claims[c.cfg.GroupsClaim]
	if hasEmail && hasGroups || c.provider.UserInfoEndpoint() == "" {
		return nil
	}
	info, err := c.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return errf("userinfo: %w", err)
	}
	if info.Subject != subject {
		return refused("the userinfo is about another subject", nil)
	}
	var extra map[string]any
	if err := info.Claims(&extra); err != nil {
		return refused("the userinfo is unreadable", err)
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// strs reads a claim that is a list of strings, or one string.
func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Package oauth is mcpauth's OAuth 2.1 authorization server for MCP clients (the MCP
// authorization spec; ../shared/OAUTH.md has the checklist): client registration (RFC 7591
// dynamic registration, pre-registered clients), the authorization code grant with PKCE S256
// for every client, refresh-token rotation on auth's session families, RFC 8414 metadata, RFC
// 9207 `iss` on every authorization response.
//
// The rules it lives by:
//   - One issuer string everywhere (metadata, `iss`, the JWT `iss`): an origin without a path
//     or a trailing slash. One resource: the MCP URL the guard protects (RFC 8707).
//   - Redirect URIs match exactly, but for the port of an http loopback one (RFC 8252 §7.3);
//     `localhost` never matches `127.0.0.1`. A bad redirect URI gets an error page, never a
//     redirect.
//   - Atomic steps are unique inserts (README, "Storage"): redeeming a code inserts its
//     redemption, so of any number of concurrent redemptions exactly one wins; the session a
//     code opens has an id derived from the code, so a second redemption can revoke it without
//     a second write.
//   - Only hashes of codes and client secrets are stored.
//
// It sits on auth (login, second factor, sessions, token minting) and never imports mcp.
package oauth

import (
	"context"
	"time"
)

// Token endpoint client authentication methods (RFC 7591 token_endpoint_auth_method).
const (
	AuthNone        = "none"
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
)

// Grant types this server issues for.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// Where a client came from.
const (
	SourceDynamic  = "dcr"    // RFC 7591 /register
	SourceConfig   = "config" // pre-registered by the operator
	SourceMetadata = "cimd"   // a client ID metadata document (its URL is the id)
)

// Client is a registered OAuth client.
type Client struct {
	ID           string   `bson:"_id"`
	Name         string   `bson:"name"`
	RedirectURIs []string `bson:"redirect_uris"`
	GrantTypes   []string `bson:"grant_types"`
	// AuthMethod is how the client authenticates at the token endpoint (AuthNone for a public
	// client); SecretHash the SHA-256 (hex) of a confidential client's secret.
	AuthMethod string `bson:"auth_method"`
	SecretHash string `bson:"secret_hash,omitempty"`
	// ApplicationType is "native" (loopback or private-use scheme redirects) or "web".
	ApplicationType string    `bson:"application_type"`
	Scope           string    `bson:"scope,omitempty"` // what it registered for (informative)
	ClientURI       string    `bson:"client_uri,omitempty"`
	Source          string    `bson:"source"`
	CreatedAt       time.Time `bson:"created_at"`
	// Unused marks a dynamically registered client that has not yet redeemed a code or
	// refreshed a token: a sweep deletes it once it is older than Config.UnusedClientTTL, so
	// that registrations (open to anyone) cannot fill the store. Its first use clears it.
	Unused bool `bson:"unused,omitempty"`
}

// Public reports whether the client has no secret (it proves itself with PKCE alone).
func (c Client) Public() bool { return c.AuthMethod == AuthNone }

// Code is an issued authorization code: only its hash is stored (Hash, SHA-256 hex of the
// code), with everything it was issued for.
type Code struct {
	Hash        string    `bson:"_id"`
	ClientID    string    `bson:"client_id"`
	RedirectURI string    `bson:"redirect_uri"` // exactly as the authorization request gave it
	Challenge   string    `bson:"challenge"`    // PKCE S256 code_challenge
	Resource    string    `bson:"resource"`
	Scopes      []string  `bson:"scopes"`
	UserID      string    `bson:"user_id"`
	OrgID       string    `bson:"org_id"`
	AuthTime    time.Time `bson:"auth_time"` // when the user proved who they are
	MFA         bool      `bson:"mfa"`
	CreatedAt   time.Time `bson:"created_at"`
	ExpiresAt   time.Time `bson:"expires_at"`
	// GrantUntil ends the grant the code opens (zero: none but its refreshes').
	GrantUntil time.Time `bson:"grant_until,omitzero"`
}

// BrowserSession is a login the server remembers in a browser (its mcpauth_session cookie),
// so that the next authorization from that browser needs no password: only the cookie value's
// hash is stored (Hash, SHA-256 hex).
type BrowserSession struct {
	Hash   string `bson:"_id"`
	UserID string `bson:"user_id"`
	// AuthTime is when the person proved who they are; MFA whether with the second factor.
	AuthTime  time.Time `bson:"auth_time"`
	MFA       bool      `bson:"mfa"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
	// GrantUntil ends the grants this browser session leads to (a single sign-on's).
	GrantUntil time.Time `bson:"grant_until,omitzero"`
}

// Consent is what a user allowed a client: the scopes granted so far (remembered consent).
type Consent struct {
	UserID    string    `bson:"user_id"`
	ClientID  string    `bson:"client_id"`
	Scopes    []string  `bson:"scopes"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// Store keeps clients and codes, browser sessions and consents. Implementations answer storeerr.ErrNotFound and
// storeerr.ErrAlreadyExists (wrapped with %w).
type Store interface {
	// CreateClient stores a new client; ErrAlreadyExists when its id is taken.
	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	DeleteClient(ctx context.Context, id string) error
	// CreateCode stores an issued code; GetCode reads it by hash (expired or redeemed codes
	// are still returned: the caller decides).
	CreateCode(ctx context.Context, c Code) error
	GetCode(ctx context.Context, hash string) (Code, error)
	// RedeemCode records the code's one redemption: a unique insert, so of concurrent
	// redemptions exactly one succeeds and every other gets ErrAlreadyExists.
	RedeemCode(ctx context.Context, hash string, at time.Time) error

	// CreateBrowserSession stores a new browser session; GetBrowserSession reads it by hash
	// (expired ones too: the caller decides); DeleteBrowserSession ends it (ErrNotFound when
	// there is none).
	CreateBrowserSession(ctx context.Context, b BrowserSession) error
	GetBrowserSession(ctx context.Context, hash string) (BrowserSession, error)
	DeleteBrowserSession(ctx context.Context, hash string) error
	// PutConsent records what userID allowed clientID, replacing what was recorded before;
	// GetConsent reads it (ErrNotFound when the user never allowed the client).
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, userID, clientID string) (Consent, error)

	// MarkClientUsed clears a client's Unused mark (nothing when it has none, or no client has
	// the id).
	MarkClientUsed(ctx context.Context, id string) error
	// Sweep deletes what can no longer be used, as Sweep's fields say, and reports how many
	// of each it deleted.
	Sweep(ctx context.Context, s Sweep) (Swept, error)
}

// Sweep says what a store sweep deletes: the codes and browser sessions that expired before
// Expired, the redemption records made before Redeemed (it must be older than any code's
// lifetime: a redemption deleted while its code still works would let the code be redeemed
// again), and the Unused clients registered before Unused.
type Sweep struct {
	Expired, Redeemed, Unused time.Time
}

// Swept counts what a sweep deleted.
type Swept struct {
	Codes, Redemptions, BrowserSessions, Clients int64
}

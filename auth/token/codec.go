package token

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/internal/random"
)

// AccessTokenType is the JOSE typ of our access tokens (RFC 9068). A JWT of any other type (an
// ID token, say) is never accepted as an access token.
const AccessTokenType = "at+jwt"

// maxTokenBytes bounds what we parse; our tokens are well under 2 KiB.
const maxTokenBytes = 8 << 10

// ClockSkew is tolerated on iat and nbf only (instances' clocks differ a little); exp is exact.
const ClockSkew = 30 * time.Second

// ClientID is the client_id claim (RFC 9068) of tokens this server issues to its own tools.
const ClientID = "mcpauth"

// accessClaims is the JWT payload.
type accessClaims struct {
	jwt.RegisteredClaims
	Scope     string `json:"scope,omitempty"`
	SessionID string `json:"sid,omitempty"`
	OrgID     string `json:"org,omitempty"`
	ClientID  string `json:"client_id"`
	// AuthTime is when the session's user last proved who they are (OpenID Connect's
	// auth_time): the login, kept through refreshes. Step-ups look at it.
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
}

// Claims is a verified access token.
type Claims struct {
	Subject   string   `json:"sub"`
	SessionID string   `json:"sid,omitempty"`
	OrgID     string   `json:"org_id,omitempty"`
	Scopes    []string `json:"scopes"`
	TokenID   string   `json:"jti"`
	// APIKeyID is set when the credential was an API key (then SessionID is empty).
	APIKeyID string `json:"api_key_id,omitempty"`
	// ClientID is the OAuth client the token was issued to (ClientID for mcpauth's own).
	ClientID string `json:"client_id,omitempty"`
	// AuthTime is when the user last proved who they are (the session's login); zero for an
	// API key.
	AuthTime  time.Time `json:"auth_time,omitzero"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Token errors. Their messages are what a caller sees.
var (
	ErrInvalid = apierr.New(apierr.TokenInvalid, "token is invalid")
	ErrExpired = apierr.New(apierr.TokenExpired, "token has expired")
	ErrRevoked = apierr.New(apierr.TokenRevoked, "token has been revoked")
)

// CodecConfig configures a Codec.
type CodecConfig struct {
	Keys     *KeySet
	Issuer   string
	Audience string
	// TTL is the access tokens' lifetime. A key retired by a rotation keeps verifying for one
	// TTL (and the clock skew) after its successor takes over: every token it signed has
	// expired by then.
	TTL time.Duration
	// CacheSize bounds the verified-token cache (default DefaultCacheSize; negative: off).
	CacheSize int
}

// Codec signs and verifies access tokens with the key set. It is safe for concurrent use.
type Codec struct {
	keys     *KeySet
	issuer   string
	audience string
	ttl      time.Duration
	verified verifiedTokens
}

// NewCodec returns a codec; it sets the key set's overlap to the tokens' lifetime.
func NewCodec(cfg CodecConfig) *Codec {
	cfg.Keys.setOverlap(cfg.TTL + ClockSkew)
	return &Codec{keys: cfg.Keys, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.TTL,
		verified: newVerifiedTokens(cfg.CacheSize)}
}

// parser is shared by every verification (a jwt.Parser is read-only once built). Every
// supported algorithm is listed; the key function then pins each token to its key's own
// algorithm, so listing them all admits nothing a key does not.
var parser = jwt.NewParser(jwt.WithValidMethods(SupportedAlgs), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())

// Subject is what an access token is issued for: a user in a session and organization, with
// the scopes; AuthTime is when the user last proved who they are (the session's login);
// ClientID the OAuth client it is issued to (default ClientID: mcpauth's own tools).
type Subject struct {
	User, Session, Org string
	Scopes             []string
	AuthTime           time.Time
	ClientID           string
}

// Sign issues an access token for sub.
func (c *Codec) Sign(sub Subject, now time.Time) (string, Claims, error) {
	k := c.keys.signingKey()
	jti := random.String(16)
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.issuer,
			Subject:   sub.User,
			Audience:  jwt.ClaimStrings{c.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(c.ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		Scope:     strings.Join(sub.Scopes, " "),
		SessionID: sub.Session,
		OrgID:     sub.Org,
		ClientID:  cmp.Or(sub.ClientID, ClientID),
		AuthTime:  jwt.NewNumericDate(sub.AuthTime),
	}
	t := jwt.NewWithClaims(k.method, claims)
	t.Header["typ"] = AccessTokenType
	t.Header["kid"] = k.id
	signed, err := t.SignedString(k.signer)
	if err != nil {
		return "", Claims{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, claimsOf(claims), nil
}

func claimsOf(c accessClaims) Claims {
	out := Claims{Subject: c.Subject, SessionID: c.SessionID, OrgID: c.OrgID, TokenID: c.ID, ClientID: c.ClientID, Scopes: []string{}}
	if c.Scope != "" {
		out.Scopes = strings.Fields(c.Scope)
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	if c.AuthTime != nil {
		out.AuthTime = c.AuthTime.Time
	}
	return out
}

// forbiddenHeaders name keys or extensions we never honour: a token that asks for them is
// rejected outright rather than having the request silently ignored.
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c", "crit"}

// verifyWithKey verifies a token without the cache, also returning the key that verified it.
func (c *Codec) verifyWithKey(ctx context.Context, token string, now time.Time) (Claims, *loadedKey, error) {
	if token == "" || len(token) > maxTokenBytes || !compactJWS(token) {
		return Claims{}, nil, ErrInvalid.With("reason", "malformed")
	}
	var key *loadedKey
	var claims accessClaims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		for _, h := range forbiddenHeaders {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("header %q not accepted", h)
			}
		}
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(strings.TrimPrefix(typ, "application/"), AccessTokenType) {
			return nil, errors.New("not an access token (typ)")
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := c.keys.lookup(ctx, kid, now)
		if !ok {
			return nil, errors.New("unknown or retired key")
		}
		if t.Method.Alg() != k.alg {
			return nil, errors.New("algorithm does not match key")
		}
		key = k
		return k.public, nil
	})
	if err != nil {
		return Claims{}, nil, ErrInvalid.With("reason", "signature or header rejected").Wrap(err)
	}
	// encoding/json keeps the last of duplicate members; another reader of the same token may
	// keep the first. RFC 7515 section 5.2 lets us reject them instead.
	head, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	if !uniqueMembers(head) || !uniqueMembers(payload) {
		return Claims{}, nil, ErrInvalid.With("reason", "duplicate member")
	}
	cl, err := c.checkClaims(claims, now)
	return cl, key, err
}

func (c *Codec) checkClaims(claims accessClaims, now time.Time) (Claims, error) {
	switch {
	case claims.Issuer != c.issuer:
		return Claims{}, ErrInvalid.With("reason", "wrong issuer")
	case !containsString(claims.Audience, c.audience):
		return Claims{}, ErrInvalid.With("reason", "wrong audience")
	case claims.Subject == "":
		return Claims{}, ErrInvalid.With("reason", "no subject")
	case claims.ExpiresAt == nil || claims.IssuedAt == nil:
		return Claims{}, ErrInvalid.With("reason", "missing exp or iat")
	case claims.IssuedAt.After(now.Add(ClockSkew)):
		return Claims{}, ErrInvalid.With("reason", "issued in the future")
	case claims.NotBefore != nil && claims.NotBefore.After(now.Add(ClockSkew)):
		return Claims{}, ErrInvalid.With("reason", "not yet valid")
	case !now.Before(claims.ExpiresAt.Time):
		// The claims come back with the error: revoking an expired token still ends its session.
		return claimsOf(claims), ErrExpired
	}
	return claimsOf(claims), nil
}

// compactJWS reports whether t is made only of base64url characters and dots. Go's base64
// decoder skips CR and LF, so without this check a token with line breaks in it would verify.
func compactJWS(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// uniqueMembers reports whether the JSON in the base64url segment seg names no member twice,
// at any depth and however the names are escaped (jsontext applies RFC 7493, I-JSON). It
// decodes into a stack buffer when the segment fits (ours always do). Anything else wrong with
// the segment the parser has already judged.
func uniqueMembers(seg string) bool {
	var src [2048]byte // copying beats []byte(seg), which allocates
	bp := segmentBufs.Get().(*[1536]byte)
	defer segmentBufs.Put(bp)
	in, out := src[:], bp[:]
	if len(seg) > len(in) {
		in, out = make([]byte, len(seg)), make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	}
	n, err := base64.RawURLEncoding.Decode(out, in[:copy(in, seg)])
	if err != nil {
		return true
	}
	return jsontext.Value(out[:n]).IsValid()
}

// segmentBufs holds decoded-segment buffers: jsontext keeps its input reachable, so a stack
// buffer would move to the heap on every call.
var segmentBufs = sync.Pool{New: func() any { return new([1536]byte) }}

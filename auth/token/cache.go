package token

import (
	"context"
	"crypto/sha256"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultCacheSize bounds the verified-token cache (CodecConfig.CacheSize).
const DefaultCacheSize = 10_000

// verifiedTokens remembers access tokens whose signature and claims checked out, keyed by the
// SHA-256 of the token (the token itself is never kept), until they expire: an MCP session
// sends the same bearer token on every call, and a look-up is ~70× cheaper than a signature
// check. Only the signature and claims are remembered. Revocation is checked on every call
// (so it wins at once), and so is the signing key, so a key retired past its overlap stops its
// tokens even when they are cached. Bounded: least recently used entries go first.
type verifiedTokens struct {
	lru *lru.Cache[[sha256.Size]byte, *verifiedToken] // nil: caching off; entries never change once added
}

type verifiedToken struct {
	claims Claims // Scopes is shared by every hit: read-only
	key    *loadedKey
}

func newVerifiedTokens(size int) verifiedTokens {
	if size < 0 {
		return verifiedTokens{}
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	c, _ := lru.New[[sha256.Size]byte, *verifiedToken](size) // size > 0: no error
	return verifiedTokens{lru: c}
}

// tokenKey hashes a token without copying it: a string converted for sha256 would be
// allocated, and copied into a stack buffer it costs a copy and a 2 KiB frame on the guard's
// every call. Sum256 only reads its argument, so a read-only view of the string is safe.
func tokenKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Verify checks an access token's signature, header and claims, from the cache when the
// token verified before. It answers only ErrInvalid or ErrExpired (with a reason in the
// details); revocation is the caller's business. An expired token's claims come back with
// ErrExpired (revoking an expired token still ends its session).
func (c *Codec) Verify(ctx context.Context, token string, now time.Time) (Claims, error) {
	if c.verified.lru == nil {
		cl, _, err := c.verifyWithKey(ctx, token, now)
		return cl, err
	}
	key := tokenKey(token)
	if v, ok := c.verified.lru.Get(key); ok {
		if !now.Before(v.claims.ExpiresAt) {
			c.verified.lru.Remove(key)
			return v.claims, ErrExpired
		}
		if c.keys.stillUsable(v.key, now) {
			return v.claims, nil
		}
		c.verified.lru.Remove(key) // its key has been retired past the overlap: verify afresh (and fail)
	}
	cl, k, err := c.verifyWithKey(ctx, token, now)
	if err == nil {
		c.verified.lru.Add(key, &verifiedToken{claims: cl, key: k})
	}
	return cl, err
}

package token

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultCacheSize bounds the verified-token cache (CodecConfig.CacheSize).
const DefaultCacheSize = 10_000

// verifiedTokens remembers access tokens whose signature and claims checked out, until they
// expire: an MCP session sends the same bearer token on every call, and a look-up is ~170×
// cheaper than a signature check. An entry is found by the SHA-256 of the token's signature
// (its secret part: the header and payload are base64 that anyone who sees the token can read,
// and are no credential without it) and confirmed by the signed part, byte for byte: only the
// exact token that verified hits. Hashing the signature alone is two SHA-256 blocks where the
// whole token (about 600 bytes) is ten, the largest cost of a cached call. The token itself is
// never kept: its signed part is, as the claims are (about 600 bytes an entry, 6 MB at
// DefaultCacheSize), and compared plainly: it is no secret, and only a caller who holds the
// signature reaches the compare. Revocation is checked on every call (so it
// wins at once), and so is the signing key, so a key retired past its overlap stops its tokens
// even when they are cached. Bounded: least recently used entries go first.
type verifiedTokens struct {
	lru *lru.Cache[[sha256.Size]byte, *verifiedToken] // nil: caching off; entries never change once added
}

type verifiedToken struct {
	signed string // the token up to its signature: a hit must match it exactly
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

// tokenKey splits a token into its signed part and the key of its entry, the SHA-256 of its
// signature, hashed without a copy: a string converted for sha256 would be allocated, and
// copied into a stack buffer it costs a copy and a frame on the guard's every call. Sum256
// only reads its argument, so a read-only view of the string is safe. A token without a
// signature is all signature here: it never verifies, so it is never found. The signature
// starts after the second dot (a compact JWS has two), found from the front: IndexByte is
// vectorized, LastIndexByte a byte loop, six times the instructions over a signature.
func tokenKey(token string) (signed string, key [sha256.Size]byte) {
	dot := -1
	if first := strings.IndexByte(token, '.'); first >= 0 {
		if second := strings.IndexByte(token[first+1:], '.'); second >= 0 {
			dot = first + 1 + second
		}
	}
	signed, sig := token[:max(dot, 0)], token[dot+1:]
	return signed, sha256.Sum256(unsafe.Slice(unsafe.StringData(sig), len(sig)))
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
	signed, key := tokenKey(token)
	if v, ok := c.verified.lru.Get(key); ok && v.signed == signed {
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
		c.verified.lru.Add(key, &verifiedToken{signed: strings.Clone(signed), claims: cl, key: k})
	}
	return cl, err
}

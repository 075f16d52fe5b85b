package auth

import (
	"context"
	"crypto/sha256"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Defaults for the hot-path caches (Config.TokenCacheSize, Config.UserCacheTTL).
const (
	DefaultTokenCacheSize = 10_000
	DefaultUserCacheTTL   = time.Second
	userCacheSize         = 10_000
)

// verifiedTokens remembers access tokens whose signature and claims checked out, keyed by the
// SHA-256 of the token (the token itself is never kept), until they expire: an MCP session
// sends the same bearer token on every call, and a look-up is ~100× cheaper than a signature
// check. Only the signature and claims are remembered. Revocation is checked on every call
// (so it wins at once), and so is the signing key, so a key retired past its overlap stops its
// tokens even when they are cached. Bounded: least recently used entries go first.
type verifiedTokens struct {
	lru *lru.Cache[[sha256.Size]byte, verifiedToken] // nil: caching off
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
		size = DefaultTokenCacheSize
	}
	c, _ := lru.New[[sha256.Size]byte, verifiedToken](size) // size > 0: no error
	return verifiedTokens{lru: c}
}

// tokenKey hashes a token without allocating (a string converted for sha256 would be).
func tokenKey(token string) [sha256.Size]byte {
	var buf [2048]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(buf[:copy(buf[:], token)])
	}
	return sha256.Sum256([]byte(token))
}

// verifyAccess verifies a JWT access token, from the cache when it has been verified before.
func (s *Service) verifyAccess(ctx context.Context, token string, now time.Time) (Claims, error) {
	if s.tokens.lru == nil {
		c, _, err := s.codec.verifyWithKey(ctx, token, now)
		return c, err
	}
	key := tokenKey(token)
	if v, ok := s.tokens.lru.Get(key); ok {
		if !now.Before(v.claims.ExpiresAt) {
			s.tokens.lru.Remove(key)
			return v.claims, ErrTokenExpired
		}
		if s.keys.stillUsable(v.key, now) {
			return v.claims, nil
		}
		s.tokens.lru.Remove(key) // its key has been retired past the overlap: verify afresh (and fail)
	}
	c, k, err := s.codec.verifyWithKey(ctx, token, now)
	if err == nil {
		s.tokens.lru.Add(key, verifiedToken{claims: c, key: k})
	}
	return c, err
}

// liveUsers remembers user records for Caller for a short time (Config.UserCacheTTL): a guarded
// call needs the live record (a disabled user is refused while its token is unexpired), and a
// store read per call would dominate the guard's cost. A change made through this Service
// drops the record at once; a change made by another instance is seen within the TTL (and a
// disable also revokes the user's sessions, which every instance hears of within a second).
type liveUsers struct {
	lru *lru.Cache[string, liveUser] // nil: caching off
	ttl time.Duration
	// gen counts forgets: a load that raced one is not cached, so a record read before a
	// change can never be put back after it.
	gen atomic.Uint64
}

type liveUser struct {
	user   User
	loaded time.Time
}

func newLiveUsers(ttl time.Duration) *liveUsers {
	if ttl < 0 {
		return &liveUsers{}
	}
	if ttl == 0 {
		ttl = DefaultUserCacheTTL
	}
	c, _ := lru.New[string, liveUser](userCacheSize)
	return &liveUsers{lru: c, ttl: ttl}
}

// user returns the live record of id. It carries no password hash: callers that need one
// read the store.
func (s *Service) liveUser(ctx context.Context, id string) (User, error) {
	now := s.cfg.Now()
	if s.users.lru != nil {
		if e, ok := s.users.lru.Get(id); ok && now.Sub(e.loaded) < s.users.ttl {
			return e.user, nil
		}
	}
	gen := s.users.gen.Load()
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		return User{}, err
	}
	u.PasswordHash = nil
	if s.users.lru != nil && s.users.gen.Load() == gen {
		s.users.lru.Add(id, liveUser{user: u, loaded: now})
	}
	return u, nil
}

// forgetUser drops a user's cached record; call it after every change to the stored record.
func (s *Service) forgetUser(id string) {
	s.users.gen.Add(1)
	if s.users.lru != nil {
		s.users.lru.Remove(id)
	}
}

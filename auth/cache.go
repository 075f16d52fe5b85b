package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"sync"
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
// sends the same bearer token on every call, and a look-up is ~70× cheaper than a signature
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
// drops the record at once; a change made by another instance is seen within the TTL and one
// store read (and a disable also revokes the user's sessions, which every instance hears of
// within a second).
//
// A record is read again in the background, while calls go on with the one in hand (one read
// per user at a time), once it is older than a random point between half the TTL and the TTL:
// otherwise every active user's record would expire in the same instant and their calls would
// queue behind a burst of store reads, the whole tail of the guard's latency. Past twice the
// TTL (a user idle that long) the call waits for the read.
type liveUsers struct {
	lru *lru.Cache[string, liveUser] // nil: caching off
	ttl time.Duration
	// gen counts forgets: a load that raced one is not cached, so a record read before a
	// change can never be put back after it.
	gen        atomic.Uint64
	refreshing sync.Map // user id → struct{}: a background read is under way
}

// refreshTimeout bounds a background read of a user record.
const refreshTimeout = 5 * time.Second

type liveUser struct {
	user   User
	loaded time.Time
	stale  time.Time // when to read it again: loaded + TTL/2 + up to TTL/2
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
		if e, ok := s.users.lru.Get(id); ok {
			switch {
			case now.Before(e.stale):
				return e.user, nil
			case now.Sub(e.loaded) < 2*s.users.ttl:
				s.refreshUser(ctx, id)
				return e.user, nil
			}
		}
	}
	return s.loadUser(ctx, id, now)
}

// loadUser reads a user record and caches it, unless it was forgotten meanwhile.
func (s *Service) loadUser(ctx context.Context, id string, now time.Time) (User, error) {
	gen := s.users.gen.Load()
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) && s.users.lru != nil {
			s.users.lru.Remove(id)
		}
		return User{}, err
	}
	u.PasswordHash = nil
	if s.users.lru != nil && s.users.gen.Load() == gen {
		jitter := time.Duration(rand.Int64N(int64(s.users.ttl/2) + 1))
		s.users.lru.Add(id, liveUser{user: u, loaded: now, stale: now.Add(s.users.ttl/2 + jitter)})
	}
	return u, nil
}

// refreshUser reads a user record again in the background, once at a time per user.
func (s *Service) refreshUser(ctx context.Context, id string) {
	if _, busy := s.users.refreshing.LoadOrStore(id, struct{}{}); busy {
		return
	}
	go func() {
		defer s.users.refreshing.Delete(id)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		if _, err := s.loadUser(rctx, id, s.cfg.Now()); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.WarnContext(rctx, "could not refresh a cached user record", "user_id", id, "error", err)
		}
	}()
}

// forgetUser drops a user's cached record; call it after every change to the stored record.
func (s *Service) forgetUser(id string) {
	s.users.gen.Add(1)
	if s.users.lru != nil {
		s.users.lru.Remove(id)
	}
}

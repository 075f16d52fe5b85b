package auth

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Defaults for the user cache (Config.UserCacheTTL).
const (
	DefaultUserCacheTTL = 30 * time.Second
	userCacheSize       = 10_000
)

// UserVersions numbers the changes of user records for every instance of a deployment: this
// Service announces each change it stores (BumpSubject, after the write), and a cached record
// is trusted only while its user's number and the deployment's epoch (Current) are what they
// were before it was read. rbac.LocalVersions and rbac.RedisVersions are UserVersions (one
// counter for a user's roles and record alike: a record change also drops the user's cached
// decisions, one cold decision). RedisVersions advances Current at every poll while Redis
// cannot be read, so no record outlives a poll interval then: fail closed.
type UserVersions interface {
	Current() uint64
	Subject(id string) uint64
	BumpSubject(ctx context.Context, id string) error
}

// liveUsers remembers user records for Caller (Config.UserCacheTTL): a guarded call needs the
// live record (a disabled user is refused while its token is unexpired), and a store read per
// call would dominate the guard's cost. A change made through this Service drops the record at
// once; one made by another instance sharing the UserVersions is seen as soon as its number
// arrives (within a second through Redis) and costs one store read. The TTL bounds only what
// nothing announces (a record edited in the store behind mcpauth's back): it was the only
// bound once, at 1 s, and re-reading every active user's record twice a second cost a guarded
// call more than the rest of the guard on the embedded store (one `find` per user, ~1 ms each)
// and could not keep up at all with 10,000 active users.
//
// Records are read again in the background, in batches, while calls go on with the records in
// hand: the first call that finds its record older than half the TTL starts one read of every
// cached record older than a quarter of it (one store round trip for all of them, one batch at
// a time). Reading each user's record on its own, as it aged, cost one round trip per active
// user and half-TTL; with 64 users on the embedded store that was a third of the guard's CPU.
// Records refreshed together age together, so the batches stay few. Past twice the TTL (a user
// idle that long) the call waits for its own read.
type liveUsers struct {
	lru *lru.Cache[string, *liveUser] // nil: caching off; entries are never changed once added
	ttl time.Duration
	// gen counts forgets: a read that raced one is not cached, so a record read before a
	// change can never be put back after it.
	gen        atomic.Uint64
	refreshing atomic.Bool // a background batch read is under way
}

// refreshTimeout bounds a background batch read; refreshBatch bounds the records one store
// read asks for.
const (
	refreshTimeout = 5 * time.Second
	refreshBatch   = 1000
)

type liveUser struct {
	user   User
	loaded time.Time
	seen   userVersion // the versions read before the record was
}

// userVersion is what a cached record's trust depends on: the deployment's epoch and the user's
// change number (both zero without UserVersions).
type userVersion struct{ epoch, user uint64 }

func (s *Service) userVersion(id string) userVersion {
	if s.cfg.UserVersions == nil {
		return userVersion{}
	}
	return userVersion{s.cfg.UserVersions.Current(), s.cfg.UserVersions.Subject(id)}
}

func newLiveUsers(ttl time.Duration) *liveUsers {
	if ttl < 0 {
		return &liveUsers{}
	}
	if ttl == 0 {
		ttl = DefaultUserCacheTTL
	}
	c, _ := lru.New[string, *liveUser](userCacheSize)
	return &liveUsers{lru: c, ttl: ttl}
}

// liveUser returns the live record of id. It carries no password hash: callers that need one
// read the store.
func (s *Service) liveUser(ctx context.Context, id string) (User, error) {
	now := s.cfg.Now()
	if s.users.lru != nil {
		if e, ok := s.users.lru.Get(id); ok && e.seen == s.userVersion(id) {
			switch age := now.Sub(e.loaded); {
			case age < s.users.ttl/2:
				return e.user, nil
			case age < 2*s.users.ttl:
				s.refreshUsers(ctx)
				return e.user, nil
			}
		}
	}
	return s.loadUser(ctx, id, now)
}

// loadUser reads a user record and caches it, unless it was forgotten meanwhile.
func (s *Service) loadUser(ctx context.Context, id string, now time.Time) (User, error) {
	gen, seen := s.users.gen.Load(), s.userVersion(id)
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) && s.users.lru != nil {
			s.users.lru.Remove(id)
		}
		return User{}, err
	}
	u.PasswordHash = nil
	if s.users.lru != nil && s.users.gen.Load() == gen {
		s.users.lru.Add(id, &liveUser{user: u, loaded: now, seen: seen})
	}
	return u, nil
}

// refreshUsers reads again, in the background, every cached record older than a quarter of
// the TTL; one batch at a time.
func (s *Service) refreshUsers(ctx context.Context) {
	if !s.users.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.users.refreshing.Store(false)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		if err := s.reloadUsers(rctx); err != nil {
			s.log.WarnContext(rctx, "could not refresh the cached user records", "error", err)
		}
	}()
}

func (s *Service) reloadUsers(ctx context.Context) error {
	now := s.cfg.Now()
	var ids []string
	seen := map[string]userVersion{}
	for _, id := range s.users.lru.Keys() {
		if e, ok := s.users.lru.Peek(id); ok && now.Sub(e.loaded) >= s.users.ttl/4 {
			ids = append(ids, id)
			seen[id] = s.userVersion(id)
		}
	}
	for batch := range slices.Chunk(ids, refreshBatch) {
		gen := s.users.gen.Load()
		users, err := s.store.GetUsers(ctx, batch)
		if err != nil {
			return err
		}
		if s.users.gen.Load() != gen {
			continue // a change raced the read: those records are read again on their next call
		}
		found := make(map[string]bool, len(users))
		for _, u := range users {
			u.PasswordHash = nil
			found[u.ID] = true
			s.users.lru.Add(u.ID, &liveUser{user: u, loaded: now, seen: seen[u.ID]})
		}
		for _, id := range batch {
			if !found[id] { // deleted elsewhere: the next call reads the store, and is refused
				s.users.lru.Remove(id)
			}
		}
	}
	return nil
}

// forgetUser drops a user's cached record and announces the change to the other instances;
// call it after every change to the stored record. An announcement that fails is logged: the
// change is stored, and the other instances see it within their TTL (with Redis unreachable
// they trust no record beyond a poll interval anyway).
func (s *Service) forgetUser(ctx context.Context, id string) {
	s.users.gen.Add(1)
	if s.users.lru != nil {
		s.users.lru.Remove(id)
	}
	if s.cfg.UserVersions != nil {
		if err := s.cfg.UserVersions.BumpSubject(context.WithoutCancel(ctx), id); err != nil {
			s.log.WarnContext(ctx, "could not announce a user's change to the other instances", "user_id", id, "error", err)
		}
	}
}

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
	DefaultUserCacheTTL = time.Second
	userCacheSize       = 10_000
)

// liveUsers remembers user records for Caller for a short time (Config.UserCacheTTL): a guarded
// call needs the live record (a disabled user is refused while its token is unexpired), and a
// store read per call would dominate the guard's cost. A change made through this Service
// drops the record at once; a change made by another instance is seen within the TTL and one
// store read (and a disable also revokes the user's sessions, which every instance hears of
// within a second).
//
// Records are read again in the background, in batches, while calls go on with the records in
// hand: the first call that finds its record older than half the TTL starts one read of every
// cached record older than a quarter of it (one store round trip for all of them, one batch at
// a time). Reading each user's record on its own, as it aged, cost one round trip per active
// user and half-TTL; with 64 users on the embedded store that was a third of the guard's CPU.
// Records refreshed together age together, so the batches stay few. Past twice the TTL (a user
// idle that long) the call waits for its own read.
type liveUsers struct {
	lru *lru.Cache[string, liveUser] // nil: caching off
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

// liveUser returns the live record of id. It carries no password hash: callers that need one
// read the store.
func (s *Service) liveUser(ctx context.Context, id string) (User, error) {
	now := s.cfg.Now()
	if s.users.lru != nil {
		if e, ok := s.users.lru.Get(id); ok {
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
		s.users.lru.Add(id, liveUser{user: u, loaded: now})
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
	for _, id := range s.users.lru.Keys() {
		if e, ok := s.users.lru.Peek(id); ok && now.Sub(e.loaded) >= s.users.ttl/4 {
			ids = append(ids, id)
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
			s.users.lru.Add(u.ID, liveUser{user: u, loaded: now})
		}
		for _, id := range batch {
			if !found[id] { // deleted elsewhere: the next call reads the store, and is refused
				s.users.lru.Remove(id)
			}
		}
	}
	return nil
}

// forgetUser drops a user's cached record; call it after every change to the stored record.
func (s *Service) forgetUser(id string) {
	s.users.gen.Add(1)
	if s.users.lru != nil {
		s.users.lru.Remove(id)
	}
}

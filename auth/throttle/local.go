package throttle

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// maxLocalKeys bounds the in-process limiter's memory. When it is reached the limiter forgets
// its least recently used key, one per new key: a flood of fresh keys (random identifiers)
// evicts only cold keys, while a hot key's budget (the attacker's own, or a victim's) survives.
const maxLocalKeys = 1 << 16

// LocalLimiter is the in-process Limiter (one instance only), on golang.org/x/time/rate.
type LocalLimiter struct {
	now  func() time.Time
	mu   sync.Mutex
	keys *simplelru.LRU[localKey, *rate.Limiter] // under mu
}

// localKey is a key under one limit: the same key under two limits counts twice, apart.
type localKey struct {
	key string
	lim Limit
}

// NewLocalLimiter returns an in-process limiter; now is its clock (nil: time.Now).
func NewLocalLimiter(now func() time.Time) *LocalLimiter {
	if now == nil {
		now = time.Now
	}
	keys, err := simplelru.NewLRU[localKey, *rate.Limiter](maxLocalKeys, nil)
	if err != nil { // only for a size <= 0
		panic(err)
	}
	return &LocalLimiter{now: now, keys: keys}
}

// Name is "local".
func (*LocalLimiter) Name() string { return "local" }

func (l *LocalLimiter) limiter(key string, lim Limit) *rate.Limiter {
	k := localKey{key, lim}
	r, ok := l.keys.Get(k) // marks k recently used
	if !ok {
		r = rate.NewLimiter(rate.Every(lim.Period/time.Duration(lim.Rate)), lim.Burst)
		l.keys.Add(k, r) // evicts the least recently used key when full
	}
	return r
}

// Allow consumes one event of key if allowed.
func (l *LocalLimiter) Allow(_ context.Context, key string, lim Limit) (Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	r := l.limiter(key, lim)
	if r.AllowN(now, 1) { // consumes nothing when it refuses (and allocates nothing, unlike ReserveN)
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAfter: retryAfter(r.TokensAt(now), lim)}, nil
}

// retryAfter is how long until a limiter holding tokens (fewer than one) under lim has one.
func retryAfter(tokens float64, lim Limit) time.Duration {
	return time.Duration((1 - tokens) * float64(lim.Period/time.Duration(lim.Rate)))
}

// Check reports whether one more event would be allowed.
func (l *LocalLimiter) Check(_ context.Context, key string, lim Limit) (Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	r := l.limiter(key, lim)
	if tokens := r.TokensAt(now); tokens < 1 {
		return Decision{RetryAfter: retryAfter(tokens, lim)}, nil
	}
	return Decision{Allowed: true}, nil
}

// maxLocalSources bounds the source states the in-process lockout keeps for one account. When it
// is reached, that account's source states are forgotten, never its consecutive-failure count
// nor its permanent flag: whoever fills it (a guesser with many addresses) can at worst reset
// soft locks, their own (or lift the owner's, which only helps the owner), while every check they
// were let through still counts toward the permanent lock. maxLocalKeys bounds the source states
// of all accounts together the same way, and the accounts (forgetting those not locked
// permanently: a permanent lock is only lifted by Unlock).
const maxLocalSources = 1024

// sourceState is one (account, source)'s failures: the soft lock.
type sourceState struct {
	fails       int // failed (or in-flight) checks in the current window
	windowStart time.Time
	lockedUntil time.Time
	lockedSince time.Time // when the current lock engaged
	locks       int       // locks since the last success from this source (the backoff grows with it)
}

// accountState is one account's consecutive failures, from all sources, and its sources' states.
type accountState struct {
	total     int // consecutive failed (or in-flight) checks since the last success
	permanent bool
	since     time.Time // when it became permanent
	sources   map[string]*sourceState
}

// LocalLockout is the in-process Lockout (one instance only).
type LocalLockout struct {
	policy   Policy
	now      func() time.Time
	mu       sync.Mutex
	accounts map[string]*accountState
	sources  int // source states of all accounts together
}

// NewLocalLockout returns an in-process lockout; now is its clock (nil: time.Now).
func NewLocalLockout(p Policy, now func() time.Time) *LocalLockout {
	if now == nil {
		now = time.Now
	}
	return &LocalLockout{policy: p, now: now, accounts: map[string]*accountState{}}
}

// Name is "local".
func (*LocalLockout) Name() string { return "local" }

// Begin reserves a check of account's credential from source.
func (l *LocalLockout) Begin(_ context.Context, account, source string) (Attempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.accounts[account]
	if a == nil {
		if len(l.accounts) >= maxLocalKeys {
			l.forgetUnlockedAccounts()
		}
		a = &accountState{}
		l.accounts[account] = a
	}
	s := a.sources[source]
	known := s != nil
	if !known {
		s = &sourceState{windowStart: now}
	}
	at := begin(l.policy, a, s, now)
	if at.Allowed && !known {
		l.addSource(a, source, s)
	}
	l.dropSourcesIfPermanent(a)
	return at, nil
}

// begin is the lockout's state machine, shared in meaning with the Redis script.
func begin(p Policy, a *accountState, s *sourceState, now time.Time) Attempt {
	if a.permanent {
		return Attempt{Permanent: true, Since: a.since}
	}
	if now.Before(s.lockedUntil) {
		return Attempt{LockedFor: s.lockedUntil.Sub(now), Since: s.lockedSince}
	}
	if !s.lockedUntil.IsZero() { // a lock just ran out: a fresh window
		s.fails, s.lockedUntil, s.lockedSince, s.windowStart = 0, time.Time{}, time.Time{}, now
	}
	if now.Sub(s.windowStart) > p.Window {
		s.fails, s.windowStart = 0, now
	}
	if a.total >= p.PermanentAfter {
		a.permanent, a.since = true, now
		return Attempt{Permanent: true, Since: now}
	}
	if s.fails >= p.Attempts { // reserved by concurrent attempts that have not finished yet
		return Attempt{LockedFor: p.backoff(s.locks), Since: now} // the lock engages now
	}
	s.fails++
	a.total++
	return Attempt{Allowed: true}
}

// Fail engages source's lock once its failures reach the policy's count, and the permanent lock
// once the account's do.
func (l *LocalLockout) Fail(_ context.Context, account, source string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[account]; a != nil {
		fail(l.policy, a, a.sources[source], l.now())
		l.dropSourcesIfPermanent(a)
	}
	return nil
}

func fail(p Policy, a *accountState, s *sourceState, now time.Time) {
	if s != nil && s.fails >= p.Attempts && !now.Before(s.lockedUntil) {
		s.lockedUntil, s.lockedSince = now.Add(p.backoff(s.locks)), now
		s.locks++
	}
	if a.total >= p.PermanentAfter && !a.permanent {
		a.permanent, a.since = true, now
	}
}

// Succeed clears source's failures of account and the account's consecutive count (not a
// permanent lock, not other sources' soft locks).
func (l *LocalLockout) Succeed(_ context.Context, account, source string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accounts[account]
	if a == nil {
		return nil
	}
	if _, ok := a.sources[source]; ok {
		delete(a.sources, source)
		l.sources--
	}
	if !a.permanent {
		a.total = 0
		if len(a.sources) == 0 {
			delete(l.accounts, account)
		}
	}
	return nil
}

// Unlock clears everything of account.
func (l *LocalLockout) Unlock(_ context.Context, account string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[account]; a != nil {
		l.sources -= len(a.sources)
		delete(l.accounts, account)
	}
	return nil
}

// addSource keeps s as account a's state of source, within the bounds of maxLocalSources.
// Full maps are replaced, not cleared, so that their memory goes too.
func (l *LocalLockout) addSource(a *accountState, source string, s *sourceState) {
	if len(a.sources) >= maxLocalSources {
		l.sources -= len(a.sources)
		a.sources = nil
	}
	if l.sources >= maxLocalKeys {
		for _, other := range l.accounts {
			other.sources = nil
		}
		l.sources = 0
	}
	if a.sources == nil {
		a.sources = map[string]*sourceState{}
	}
	a.sources[source] = s
	l.sources++
}

// dropSourcesIfPermanent forgets the source states of a permanently locked account: the
// permanent lock refuses every source, and Unlock clears them anyway.
func (l *LocalLockout) dropSourcesIfPermanent(a *accountState) {
	if a.permanent && a.sources != nil {
		l.sources -= len(a.sources)
		a.sources = nil
	}
}

// forgetUnlockedAccounts forgets every account not locked permanently (see maxLocalSources).
func (l *LocalLockout) forgetUnlockedAccounts() {
	for name, a := range l.accounts {
		if !a.permanent {
			l.sources -= len(a.sources)
			delete(l.accounts, name)
		}
	}
}

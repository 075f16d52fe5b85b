package throttle

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLocalKeys bounds the in-process limiter's memory; when exceeded it forgets everything
// (an attacker can at worst reset their own budget, never exhaust the heap).
const maxLocalKeys = 1 << 16

// LocalLimiter is the in-process Limiter (one instance only), on golang.org/x/time/rate.
type LocalLimiter struct {
	now  func() time.Time
	mu   sync.Mutex
	keys map[localKey]*rate.Limiter
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
	return &LocalLimiter{now: now, keys: map[localKey]*rate.Limiter{}}
}

// Name is "local".
func (*LocalLimiter) Name() string { return "local" }

func (l *LocalLimiter) limiter(key string, lim Limit) *rate.Limiter {
	k := localKey{key, lim}
	r, ok := l.keys[k]
	if !ok {
		if len(l.keys) >= maxLocalKeys {
			clear(l.keys)
		}
		r = rate.NewLimiter(rate.Every(lim.Period/time.Duration(lim.Rate)), lim.Burst)
		l.keys[k] = r
	}
	return r
}

// Allow consumes one event of key if allowed.
func (l *LocalLimiter) Allow(_ context.Context, key string, lim Limit) (Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	r := l.limiter(key, lim)
	res := r.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return Decision{RetryAfter: d}, nil
	}
	return Decision{Allowed: true}, nil
}

// Check reports whether one more event would be allowed.
func (l *LocalLimiter) Check(_ context.Context, key string, lim Limit) (Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	r := l.limiter(key, lim)
	if tokens := r.TokensAt(now); tokens < 1 {
		return Decision{RetryAfter: time.Duration((1 - tokens) * float64(lim.Period/time.Duration(lim.Rate)))}, nil
	}
	return Decision{Allowed: true}, nil
}

// lockState is one account's failures.
type lockState struct {
	fails       int       // failed (or in-flight) checks in the current window
	windowStart time.Time //
	lockedUntil time.Time
	locks       int  // locks since the last success (the backoff grows with it)
	total       int  // consecutive failures since the last success
	permanent   bool //
}

// LocalLockout is the in-process Lockout (one instance only).
type LocalLockout struct {
	policy Policy
	now    func() time.Time
	mu     sync.Mutex
	state  map[string]*lockState
}

// NewLocalLockout returns an in-process lockout.
func NewLocalLockout(p Policy, now func() time.Time) *LocalLockout {
	if now == nil {
		now = time.Now
	}
	return &LocalLockout{policy: p, now: now, state: map[string]*lockState{}}
}

// Name is "local".
func (*LocalLockout) Name() string { return "local" }

// Begin reserves a check of account's password.
func (l *LocalLockout) Begin(_ context.Context, account string) (Attempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	s := l.state[account]
	if s == nil {
		s = &lockState{windowStart: now}
		l.state[account] = s
	}
	return begin(l.policy, s, now), nil
}

// begin is the lockout's state machine, shared in meaning with the Redis script.
func begin(p Policy, s *lockState, now time.Time) Attempt {
	if s.permanent {
		return Attempt{Permanent: true}
	}
	if now.Before(s.lockedUntil) {
		return Attempt{LockedFor: s.lockedUntil.Sub(now)}
	}
	if !s.lockedUntil.IsZero() { // a lock just ran out: a fresh window
		s.fails, s.lockedUntil, s.windowStart = 0, time.Time{}, now
	}
	if now.Sub(s.windowStart) > p.Window {
		s.fails, s.windowStart = 0, now
	}
	if s.total >= p.PermanentAfter {
		s.permanent = true
		return Attempt{Permanent: true}
	}
	if s.fails >= p.Attempts { // reserved by concurrent attempts that have not finished yet
		return Attempt{LockedFor: p.backoff(s.locks)}
	}
	s.fails++
	s.total++
	return Attempt{Allowed: true}
}

// Fail engages the lock once the failures reach the policy's count.
func (l *LocalLockout) Fail(_ context.Context, account string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.state[account]; s != nil {
		fail(l.policy, s, l.now())
	}
	return nil
}

func fail(p Policy, s *lockState, now time.Time) {
	if s.fails >= p.Attempts && !now.Before(s.lockedUntil) {
		s.lockedUntil = now.Add(p.backoff(s.locks))
		s.locks++
	}
	if s.total >= p.PermanentAfter {
		s.permanent = true
	}
}

// Succeed clears the account's failures.
func (l *LocalLockout) Succeed(_ context.Context, account string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.state[account]; s != nil && !s.permanent {
		delete(l.state, account)
	}
	return nil
}

// Unlock clears everything.
func (l *LocalLockout) Unlock(_ context.Context, account string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.state, account)
	return nil
}

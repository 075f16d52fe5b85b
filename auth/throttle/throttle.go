// Package throttle slows attackers down: GCRA rate limits (Limiter) and per-account brute-force
// lockout (Lockout), each in Redis (shared by every instance) or in process (one instance).
//
// It fails closed: a Redis error is returned, never taken as "allowed"; callers refuse the
// request (or, when configured, fall back to the in-process implementation and say so loudly).
package throttle

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is a GCRA rate: Rate events per Period, with bursts of up to Burst.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// String renders "rate/period".
func (l Limit) String() string { return fmt.Sprintf("%d/%s", l.Rate, l.Period) }

// ParseLimit reads "10/1m" (rate/period; burst = rate) or "10/1m/20" (with a burst).
func ParseLimit(s string) (Limit, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Limit{}, fmt.Errorf("limit %q: want rate/period, e.g. 10/1m", s)
	}
	rate, err := strconv.Atoi(parts[0])
	if err != nil || rate < 1 {
		return Limit{}, fmt.Errorf("limit %q: rate must be a positive integer", s)
	}
	period, err := time.ParseDuration(parts[1])
	if err != nil || period <= 0 {
		return Limit{}, fmt.Errorf("limit %q: period must be a duration, e.g. 1m", s)
	}
	burst := rate
	if len(parts) == 3 {
		if burst, err = strconv.Atoi(parts[2]); err != nil || burst < 1 {
			return Limit{}, fmt.Errorf("limit %q: burst must be a positive integer", s)
		}
	}
	return Limit{Rate: rate, Period: period, Burst: burst}, nil
}

// Decision is a limiter's answer.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when refused: how long until one more event is allowed
}

// Limiter rate-limits events by key.
type Limiter interface {
	// Allow consumes one event of key if the limit allows it.
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
	// Check reports whether one more event would be allowed, consuming nothing.
	Check(ctx context.Context, key string, l Limit) (Decision, error)
	// Name says which limiter it is, for messages ("redis", "local").
	Name() string
}

// Policy configures the lockout.
type Policy struct {
	// Attempts password (or MFA) checks may fail within Window before the account locks.
	Attempts int
	Window   time.Duration
	// A lock lasts Backoff, doubling with each lock since the last success, up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// After PermanentAfter consecutive failures the account stays locked until an admin unlocks
	// it (NIST SP 800-63B: at most 100).
	PermanentAfter int
}

// DefaultPolicy: 5 failures in 15 minutes lock for 1 minute, then 2, 4, ... up to 1 hour;
// 100 consecutive failures lock until an admin unlocks.
var DefaultPolicy = Policy{Attempts: 5, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100}

// Attempt is the lockout's answer to "may this account's password be checked now?".
type Attempt struct {
	Allowed   bool
	Permanent bool          // locked until an admin unlocks
	LockedFor time.Duration // when temporarily locked: how long still
}

// Lockout counts failed checks per account. Begin reserves a check before any work is done, so
// of any number of concurrent attempts at most Policy.Attempts are let through; it counts the
// attempt as failed until Succeed says otherwise. Attempts refused during a lock do not extend it.
type Lockout interface {
	Begin(ctx context.Context, account string) (Attempt, error)
	// Fail records that an allowed check failed (the lock engages when the count is reached).
	Fail(ctx context.Context, account string) error
	// Succeed clears the account's failures.
	Succeed(ctx context.Context, account string) error
	// Unlock clears everything, a permanent lock included (an admin's act).
	Unlock(ctx context.Context, account string) error
	Name() string
}

// backoff is the length of the n-th lock (n from 0).
func (p Policy) backoff(n int) time.Duration {
	d := p.Backoff
	for range n {
		if d >= p.MaxBackoff/2 {
			return p.MaxBackoff
		}
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

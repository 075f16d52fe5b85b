// Package throttle slows attackers down: GCRA rate limits (Limiter) and brute-force lockout
// (Lockout: per account and source address, and per account for the permanent lock), each in
// Redis (shared by every instance) or in process (one instance).
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
	// Attempts password (or MFA) checks of one account from one source may fail within Window
	// before that (account, source) locks: a guesser elsewhere does not lock the owner out.
	Attempts int
	Window   time.Duration
	// A lock lasts Backoff, doubling with each lock of that source since its last success, up to
	// MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// After PermanentAfter consecutive failures of the account, from all sources together, it stays
	// locked for every source until an admin unlocks it (NIST SP 800-63B: at most 100).
	PermanentAfter int
}

// DefaultPolicy: 5 failures from one source in 15 minutes lock that source out for 1 minute, then
// 2, 4, ... up to 1 hour; 100 consecutive failures of the account lock it until an admin unlocks.
var DefaultPolicy = Policy{Attempts: 5, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100}

// Attempt is the lockout's answer to "may this account's credential be checked now, from here?".
type Attempt struct {
	Allowed   bool
	Permanent bool          // locked for every source until an admin unlocks
	LockedFor time.Duration // when temporarily locked: how long still
	// Since is when the lock that refuses this attempt engaged: for a permanent lock, when it
	// became permanent; for a soft lock, when that lock engaged (a lock about to engage, its
	// attempts all reserved by checks still in flight, engages now). Zero when Allowed. An unlock
	// recorded elsewhere as "unlocked at T" applies to a lock with Since <= T.
	Since time.Time
}

// Lockout counts failed checks per (account, source) for the soft, backing-off lock, and per
// account, across all sources, for the permanent one. Begin reserves a check before any work is
// done, so of any number of concurrent attempts from one source at most Policy.Attempts are let
// through, and from all sources together at most Policy.PermanentAfter before the permanent lock;
// it counts the attempt as failed until Succeed says otherwise. Attempts refused during a lock do
// not extend it. The source "" is a source like any other.
type Lockout interface {
	// Begin reserves a check of account's credential, made from source (a client address; "" or "local" allowed).
	Begin(ctx context.Context, account, source string) (Attempt, error)
	// Fail records that an allowed check from source failed.
	Fail(ctx context.Context, account, source string) error
	// Succeed clears source's failures of account and the account's consecutive-failure count
	// (not other sources' soft locks: an attacker's address stays locked after the owner logs in).
	Succeed(ctx context.Context, account, source string) error
	// Unlock clears everything of account, every source's soft lock and a permanent lock included (an admin's act).
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

package throttle

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Degraded wraps a Redis limiter and lockout so that, while Redis cannot be reached, the
// in-process ones answer instead of failing closed. It is an operator's explicit choice
// (MCPAUTH_DEGRADE_LIMITS): limits then hold per instance only, and every switch is logged at
// ERROR. When Redis answers again, it is used again without a restart.
type Degraded struct {
	log      *slog.Logger
	degraded atomic.Bool
}

// NewDegraded returns the switch shared by a degraded limiter and lockout.
func NewDegraded(logger *slog.Logger) *Degraded { return &Degraded{log: logger} }

func (d *Degraded) note(err error, what string) {
	if err != nil {
		if !d.degraded.Swap(true) {
			d.log.Error("REDIS UNREACHABLE: "+what+" fall back to in-process limits; limits now hold per instance only", "error", err)
		}
		return
	}
	if d.degraded.Swap(false) {
		d.log.Warn(what + " use Redis again")
	}
}

// Limiter returns a limiter that uses primary, or fallback while primary fails.
func (d *Degraded) Limiter(primary, fallback Limiter) Limiter {
	return &degradedLimiter{d: d, primary: primary, fallback: fallback}
}

// Lockout returns a lockout that uses primary, or fallback while primary fails.
func (d *Degraded) Lockout(primary, fallback Lockout) Lockout {
	return &degradedLockout{d: d, primary: primary, fallback: fallback}
}

type degradedLimiter struct {
	d                 *Degraded
	primary, fallback Limiter
}

func (l *degradedLimiter) Name() string {
	return l.primary.Name() + " (degrades to " + l.fallback.Name() + ")"
}

func (l *degradedLimiter) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	dec, err := l.primary.Allow(ctx, key, lim)
	l.d.note(err, "rate limits")
	if err != nil {
		return l.fallback.Allow(ctx, key, lim)
	}
	return dec, nil
}

func (l *degradedLimiter) Check(ctx context.Context, key string, lim Limit) (Decision, error) {
	dec, err := l.primary.Check(ctx, key, lim)
	l.d.note(err, "rate limits")
	if err != nil {
		return l.fallback.Check(ctx, key, lim)
	}
	return dec, nil
}

type degradedLockout struct {
	d                 *Degraded
	primary, fallback Lockout
}

func (l *degradedLockout) Name() string {
	return l.primary.Name() + " (degrades to " + l.fallback.Name() + ")"
}

func (l *degradedLockout) Begin(ctx context.Context, account, source string) (Attempt, error) {
	a, err := l.primary.Begin(ctx, account, source)
	l.d.note(err, "account lockouts")
	if err != nil {
		return l.fallback.Begin(ctx, account, source)
	}
	return a, nil
}

func (l *degradedLockout) Fail(ctx context.Context, account, source string) error {
	if err := l.primary.Fail(ctx, account, source); err != nil {
		l.d.note(err, "account lockouts")
		return l.fallback.Fail(ctx, account, source)
	}
	return nil
}

func (l *degradedLockout) Succeed(ctx context.Context, account, source string) error {
	_ = l.fallback.Succeed(ctx, account, source)
	l.d.note(l.primary.Succeed(ctx, account, source), "account lockouts")
	return nil // the fallback is cleared; a stale count left in Redis only errs on the safe side
}

func (l *degradedLockout) Unlock(ctx context.Context, account string) error {
	_ = l.fallback.Unlock(ctx, account)
	return l.primary.Unlock(ctx, account) // an admin must know if the shared lock stayed
}

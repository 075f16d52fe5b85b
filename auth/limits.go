package auth

import (
	"context"
	"math"
	"net/netip"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/call"
)

// Limits are the rate limits auth applies (GCRA, per key).
type Limits struct {
	LoginPerIdentifier throttle.Limit // per email/username, whether or not the account exists
	LoginPerAddress    throttle.Limit // per client address
	Refresh            throttle.Limit // per client address
	APIKeyFailures     throttle.Limit // failed API-key presentations per client address
}

// DefaultLimits are generous for people and tight for scripts guessing passwords.
var DefaultLimits = Limits{
	LoginPerIdentifier: throttle.Limit{Rate: 10, Period: time.Minute, Burst: 10},
	LoginPerAddress:    throttle.Limit{Rate: 60, Period: time.Minute, Burst: 30},
	Refresh:            throttle.Limit{Rate: 60, Period: time.Minute, Burst: 30},
	APIKeyFailures:     throttle.Limit{Rate: 20, Period: time.Minute, Burst: 10},
}

// limitAddr is the client address the per-address limits and the lockout count by, from the
// transport's request in ctx (package call): an IPv4 address as is, an IPv6 address as its /64
// ("2001:db8:1:2::/64": a host is given a whole /64, so counting per /128 would hand it 2^64
// budgets), an IPv4-mapped IPv6 address as its IPv4 address, and "local" without an address
// (stdio). The audit trail keeps the full address.
func limitAddr(ctx context.Context) string {
	r := call.From(ctx)
	if r == nil || !r.ClientAddr.IsValid() {
		return "local"
	}
	if g := AddrGroup(r.ClientAddr); g.Addr().Is6() {
		return g.String()
	}
	return r.ClientAddr.Unmap().String()
}

// AddrGroup is the group of client addresses every per-address limit counts together: an IPv4
// address on its own (an IPv4-mapped IPv6 address as its IPv4 address), an IPv6 address with
// its whole /64.
func AddrGroup(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := 64
	if ip.Is4() {
		bits = 32
	}
	p, _ := ip.Prefix(bits)
	return p
}

// RateLimited is the error of a refused request: RATE_LIMITED with retry_after_seconds.
func RateLimited(retry time.Duration) *apierr.Error {
	secs := int(math.Ceil(retry.Seconds()))
	return apierr.New(apierr.RateLimited, "too many requests; retry later").With("retry_after_seconds", max(secs, 1))
}

// limiterDown is the fail-closed answer when the limiter cannot be asked.
func limiterDown(name string, err error) error {
	return apierr.New(apierr.Internal, "rate limiter unavailable ("+name+"); refusing to authenticate").Wrap(err)
}

// allow applies one limit.
func (s *Service) allow(ctx context.Context, key string, l throttle.Limit) error {
	d, err := s.cfg.Limiter.Allow(ctx, key, l)
	if err != nil {
		return limiterDown(s.cfg.Limiter.Name(), err)
	}
	if !d.Allowed {
		rateLimitHits.Add(ctx, 1, metric.WithAttributes(attribute.String("limit", limitName(key))))
		return RateLimited(d.RetryAfter)
	}
	return nil
}

// limitName is the limit part of a key ("login:id", "refresh:addr"): never the identifier.
func limitName(key string) string {
	parts := strings.SplitN(key, ":", 3)
	if len(parts) < 2 {
		return key
	}
	return parts[0] + ":" + parts[1]
}

// Unlock clears an account's lockout, a permanent one included (an admin's act).
func (s *Service) Unlock(ctx context.Context, userID string) error {
	u, err := s.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	if err := s.cfg.Lockout.Unlock(ctx, userID); err != nil {
		return limiterDown(s.cfg.Lockout.Name(), err)
	}
	s.log.InfoContext(ctx, "account unlocked", "user_id", userID)
	return s.recordDurable(ctx, audit.Event{Type: audit.AccountUnlocked, Subject: userID, OrgID: u.OrgID})
}

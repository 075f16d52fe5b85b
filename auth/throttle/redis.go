package throttle

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// RedisLimiter is the Limiter shared by every instance using one Redis: GCRA through
// github.com/go-redis/redis_rate.
type RedisLimiter struct {
	rl *redis_rate.Limiter
}

// NewRedisLimiter returns a limiter on client.
func NewRedisLimiter(client redis.UniversalClient) *RedisLimiter {
	return &RedisLimiter{rl: redis_rate.NewLimiter(client)}
}

// Name is "redis".
func (*RedisLimiter) Name() string { return "redis" }

func rrLimit(l Limit) redis_rate.Limit {
	return redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst}
}

// Allow consumes one event of key if allowed.
func (r *RedisLimiter) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	res, err := r.rl.Allow(ctx, key, rrLimit(l))
	if err != nil {
		return Decision{}, fmt.Errorf("rate limiter (redis): %w", err)
	}
	if res.Allowed == 0 {
		return Decision{RetryAfter: res.RetryAfter}, nil
	}
	return Decision{Allowed: true}, nil
}

// Check reports whether one more event would be allowed, consuming nothing.
func (r *RedisLimiter) Check(ctx context.Context, key string, l Limit) (Decision, error) {
	res, err := r.rl.AllowN(ctx, key, rrLimit(l), 0)
	if err != nil {
		return Decision{}, fmt.Errorf("rate limiter (redis): %w", err)
	}
	if res.Remaining < 1 {
		retry := res.RetryAfter
		if retry <= 0 {
			retry = l.Period / time.Duration(l.Rate)
		}
		return Decision{RetryAfter: retry}, nil
	}
	return Decision{Allowed: true}, nil
}

// RedisLockout is the Lockout shared by every instance using one Redis. Each account is one
// hash, changed only by Lua scripts, so every step is atomic across instances.
type RedisLockout struct {
	client redis.UniversalClient
	policy Policy
}

// NewRedisLockout returns a lockout on client.
func NewRedisLockout(client redis.UniversalClient, p Policy) *RedisLockout {
	return &RedisLockout{client: client, policy: p}
}

// Name is "redis".
func (*RedisLockout) Name() string { return "redis" }

const lockoutPrefix = "mcpauth:lockout:"

// The state machine of begin() and fail() in local.go, in Lua. Times are milliseconds of the
// Redis server's clock, so instances with skewed clocks still agree.
// Fields: f fails in window, ws window start, lu locked until, lk locks since success, t total
// consecutive failures, p permanent.
var beginScript = redis.NewScript(`
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local attempts, window, permAfter, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local backoff, maxBackoff = tonumber(ARGV[5]), tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'f', 'ws', 'lu', 'lk', 't', 'p')
local f, ws, lu, lk, t = tonumber(h[1]) or 0, tonumber(h[2]) or now, tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0
if h[6] == '1' then return {'permanent', 0} end
if now < lu then return {'locked', lu - now} end
if lu > 0 then f = 0; lu = 0; ws = now end
if now - ws > window then f = 0; ws = now end
if t >= permAfter then
  redis.call('HSET', KEYS[1], 'p', '1')
  return {'permanent', 0}
end
if f >= attempts then
  local d = backoff
  for i = 1, lk do d = math.min(d * 2, maxBackoff) end
  return {'locked', d}
end
redis.call('HSET', KEYS[1], 'f', f + 1, 'ws', ws, 'lu', lu, 'lk', lk, 't', t + 1)
redis.call('PEXPIRE', KEYS[1], ttl)
return {'allowed', 0}
`)

var failScript = redis.NewScript(`
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local attempts, permAfter, backoff, maxBackoff = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'f', 'lu', 'lk', 't')
local f, lu, lk, t = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0
if f >= attempts and now >= lu then
  local d = backoff
  for i = 1, lk do d = math.min(d * 2, maxBackoff) end
  redis.call('HSET', KEYS[1], 'lu', now + d, 'lk', lk + 1)
end
if t >= permAfter then redis.call('HSET', KEYS[1], 'p', '1') end
return 1
`)

var succeedScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'p') == '1' then return 0 end
return redis.call('DEL', KEYS[1])
`)

// stateTTL is how long an account's failures are remembered without activity: longer than any
// lock, so a lock never outlives its record; a permanent lock is refreshed by every attempt.
const stateTTL = 30 * 24 * time.Hour

// Begin reserves a check of account's password.
func (r *RedisLockout) Begin(ctx context.Context, account string) (Attempt, error) {
	p := r.policy
	res, err := beginScript.Run(ctx, r.client, []string{lockoutPrefix + account},
		p.Attempts, p.Window.Milliseconds(), p.PermanentAfter, stateTTL.Milliseconds(),
		p.Backoff.Milliseconds(), p.MaxBackoff.Milliseconds()).Slice()
	if err != nil {
		return Attempt{}, fmt.Errorf("lockout (redis): %w", err)
	}
	verdict, _ := res[0].(string)
	ms, _ := res[1].(int64)
	switch verdict {
	case "allowed":
		return Attempt{Allowed: true}, nil
	case "permanent":
		return Attempt{Permanent: true}, nil
	default:
		return Attempt{LockedFor: time.Duration(ms) * time.Millisecond}, nil
	}
}

// Fail engages the lock once the failures reach the policy's count.
func (r *RedisLockout) Fail(ctx context.Context, account string) error {
	p := r.policy
	if err := failScript.Run(ctx, r.client, []string{lockoutPrefix + account},
		p.Attempts, p.PermanentAfter, p.Backoff.Milliseconds(), p.MaxBackoff.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("lockout (redis): %w", err)
	}
	return nil
}

// Succeed clears the account's failures (not a permanent lock).
func (r *RedisLockout) Succeed(ctx context.Context, account string) error {
	if err := succeedScript.Run(ctx, r.client, []string{lockoutPrefix + account}).Err(); err != nil {
		return fmt.Errorf("lockout (redis): %w", err)
	}
	return nil
}

// Unlock clears everything, a permanent lock included.
func (r *RedisLockout) Unlock(ctx context.Context, account string) error {
	if err := r.client.Del(ctx, lockoutPrefix+account).Err(); err != nil {
		return fmt.Errorf("lockout (redis): %w", err)
	}
	return nil
}

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

// RedisLockout is the Lockout shared by every instance using one Redis, changed only by Lua
// scripts, so every step is atomic across instances.
//
// Keys: an account's hash mcpauth:lockout:{<account>} (t consecutive failures from all sources,
// p permanent, ps when it became permanent, g generation, sx the latest expiry of any of its
// source keys) and one hash per source, mcpauth:lockout:{<account>}:src:<source> (the soft lock:
// f fails in window, ws window start, lu locked until, lk locks since the source's last success,
// ls when the lock engaged, g the generation it was written under). The hash tag puts an account's
// keys in one Redis Cluster slot, and every script touches the keys of one account only (account
// ids are never empty: an empty tag would hash the whole key). Unlock cannot enumerate the source
// keys, so it increments g: a source key of another generation counts as empty.
//
// Lifetimes. A source key is needed while its window runs (ws + Window) and while it is locked,
// then remembers its lock count for MaxBackoff more (lu + MaxBackoff): a guesser who waits that
// long before resuming is no faster than one who meets the longest lock anyway. So each write
// sets it to expire at max(now + Window, max(lu, now) + MaxBackoff), and records that in sx when
// later than sx. The account key never expires while it counts failures (t > 0) or is locked
// permanently; otherwise it expires a second after sx (or goes at once when sx has passed), so it
// outlives every source key of the account, whatever policy wrote them: while any source key
// lives, the account key and its generation live too. When the account key is gone, no source key
// is left, and the generation may start again from 0 without reviving a stale one.
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

func accountKey(account string) string { return lockoutPrefix + "{" + account + "}" }

func sourceKey(account, source string) string { return accountKey(account) + ":src:" + source }

// lockoutLua is the common head of the lockout's scripts: the Redis server's clock in
// milliseconds (so instances with skewed clocks still agree), the policy (ARGV), the account's
// state (KEYS[1]) and helpers for the source's (KEYS[2]). The state machine is begin() and fail()
// in local.go.
const lockoutLua = `
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local attempts, window, permAfter = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local backoff0, maxBackoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local acct = redis.call('HMGET', KEYS[1], 't', 'p', 'ps', 'g', 'sx')
local t, perm, ps, g, sx = tonumber(acct[1]) or 0, acct[2] == '1', tonumber(acct[3]) or 0, acct[4] or '0', tonumber(acct[5]) or 0

local function backoff(n)
  local d = math.min(backoff0, maxBackoff)
  for i = 1, n do
    if d >= maxBackoff then break end
    d = math.min(d * 2, maxBackoff)
  end
  return d
end

-- the source's state: f, ws, lu, lk, ls; empty if written under another generation
local function getSource()
  local h = redis.call('HMGET', KEYS[2], 'f', 'ws', 'lu', 'lk', 'ls', 'g')
  if (h[6] or '0') ~= g then return 0, now, 0, 0, 0 end
  return tonumber(h[1]) or 0, tonumber(h[2]) or now, tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0
end

local function putSource(f, ws, lu, lk, ls)
  redis.call('HSET', KEYS[2], 'f', f, 'ws', ws, 'lu', lu, 'lk', lk, 'ls', ls, 'g', g)
  local exp = math.max(now + window, math.max(lu, now) + maxBackoff)
  redis.call('PEXPIREAT', KEYS[2], exp)
  if exp > sx then
    sx = exp
    redis.call('HSET', KEYS[1], 'sx', sx)
  end
end

-- gives the account key the lifetime its state needs (see RedisLockout)
local function settle()
  if perm or t > 0 then
    redis.call('PERSIST', KEYS[1])
  elseif sx + 1000 > now then
    redis.call('PEXPIREAT', KEYS[1], sx + 1000)
  else
    redis.call('DEL', KEYS[1])
  end
end
`

var beginScript = redis.NewScript(lockoutLua + `
if perm then return {'permanent', 0, ps} end
local f, ws, lu, lk, ls = getSource()
if now < lu then return {'locked', lu - now, ls} end
if lu > 0 then f = 0; lu = 0; ls = 0; ws = now end
if now - ws > window then f = 0; ws = now end
if t >= permAfter then
  perm = true
  redis.call('HSET', KEYS[1], 'p', '1', 'ps', now)
  settle()
  return {'permanent', 0, now}
end
if f >= attempts then return {'locked', backoff(lk), now} end
t = t + 1
redis.call('HSET', KEYS[1], 't', t)
putSource(f + 1, ws, lu, lk, ls)
settle()
return {'allowed', 0, 0}
`)

var failScript = redis.NewScript(lockoutLua + `
local f, ws, lu, lk = getSource()
if f >= attempts and now >= lu then
  putSource(f, ws, now + backoff(lk), lk + 1, now)
end
if t >= permAfter and not perm then
  perm = true
  redis.call('HSET', KEYS[1], 'p', '1', 'ps', now)
end
settle()
return 1
`)

var succeedScript = redis.NewScript(lockoutLua + `
redis.call('DEL', KEYS[2])
if not perm and t > 0 then
  t = 0
  redis.call('HDEL', KEYS[1], 't')
end
settle()
return 1
`)

var unlockScript = redis.NewScript(lockoutLua + `
redis.call('HINCRBY', KEYS[1], 'g', 1)
redis.call('HDEL', KEYS[1], 't', 'p', 'ps')
t, perm = 0, false
settle()
return 1
`)

func (r *RedisLockout) run(ctx context.Context, s *redis.Script, keys ...string) *redis.Cmd {
	p := r.policy
	return s.Run(ctx, r.client, keys, p.Attempts, p.Window.Milliseconds(), p.PermanentAfter,
		p.Backoff.Milliseconds(), p.MaxBackoff.Milliseconds())
}

// Begin reserves a check of account's credential from source.
func (r *RedisLockout) Begin(ctx context.Context, account, source string) (Attempt, error) {
	res, err := r.run(ctx, beginScript, accountKey(account), sourceKey(account, source)).Slice()
	if err != nil {
		return Attempt{}, fmt.Errorf("lockout (redis): %w", err)
	}
	if len(res) != 3 {
		return Attempt{}, fmt.Errorf("lockout (redis): unexpected answer %v", res)
	}
	verdict, _ := res[0].(string)
	ms, _ := res[1].(int64)
	since, _ := res[2].(int64)
	switch verdict {
	case "allowed":
		return Attempt{Allowed: true}, nil
	case "permanent":
		return Attempt{Permanent: true, Since: time.UnixMilli(since)}, nil
	default:
		return Attempt{LockedFor: time.Duration(ms) * time.Millisecond, Since: time.UnixMilli(since)}, nil
	}
}

// Fail engages source's lock once its failures reach the policy's count, and the permanent lock
// once the account's do.
func (r *RedisLockout) Fail(ctx context.Context, account, source string) error {
	if err := r.run(ctx, failScript, accountKey(account), sourceKey(account, source)).Err(); err != nil {
		return fmt.Errorf("lockout (redis): %w", err)
	}
	return nil
}

// Succeed clears source's failures of account and the account's consecutive count (not a
// permanent lock, not other sources' soft locks).
func (r *RedisLockout) Succeed(ctx context.Context, account, source string) error {
	if err := r.run(ctx, succeedScript, accountKey(account), sourceKey(account, source)).Err(); err != nil {
		return fmt.Errorf("lockout (redis): %w", err)
	}
	return nil
}

// Unlock clears everything of account: it starts a new generation, so every source key of the
// old one counts as empty.
func (r *RedisLockout) Unlock(ctx context.Context, account string) error {
	if err := r.run(ctx, unlockScript, accountKey(account)).Err(); err != nil {
		return fmt.Errorf("lockout (redis): %w", err)
	}
	return nil
}

package throttle_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/internal/mcptest"
	"github.com/bduf/mcpauth/internal/redistest"
)

// Both implementations run the same tests, on the real clock (Redis keeps its own) unless a
// test gives the in-process one a clock of its own.

type impl struct {
	name    string
	limiter func(t *testing.T) throttle.Limiter
	// lockout returns a lockout; now is the in-process one's clock (nil: time.Now).
	lockout func(t *testing.T, p throttle.Policy, now func() time.Time) throttle.Lockout
	// redisClock: the lockout keeps Redis's clock, not the one it is given.
	redisClock bool
}

func redisClient(t *testing.T) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: redistest.Start(t)})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var impls = []impl{
	{"local",
		func(*testing.T) throttle.Limiter { return throttle.NewLocalLimiter(nil) },
		func(_ *testing.T, p throttle.Policy, now func() time.Time) throttle.Lockout {
			return throttle.NewLocalLockout(p, now)
		}, false},
	{"redis",
		func(t *testing.T) throttle.Limiter { return throttle.NewRedisLimiter(redisClient(t)) },
		func(t *testing.T, p throttle.Policy, _ func() time.Time) throttle.Lockout {
			return throttle.NewRedisLockout(redisClient(t), p)
		}, true},
	// A Redis Cluster of three masters: every script's keys must be of one slot (a CROSSSLOT
	// error otherwise), whichever master it lands on.
	{"redis_cluster",
		func(t *testing.T) throttle.Limiter {
			return throttle.NewRedisLimiter(redistest.StartCluster(t, 3).Client(t))
		},
		func(t *testing.T, p throttle.Policy, _ func() time.Time) throttle.Lockout {
			return throttle.NewRedisLockout(redistest.StartCluster(t, 3).Client(t), p)
		}, true},
}

var fast = throttle.Policy{Attempts: 5, Window: time.Minute, Backoff: 150 * time.Millisecond, MaxBackoff: time.Second, PermanentAfter: 100}

// slow locks for an hour: a test that sees a soft lock need not race its end.
var slow = throttle.Policy{Attempts: 3, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 100}

// The sources of the tests: the guesser's address, the owner's usual one.
const guesser, owner = "203.0.113.7", "198.51.100.1"

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func failN(t *testing.T, l throttle.Lockout, account, source string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		a, err := l.Begin(ctx, account, source)
		if err != nil || !a.Allowed {
			t.Fatalf("attempt %d from %q = %+v, %v; want allowed", i+1, source, a, err)
		}
		if err := l.Fail(ctx, account, source); err != nil {
			t.Fatal(err)
		}
	}
}

// succeed is a check from source that is allowed and succeeds.
func succeed(t *testing.T, l throttle.Lockout, account, source string) {
	t.Helper()
	ctx := context.Background()
	if a, err := l.Begin(ctx, account, source); err != nil || !a.Allowed {
		t.Fatalf("attempt from %q = %+v, %v; want allowed", source, a, err)
	}
	if err := l.Succeed(ctx, account, source); err != nil {
		t.Fatal(err)
	}
}

// refused returns Begin's answer, failing the test if it was allowed.
func refused(t *testing.T, l throttle.Lockout, account, source string) throttle.Attempt {
	t.Helper()
	a, err := l.Begin(context.Background(), account, source)
	if err != nil || a.Allowed {
		t.Fatalf("attempt from %q = %+v, %v; want refused", source, a, err)
	}
	return a
}

// awaitAllowed polls Begin until the lock runs out (deadline: 5 s) and returns how long it took.
func awaitAllowed(t *testing.T, l throttle.Lockout, account, source string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		a, err := l.Begin(context.Background(), account, source)
		if err != nil {
			t.Fatal(err)
		}
		if a.Allowed {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond) // polling a clock-based condition
	}
	t.Fatal("the lock never ran out")
	return 0
}

func TestShouldLockASourceAfterTooManyFailures(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, fast, nil)
			failN(t, l, "usr_1", guesser, 5)
			if a := refused(t, l, "usr_1", guesser); a.LockedFor <= 0 || a.Permanent || a.Since.IsZero() {
				t.Fatalf("6th attempt = %+v; want a soft lock with its start", a)
			}
			if other, _ := l.Begin(ctx, "usr_2", guesser); !other.Allowed {
				t.Fatal("another account is locked too")
			}
			// Attempts during the lock do not extend it.
			for range 5 {
				refused(t, l, "usr_1", guesser)
			}
			first := awaitAllowed(t, l, "usr_1", guesser)
			if first > time.Second {
				t.Fatalf("a 150 ms lock lasted %s: attempts during it extended it", first)
			}
			// The attempt awaitAllowed was let through counts: four more fail, then a longer lock.
			if err := l.Fail(ctx, "usr_1", guesser); err != nil {
				t.Fatal(err)
			}
			failN(t, l, "usr_1", guesser, 4)
			if a := refused(t, l, "usr_1", guesser); a.LockedFor <= 160*time.Millisecond {
				t.Fatalf("second lock = %+v, want longer than the first (back-off grows)", a)
			}
		})
	}
}

func TestShouldLockTheGuessersAddressWhileTheOwnersStaysAllowed(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			l := im.lockout(t, slow, nil)
			failN(t, l, "admin", guesser, slow.Attempts)
			refused(t, l, "admin", guesser)
			succeed(t, l, "admin", owner)
			succeed(t, l, "admin", owner) // and again next time
			// "" and "local" are sources like any other.
			for _, s := range []string{"", "local"} {
				succeed(t, l, "admin", s)
			}
		})
	}
}

func TestShouldKeepTheGuessersAddressLockedAfterTheOwnerLogsIn(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			l := im.lockout(t, slow, nil)
			failN(t, l, "admin", guesser, slow.Attempts)
			succeed(t, l, "admin", owner)
			if a := refused(t, l, "admin", guesser); a.Permanent || a.LockedFor <= 0 {
				t.Fatalf("guesser after the owner's login = %+v, want still soft-locked", a)
			}
			// A guesser who stays below the count from the empty source does not get locked by
			// the owner's success either; the count of "" is its own.
			failN(t, l, "admin", "", slow.Attempts-1)
			succeed(t, l, "admin", owner)
			failN(t, l, "admin", "", 1)
			refused(t, l, "admin", "")
		})
	}
}

func TestShouldResetOnSuccessAndUnlockOnRequest(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, fast, nil)
			failN(t, l, "usr_1", owner, 4)
			succeed(t, l, "usr_1", owner)
			failN(t, l, "usr_1", owner, 5) // the count started again
			refused(t, l, "usr_1", owner)
			if err := l.Unlock(ctx, "usr_1"); err != nil {
				t.Fatal(err)
			}
			if a, _ := l.Begin(ctx, "usr_1", owner); !a.Allowed {
				t.Fatal("still locked after an admin unlock")
			}
		})
	}
}

func TestShouldLetAtMostNOfManyConcurrentAttemptsThrough(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			l := im.lockout(t, fast, nil)
			allowed := concurrentFailures(t, l, 50, func(int) string { return guesser })
			if allowed != fast.Attempts {
				t.Fatalf("%d of 50 concurrent attempts from one source were let through, want exactly %d", allowed, fast.Attempts)
			}
		})
	}
}

func TestShouldLetAtMostPermanentAfterOfConcurrentAttemptsFromManySourcesThrough(t *testing.T) {
	p := throttle.Policy{Attempts: 5, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 20}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			l := im.lockout(t, p, nil)
			source := func(i int) string { return fmt.Sprintf("10.0.%d.%d", i%100/10, i%10) }
			allowed := concurrentFailures(t, l, 200, source)
			if allowed != p.PermanentAfter {
				t.Fatalf("%d of 200 concurrent attempts from 100 sources were let through, want exactly %d", allowed, p.PermanentAfter)
			}
			for i := range 100 {
				if a := refused(t, l, "usr_1", source(i)); !a.Permanent || a.Since.IsZero() {
					t.Fatalf("source %s = %+v, want a permanent lock", source(i), a)
				}
			}
		})
	}
}

// concurrentFailures makes n concurrent attempts at usr_1, the i-th from source(i), failing each
// one let through, and returns how many were.
func concurrentFailures(t *testing.T, l throttle.Lockout, n int, source func(i int) string) int {
	t.Helper()
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := l.Begin(context.Background(), "usr_1", source(i))
			if err != nil {
				t.Error(err)
				return
			}
			if a.Allowed {
				allowed.Add(1)
				if err := l.Fail(context.Background(), "usr_1", source(i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	return int(allowed.Load())
}

func TestShouldLockPermanentlyAfterTooManyConsecutiveFailures(t *testing.T) {
	p := throttle.Policy{Attempts: 3, Window: time.Minute, Backoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PermanentAfter: 6}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, p, nil)
			failN(t, l, "usr_1", owner, 3)
			awaitAllowed(t, l, "usr_1", owner) // that attempt is the 4th failure
			_ = l.Fail(ctx, "usr_1", owner)
			failN(t, l, "usr_1", owner, 2) // 6 consecutive failures
			if a := refused(t, l, "usr_1", owner); !a.Permanent {
				t.Fatalf("attempt = %+v, want a permanent lock", a)
			}
			// Well past the 20 ms lock: still refused.
			time.Sleep(50 * time.Millisecond) // nothing to await: the lock must not end
			if a := refused(t, l, "usr_1", owner); !a.Permanent {
				t.Fatalf("attempt = %+v, want a permanent lock", a)
			}
			if err := l.Succeed(ctx, "usr_1", owner); err != nil {
				t.Fatal(err)
			}
			if a := refused(t, l, "usr_1", owner); !a.Permanent {
				t.Fatal("a success cleared a permanent lock")
			}
			_ = l.Unlock(ctx, "usr_1")
			if a, _ := l.Begin(ctx, "usr_1", owner); !a.Allowed {
				t.Fatal("an admin unlock did not clear the permanent lock")
			}
		})
	}
}

func TestShouldLockEverySourcePermanentlyAfterFailuresSpreadOverManySources(t *testing.T) {
	p := throttle.Policy{Attempts: 3, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 10}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := newFakeClock()
			l := im.lockout(t, p, clock.Now)
			before := time.Now()
			for i := range 5 { // never 3 from one source: no soft lock on the way
				failN(t, l, "admin", fmt.Sprintf("10.0.0.%d", i), 2)
			}
			after := time.Now()
			clock.Advance(time.Minute)
			for _, s := range []string{"10.0.0.0", "10.0.0.9", owner, "", "local"} {
				a := refused(t, l, "admin", s)
				if !a.Permanent || a.Since.IsZero() {
					t.Fatalf("source %q = %+v, want a permanent lock with its start", s, a)
				}
				if im.name == "local" && !a.Since.Equal(clock.Now().Add(-time.Minute)) {
					t.Fatalf("permanent since %s, want the clock's %s at the 10th failure", a.Since, clock.Now().Add(-time.Minute))
				}
				if im.redisClock && (a.Since.Before(before.Add(-time.Second)) || a.Since.After(after.Add(time.Second))) {
					t.Fatalf("permanent since %s, want between %s and %s", a.Since, before, after)
				}
			}
			if err := l.Succeed(ctx, "admin", owner); err != nil {
				t.Fatal(err)
			}
			if a := refused(t, l, "admin", owner); !a.Permanent {
				t.Fatalf("after a success: %+v, want still permanent", a)
			}
		})
	}
}

func TestShouldLiftThePermanentAndEverySoftLockOnUnlock(t *testing.T) {
	p := throttle.Policy{Attempts: 2, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 7}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, p, nil)
			sources := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
			for _, s := range sources {
				failN(t, l, "admin", s, 2)
				if a := refused(t, l, "admin", s); a.Permanent {
					t.Fatalf("source %s = %+v, want a soft lock", s, a)
				}
			}
			failN(t, l, "admin", "10.0.0.4", 1) // the 7th
			if a := refused(t, l, "admin", "10.0.0.4"); !a.Permanent {
				t.Fatalf("after 7 failures: %+v, want a permanent lock", a)
			}
			if err := l.Unlock(ctx, "admin"); err != nil {
				t.Fatal(err)
			}
			// Every source starts afresh: its whole count again, then its soft lock again.
			for _, s := range sources {
				failN(t, l, "admin", s, 2)
				if a := refused(t, l, "admin", s); a.Permanent {
					t.Fatalf("source %s after the unlock = %+v, want a fresh soft lock", s, a)
				}
			}
		})
	}
}

func TestShouldDateASoftLockFromWhenItEngaged(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := newFakeClock()
			l := im.lockout(t, slow, clock.Now)
			failN(t, l, "usr_1", guesser, slow.Attempts-1)
			clock.Advance(10 * time.Second)
			if a, err := l.Begin(ctx, "usr_1", guesser); err != nil || !a.Allowed || !a.Since.IsZero() {
				t.Fatalf("last allowed attempt = %+v, %v; want allowed, with no Since", a, err)
			}
			engaged, before := clock.Now(), time.Now()
			if err := l.Fail(ctx, "usr_1", guesser); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			clock.Advance(5 * time.Second)
			a := refused(t, l, "usr_1", guesser)
			switch {
			case !im.redisClock:
				if !a.Since.Equal(engaged) || a.LockedFor != slow.Backoff-5*time.Second {
					t.Fatalf("lock = %+v, want since %s for %s", a, engaged, slow.Backoff-5*time.Second)
				}
			default: // Redis's clock, on this machine, to the millisecond
				if a.Since.Before(before.Truncate(time.Millisecond)) || a.Since.After(after) {
					t.Fatalf("lock since %s, want between %s and %s", a.Since, before, after)
				}
			}
		})
	}
}

// The Redis layout: mcpauth:lockout:{<account>} and mcpauth:lockout:{<account>}:src:<source>.
const adminKey, guesserKey = "mcpauth:lockout:{admin}", "mcpauth:lockout:{admin}:src:" + guesser

func TestShouldTreatARedisSourceKeyOfAnOlderGenerationAsEmpty(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t)
	l := throttle.NewRedisLockout(c, slow)
	failN(t, l, "admin", guesser, slow.Attempts)
	refused(t, l, "admin", guesser)
	if err := l.Unlock(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, guesserKey).Result(); err != nil || n != 1 {
		t.Fatalf("the source key written before the unlock: exists = %d, %v; want still there", n, err)
	}
	failN(t, l, "admin", guesser, slow.Attempts) // it counts as empty: the whole count again
	refused(t, l, "admin", guesser)
}

func TestShouldExpireRedisSourceKeysBeforeTheirAccountKey(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t)
	p := throttle.Policy{Attempts: 2, Window: time.Hour, Backoff: time.Minute, MaxBackoff: 2 * time.Hour, PermanentAfter: 5}
	l := throttle.NewRedisLockout(c, p)
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := c.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// The longest a source key lives: its window, or its lock and then MaxBackoff.
	longest := p.Window + 2*p.MaxBackoff
	failN(t, l, "admin", guesser, 2) // locked for 1 minute
	if d := pttl(guesserKey); d <= 0 || d > longest {
		t.Fatalf("source key ttl = %s, want in (0, %s]", d, longest)
	}
	if d := pttl(adminKey); d != -1 {
		t.Fatalf("account key ttl while it counts failures = %s, want none", d)
	}
	succeed(t, l, "admin", owner)
	if n, _ := c.Exists(ctx, "mcpauth:lockout:{admin}:src:"+owner).Result(); n != 0 {
		t.Fatal("the owner's source key outlived the owner's success")
	}
	if acct, src := pttl(adminKey), pttl(guesserKey); acct < src {
		t.Fatalf("account key ttl %s < source key ttl %s: the generation could go before a source key", acct, src)
	}
	if err := l.Unlock(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if acct, src := pttl(adminKey), pttl(guesserKey); acct < src || acct <= 0 {
		t.Fatalf("after the unlock: account key ttl %s, source key ttl %s; want the account's longer", acct, src)
	}
	failN(t, l, "admin", "10.0.0.1", 2)
	failN(t, l, "admin", "10.0.0.2", 2)
	failN(t, l, "admin", "10.0.0.3", 1) // the 5th: permanent
	if a := refused(t, l, "admin", owner); !a.Permanent {
		t.Fatalf("attempt = %+v, want permanent", a)
	}
	if d := pttl(adminKey); d != -1 {
		t.Fatalf("account key ttl while permanently locked = %s, want none", d)
	}
}

func TestShouldRateLimitWithGCRA(t *testing.T) {
	lim := throttle.Limit{Rate: 3, Period: time.Minute, Burst: 3}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.limiter(t)
			for i := range 3 {
				if d, err := l.Check(ctx, "k", lim); err != nil || !d.Allowed {
					t.Fatalf("check %d = %+v, %v", i, d, err)
				}
				if d, err := l.Allow(ctx, "k", lim); err != nil || !d.Allowed {
					t.Fatalf("event %d = %+v, %v; want allowed", i+1, d, err)
				}
			}
			d, err := l.Allow(ctx, "k", lim)
			if err != nil || d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 20*time.Second {
				t.Fatalf("4th event = %+v, %v; want refused with a retry-after of about 20 s", d, err)
			}
			if c, _ := l.Check(ctx, "k", lim); c.Allowed {
				t.Fatal("Check says allowed when Allow refuses")
			}
			if d, _ := l.Allow(ctx, "other", lim); !d.Allowed {
				t.Fatal("another key is limited too")
			}
		})
	}
}

func TestShouldParseLimits(t *testing.T) {
	for in, want := range map[string]string{"10/1m": "10/1m0s", "5/30s/10": "5/30s"} {
		l, err := throttle.ParseLimit(in)
		if err != nil || l.String() != want {
			t.Errorf("ParseLimit(%q) = %v, %v", in, l, err)
		}
	}
	for _, bad := range []string{"", "10", "x/1m", "10/x", "0/1m", "10/1m/0", "1/2/3/4"} {
		if _, err := throttle.ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}

func TestShouldFailClosedWhenRedisIsDown(t *testing.T) {
	srv := redistest.StartServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	srv.Kill()
	ctx := context.Background()
	if _, err := throttle.NewRedisLimiter(c).Allow(ctx, "k", throttle.Limit{Rate: 1, Period: time.Second, Burst: 1}); err == nil {
		t.Fatal("the limiter allowed an event with Redis down")
	}
	if _, err := throttle.NewRedisLockout(c, fast).Begin(ctx, "usr_1", owner); err == nil {
		t.Fatal("the lockout allowed an attempt with Redis down")
	}
}

// The degraded limiter and lockout (MCPAUTH_DEGRADE_LIMITS), over a real Redis that goes away
// and comes back: Redis decides while it answers, the in-process ones while it does not (said
// once at ERROR), and Redis again once it is back (said at WARN), with no restart.
func TestShouldFallBackToInProcessLimitsOnlyWhileRedisIsDown(t *testing.T) {
	srv := redistest.StartServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	log := mcptest.NewLogBuffer()
	d := throttle.NewDegraded(slog.New(slog.NewTextHandler(log, nil)))
	lim := d.Limiter(throttle.NewRedisLimiter(c), throttle.NewLocalLimiter(nil))
	lock := d.Lockout(throttle.NewRedisLockout(c, slow), throttle.NewLocalLockout(slow, nil))
	ctx := context.Background()
	one := throttle.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	allowed := func(what string, f func(context.Context, string, throttle.Limit) (throttle.Decision, error), key string) bool {
		t.Helper()
		dec, err := f(ctx, key, one)
		if err != nil {
			t.Fatalf("%s %s: %v (the degraded limiter must answer)", what, key, err)
		}
		return dec.Allowed
	}
	if !strings.Contains(lim.Name(), "redis") || !strings.Contains(lim.Name(), "local") || !strings.Contains(lock.Name(), "degrades to") {
		t.Errorf("names %q, %q: want both limiters named", lim.Name(), lock.Name())
	}

	// Redis decides: the burst of one is spent in Redis.
	if !allowed("check", lim.Check, "k") || !allowed("allow", lim.Allow, "k") || allowed("allow", lim.Allow, "k") || allowed("check", lim.Check, "k") {
		t.Fatal("with Redis up: want one event allowed, then none")
	}
	failN(t, lock, "usr_1", owner, slow.Attempts)
	refused(t, lock, "usr_1", owner)

	// Redis gone: the in-process limiter answers (its own, fresh counts), said once.
	srv.Kill()
	if !allowed("check", lim.Check, "k") || !allowed("allow", lim.Allow, "k") || allowed("allow", lim.Allow, "k") {
		t.Fatal("with Redis down: want the in-process limiter's one event, then none")
	}
	if a, err := lock.Begin(ctx, "usr_1", owner); err != nil || !a.Allowed {
		t.Fatalf("with Redis down, the in-process lockout (no failures of its own): %+v, %v", a, err)
	}
	if err := lock.Unlock(ctx, "usr_1"); err == nil {
		t.Error("an unlock with Redis down reported success: the shared lock stays, and the admin must know")
	}
	failN(t, lock, "usr_2", owner, slow.Attempts) // counted in process
	refused(t, lock, "usr_2", owner)
	if n := strings.Count(log.String(), "level=ERROR msg=\"REDIS UNREACHABLE"); n != 1 {
		t.Errorf("%d ERRORs for one outage, want one (limits and lockouts share the switch):\n%s", n, log.String())
	}

	// Redis back (a new, empty one): it decides again, said at WARN. The in-process counts
	// would refuse both of these.
	srv.Restart(t)
	if !allowed("allow", lim.Allow, "k") || allowed("allow", lim.Allow, "k") {
		t.Error("with Redis back: want Redis's fresh burst of one, then none")
	}
	if a, err := lock.Begin(ctx, "usr_2", owner); err != nil || !a.Allowed {
		t.Errorf("with Redis back, the in-process lock still answered: %+v, %v", a, err)
	}
	if !strings.Contains(log.String(), "use Redis again") {
		t.Errorf("no notice of Redis answering again:\n%s", log.String())
	}
}

func TestShouldForgetASourcesFailuresOnceTheyAreOlderThanTheWindow(t *testing.T) {
	p := throttle.Policy{Attempts: 3, Window: 300 * time.Millisecond, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 100}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			l := im.lockout(t, p, clock.Now)
			failN(t, l, "usr_1", guesser, p.Attempts-1) // one short of the lock
			// Past the window: the in-process lockout's clock is told; Redis keeps its own, and
			// nothing shows the window's end but trying, which would count.
			clock.Advance(p.Window + time.Millisecond)
			if im.redisClock {
				time.Sleep(p.Window + 100*time.Millisecond)
			}
			failN(t, l, "usr_1", guesser, p.Attempts) // a fresh window: the full count again
			if a := refused(t, l, "usr_1", guesser); a.Permanent || a.LockedFor <= 0 {
				t.Fatalf("attempt after a full window of failures = %+v, want a soft lock", a)
			}
		})
	}
}

func TestShouldCountChecksStillInFlightAgainstTheLimits(t *testing.T) {
	p := throttle.Policy{Attempts: 3, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 5}
	tests := []struct {
		name      string
		sources   func(i int) string // the source of the i-th check begun
		begun     int                // checks begun and not finished, all allowed
		permanent bool               // the next is refused permanently, else softly
	}{
		{"a source with as many checks running as its attempts is refused the next",
			func(int) string { return guesser }, p.Attempts, false},
		{"an account with as many checks running as its permanent limit is locked permanently",
			func(i int) string { return fmt.Sprintf("10.0.0.%d", i) }, p.PermanentAfter, true},
	}
	for _, im := range impls {
		for _, tc := range tests {
			t.Run(im.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				l := im.lockout(t, p, nil)
				ctx := context.Background()
				for i := range tc.begun {
					if a, err := l.Begin(ctx, "usr_1", tc.sources(i)); err != nil || !a.Allowed {
						t.Fatalf("check %d = %+v, %v; want allowed", i+1, a, err)
					}
				}
				a := refused(t, l, "usr_1", tc.sources(tc.begun))
				if a.Permanent != tc.permanent || (!tc.permanent && a.LockedFor <= 0) {
					t.Fatalf("the check past the limit = %+v, want permanent %v", a, tc.permanent)
				}
			})
		}
	}
}

// A Sentinel-managed Redis whose master dies: once the replica is promoted, the lockout and the
// limiter are atomic again, with no restart: of 100 racers exactly the allowed number pass.
func TestShouldStayAtomicAcrossASentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	client := s.Client(t)
	l, lim := throttle.NewRedisLockout(client, slow), throttle.NewRedisLimiter(client)
	burst := throttle.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	race := func(when string) {
		t.Helper()
		if got := concurrentFailures(t, l, 100, func(int) string { return guesser }); got != slow.Attempts {
			t.Errorf("%s: %d of 100 concurrent attempts let through, want %d", when, got, slow.Attempts)
		}
		var allowed atomic.Int32
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if d, err := lim.Allow(context.Background(), "burst:"+when, burst); err != nil {
					t.Error(err)
				} else if d.Allowed {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if allowed.Load() != int32(burst.Burst) {
			t.Errorf("%s: %d of 100 concurrent events allowed, want the burst of %d", when, allowed.Load(), burst.Burst)
		}
	}
	race("before")
	took := s.KillMaster(t)
	// Until the client has found the new master, calls fail (callers fail closed); then the
	// account is unlocked there and raced again.
	start := time.Now()
	for err := l.Unlock(context.Background(), "usr_1"); err != nil; err = l.Unlock(context.Background(), "usr_1") {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no write through the Sentinels %s after the failover: %v", time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond) // the Sentinels' answer changes without telling anyone
	}
	t.Logf("failover %s, writes again %s later", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	race("after")
}

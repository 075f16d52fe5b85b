package throttle_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/internal/redistest"
)

// Both implementations run the same tests, on the real clock (Redis keeps its own).

type impl struct {
	name    string
	limiter func(t *testing.T) throttle.Limiter
	lockout func(t *testing.T, p throttle.Policy) throttle.Lockout
}

func redisClient(t *testing.T) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: redistest.Start(t)})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var impls = []impl{
	{"local",
		func(*testing.T) throttle.Limiter { return throttle.NewLocalLimiter(nil) },
		func(_ *testing.T, p throttle.Policy) throttle.Lockout { return throttle.NewLocalLockout(p, nil) }},
	{"redis",
		func(t *testing.T) throttle.Limiter { return throttle.NewRedisLimiter(redisClient(t)) },
		func(t *testing.T, p throttle.Policy) throttle.Lockout {
			return throttle.NewRedisLockout(redisClient(t), p)
		}},
}

var fast = throttle.Policy{Attempts: 5, Window: time.Minute, Backoff: 150 * time.Millisecond, MaxBackoff: time.Second, PermanentAfter: 100}

func failN(t *testing.T, l throttle.Lockout, account string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		a, err := l.Begin(ctx, account)
		if err != nil || !a.Allowed {
			t.Fatalf("attempt %d = %+v, %v; want allowed", i+1, a, err)
		}
		if err := l.Fail(ctx, account); err != nil {
			t.Fatal(err)
		}
	}
}

// awaitAllowed polls Begin until the lock runs out (deadline: 5 s) and returns how long it took.
func awaitAllowed(t *testing.T, l throttle.Lockout, account string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		a, err := l.Begin(context.Background(), account)
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

func TestShouldLockAnAccountAfterTooManyFailures(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, fast)
			failN(t, l, "usr_1", 5)
			a, err := l.Begin(ctx, "usr_1")
			if err != nil || a.Allowed || a.LockedFor <= 0 {
				t.Fatalf("6th attempt = %+v, %v; want locked", a, err)
			}
			if other, _ := l.Begin(ctx, "usr_2"); !other.Allowed {
				t.Fatal("another account is locked too")
			}
			// Attempts during the lock do not extend it.
			for range 5 {
				if a, _ := l.Begin(ctx, "usr_1"); a.Allowed {
					t.Fatal("allowed during the lock")
				}
			}
			first := awaitAllowed(t, l, "usr_1")
			if first > time.Second {
				t.Fatalf("a 150 ms lock lasted %s: attempts during it extended it", first)
			}
			// The attempt awaitAllowed was let through counts: four more fail, then a longer lock.
			if err := l.Fail(ctx, "usr_1"); err != nil {
				t.Fatal(err)
			}
			failN(t, l, "usr_1", 4)
			a, _ = l.Begin(ctx, "usr_1")
			if a.Allowed || a.LockedFor <= 160*time.Millisecond {
				t.Fatalf("second lock = %+v, want longer than the first (back-off grows)", a)
			}
		})
	}
}

func TestShouldResetOnSuccessAndUnlockOnRequest(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, fast)
			failN(t, l, "usr_1", 4)
			if a, _ := l.Begin(ctx, "usr_1"); !a.Allowed {
				t.Fatal("5th attempt refused")
			}
			if err := l.Succeed(ctx, "usr_1"); err != nil {
				t.Fatal(err)
			}
			failN(t, l, "usr_1", 5) // the count started again
			if a, _ := l.Begin(ctx, "usr_1"); a.Allowed {
				t.Fatal("not locked after 5 more failures")
			}
			if err := l.Unlock(ctx, "usr_1"); err != nil {
				t.Fatal(err)
			}
			if a, _ := l.Begin(ctx, "usr_1"); !a.Allowed {
				t.Fatal("still locked after an admin unlock")
			}
		})
	}
}

func TestShouldLetAtMostNOfManyConcurrentAttemptsThrough(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			l := im.lockout(t, fast)
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for range 100 {
				wg.Go(func() {
					a, err := l.Begin(context.Background(), "usr_1")
					if err != nil {
						t.Error(err)
						return
					}
					if a.Allowed {
						allowed.Add(1)
						_ = l.Fail(context.Background(), "usr_1")
					}
				})
			}
			wg.Wait()
			if allowed.Load() != int32(fast.Attempts) {
				t.Fatalf("%d of 100 concurrent attempts were let through, want exactly %d", allowed.Load(), fast.Attempts)
			}
		})
	}
}

func TestShouldLockPermanentlyAfterTooManyConsecutiveFailures(t *testing.T) {
	p := throttle.Policy{Attempts: 3, Window: time.Minute, Backoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PermanentAfter: 6}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := im.lockout(t, p)
			failN(t, l, "usr_1", 3)
			awaitAllowed(t, l, "usr_1") // that attempt is the 4th failure
			_ = l.Fail(ctx, "usr_1")
			failN(t, l, "usr_1", 2) // 6 consecutive failures
			deadline := time.Now().Add(200 * time.Millisecond)
			for time.Now().Before(deadline) { // well past the 20 ms lock: still refused
				a, err := l.Begin(ctx, "usr_1")
				if err != nil || a.Allowed {
					t.Fatalf("attempt after the permanent lock = %+v, %v", a, err)
				}
				if a.Permanent {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if a, _ := l.Begin(ctx, "usr_1"); !a.Permanent {
				t.Fatalf("attempt = %+v, want a permanent lock", a)
			}
			if err := l.Succeed(ctx, "usr_1"); err != nil {
				t.Fatal(err)
			}
			if a, _ := l.Begin(ctx, "usr_1"); !a.Permanent {
				t.Fatal("a success cleared a permanent lock")
			}
			_ = l.Unlock(ctx, "usr_1")
			if a, _ := l.Begin(ctx, "usr_1"); !a.Allowed {
				t.Fatal("an admin unlock did not clear the permanent lock")
			}
		})
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
	if _, err := throttle.NewRedisLockout(c, fast).Begin(ctx, "usr_1"); err == nil {
		t.Fatal("the lockout allowed an attempt with Redis down")
	}
}

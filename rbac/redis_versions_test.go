package rbac_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bduf/mcpauth/internal/redistest"
	"github.com/bduf/mcpauth/rbac"
)

// propagation is how soon a bump on one instance must be seen by every other.
const propagation = time.Second

// await polls cond until it holds, failing t after within.
func await(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		<-tick.C
	}
}

func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newRedisVersions opens a RedisVersions on its own client to addr, closed when t ends.
func newRedisVersions(t testing.TB, addr string) *rbac.RedisVersions {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := rbac.NewRedisVersions(ctx, newRedisClient(t, addr), nil)
	if err != nil {
		t.Fatalf("new redis versions: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func TestShouldSeeABumpOnAnotherInstanceWithinASecond(t *testing.T) {
	addr := redistest.Start(t)
	a, b := newRedisVersions(t, addr), newRedisVersions(t, addr)
	for round := range 3 {
		beforeA, beforeB := a.Current(), b.Current()
		if err := a.Bump(context.Background()); err != nil {
			t.Fatalf("round %d: bump: %v", round, err)
		}
		if a.Current() <= beforeA {
			t.Fatalf("round %d: the bumping instance's version did not advance at once", round)
		}
		await(t, propagation, "the other instance sees the bump", func() bool { return b.Current() > beforeB })
	}
}

// On every Redis topology, a bump and a subject's change on one instance reach another within a
// second (on a Cluster the two may listen on different nodes).
func TestShouldPropagateChangesOnEveryRedisTopology(t *testing.T) {
	for _, topo := range redistest.Topologies {
		t.Run(topo.Name, func(t *testing.T) {
			t.Parallel()
			client := topo.Start(t).Client
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			open := func() *rbac.RedisVersions {
				v, err := rbac.NewRedisVersions(ctx, client(), nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = v.Close() })
				return v
			}
			a, b := open(), open()
			propagates := func(when string) {
				t.Helper()
				before, subject := b.Current(), b.Subject("usr_1")
				if err := a.Bump(ctx); err != nil {
					t.Fatalf("%s: bump: %v", when, err)
				}
				if err := a.BumpSubject(ctx, "usr_1"); err != nil {
					t.Fatalf("%s: bump subject: %v", when, err)
				}
				await(t, propagation, when+": the other instance sees the bump", func() bool { return b.Current() > before })
				await(t, propagation, when+": the other instance sees the subject's change", func() bool { return b.Subject("usr_1") > subject })
			}
			propagates(topo.Name)
		})
	}
}

// Under Sentinel, the master dies: once the replica is promoted, changes propagate again with no
// restart (the subscriptions follow the new master).
func TestShouldPropagateChangesAfterASentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	ctx := context.Background()
	open := func() *rbac.RedisVersions {
		v, err := rbac.NewRedisVersions(ctx, s.Client(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Close() })
		return v
	}
	a, b := open(), open()
	s.KillMaster(t)
	start := time.Now()
	for err := a.Bump(ctx); err != nil; err = a.Bump(ctx) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no bump through the Sentinels %s after the failover: %v", time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond) // the Sentinels' answer changes without telling anyone
	}
	before := b.Subject("usr_1")
	if err := a.BumpSubject(ctx, "usr_1"); err != nil {
		t.Fatal(err)
	}
	await(t, propagation, "after the failover, the other instance sees the subject's change", func() bool { return b.Subject("usr_1") > before })
}

func TestShouldSeeAVersionChangeWhosePublishWasLost(t *testing.T) {
	addr := redistest.Start(t)
	v := newRedisVersions(t, addr)
	before := v.Current()
	// INCR without PUBLISH: only the poller can notice.
	if err := newRedisClient(t, addr).Incr(context.Background(), rbac.RedisVersionKey).Err(); err != nil {
		t.Fatalf("incr: %v", err)
	}
	await(t, propagation, "the poller sees the unpublished change", func() bool { return v.Current() > before })
}

func TestShouldMoveOnWhenRedisLosesTheVersionKey(t *testing.T) {
	addr := redistest.Start(t)
	v := newRedisVersions(t, addr)
	ctx := context.Background()
	for range 3 {
		if err := v.Bump(ctx); err != nil {
			t.Fatalf("bump: %v", err)
		}
	}
	before := v.Current()
	// A restarted Redis without persistence counts again from 1: a lower shared value must
	// still move this instance on, never leave it where it was.
	raw := newRedisClient(t, addr)
	if err := raw.Del(ctx, rbac.RedisVersionKey).Err(); err != nil {
		t.Fatalf("del: %v", err)
	}
	if err := raw.Incr(ctx, rbac.RedisVersionKey).Err(); err != nil {
		t.Fatalf("incr: %v", err)
	}
	await(t, propagation, "the reset is seen", func() bool { return v.Current() > before })
}

func TestShouldFailTheBumpAndCacheNothingWhileRedisIsDown(t *testing.T) {
	srv := redistest.StartServer(t)
	v := newRedisVersions(t, srv.Addr())
	srv.Kill()
	before := v.Current()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.Bump(ctx); err == nil {
		t.Fatal("bump succeeded with Redis down")
	}
	if v.Current() <= before {
		t.Fatal("a failed bump must still advance this instance's version")
	}
	// Nothing learned from Redis can be trusted while it is down: the version keeps moving.
	mid := v.Current()
	await(t, 2*propagation, "the version advances while Redis is unreadable", func() bool { return v.Current() > mid })
}

func TestShouldRefuseToStartWithoutRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := rbac.NewRedisVersions(ctx, newRedisClient(t, srv.Addr()), nil); err == nil {
		_ = v.Close()
		t.Fatal("NewRedisVersions succeeded against a Redis that is down")
	}
}

func TestShouldStopEveryGoroutineOnClose(t *testing.T) {
	addr := redistest.Start(t)
	client := newRedisClient(t, addr)
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	baseline := runtime.NumGoroutine()
	for range 5 {
		v, err := rbac.NewRedisVersions(context.Background(), client, nil)
		if err != nil {
			t.Fatalf("new: %v", err)
		}
		if err := v.Bump(context.Background()); err != nil {
			t.Fatalf("bump: %v", err)
		}
		if err := v.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := v.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	}
	await(t, 5*time.Second, "goroutines back to the baseline after Close", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestShouldCountLocalVersionsUp(t *testing.T) {
	v := rbac.NewLocalVersions()
	if v.Current() != 0 {
		t.Fatalf("a new LocalVersions is at %d", v.Current())
	}
	for want := uint64(1); want <= 3; want++ {
		if err := v.Bump(context.Background()); err != nil || v.Current() != want {
			t.Fatalf("after bump: %d, %v; want %d", v.Current(), err, want)
		}
	}
}

// A change of one subject on one instance reaches every other within a second, without making
// the others' whole cache stale; one whose message was lost is read from the log at the next
// poll; a change counter that goes back (Redis lost it) makes everything stale.
func TestShouldSeeASubjectChangeOnAnotherInstanceAndOnlyThatSubject(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Start(t)
	a, b := newRedisVersions(t, addr), newRedisVersions(t, addr)
	epochB := b.Current()
	for round := range 3 {
		before := b.Subject("usr_1")
		if err := a.BumpSubject(ctx, "usr_1"); err != nil {
			t.Fatalf("round %d: bump subject: %v", round, err)
		}
		if a.Subject("usr_1") == 0 {
			t.Fatalf("round %d: the bumping instance's subject version did not advance at once", round)
		}
		await(t, propagation, "the other instance sees the subject's change", func() bool { return b.Subject("usr_1") > before })
	}
	if b.Subject("usr_2") != 0 || b.Current() != epochB {
		t.Errorf("a change of usr_1 moved usr_2 (%d) or everything (epoch %d → %d)", b.Subject("usr_2"), epochB, b.Current())
	}

	// Numbered and logged, never published: only the poll can see it.
	rc := newRedisClient(t, addr)
	n, err := rc.Incr(ctx, rbac.RedisSubjectSeqKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.ZAdd(ctx, rbac.RedisSubjectLogKey, redis.Z{Score: float64(n), Member: "usr_3"}).Err(); err != nil {
		t.Fatal(err)
	}
	await(t, propagation, "the poller reads the unpublished change", func() bool { return b.Subject("usr_3") > 0 })

	// Redis forgets the counter: everything is stale.
	before := b.Current()
	if err := rc.Del(ctx, rbac.RedisSubjectSeqKey, rbac.RedisSubjectLogKey).Err(); err != nil {
		t.Fatal(err)
	}
	await(t, propagation, "the counter going back makes everything stale", func() bool { return b.Current() > before })
}

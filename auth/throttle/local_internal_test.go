package throttle

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// countedSources is the number of source states l holds, counted afresh.
func countedSources(l *LocalLockout) int {
	n := 0
	for _, a := range l.accounts {
		n += len(a.sources)
	}
	return n
}

func TestShouldBoundTheLocalSourcesOfAnAccountWithoutResettingItsCount(t *testing.T) {
	ctx := context.Background()
	p := Policy{Attempts: 5, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 100}
	l := NewLocalLockout(p, nil)
	consecutive, held, forgot := 0, 0, false
	for i := range 3 * maxLocalSources {
		src := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if a, _ := l.Begin(ctx, "admin", src); !a.Allowed {
			t.Fatalf("attempt %d = %+v, want allowed", i, a)
		}
		_ = l.Fail(ctx, "admin", src)
		consecutive++
		if consecutive == p.PermanentAfter-10 { // the owner logs in now and then
			_, _ = l.Begin(ctx, "admin", "owner")
			_ = l.Succeed(ctx, "admin", "owner")
			consecutive = 0
		}
		a := l.accounts["admin"]
		if n := len(a.sources); n > maxLocalSources {
			t.Fatalf("after %d sources the account holds %d source states, bound %d", i+1, n, maxLocalSources)
		} else if n < held {
			forgot = true
		}
		held = len(a.sources)
		if a.total != consecutive {
			t.Fatalf("after %d sources the consecutive count is %d, want %d", i+1, a.total, consecutive)
		}
		if l.sources != countedSources(l) {
			t.Fatalf("the source count says %d, the maps hold %d", l.sources, countedSources(l))
		}
	}
	if !forgot {
		t.Fatal("the bound was never reached: the test proves nothing")
	}
	// The count goes on to the permanent lock, from sources never seen before.
	for i := consecutive; i < p.PermanentAfter; i++ {
		src := fmt.Sprintf("fd00::%x", i)
		if a, _ := l.Begin(ctx, "admin", src); !a.Allowed {
			t.Fatalf("failure %d = %+v, want allowed", i+1, a)
		}
		_ = l.Fail(ctx, "admin", src)
	}
	if a, _ := l.Begin(ctx, "admin", "owner"); !a.Permanent {
		t.Fatalf("after %d consecutive failures: %+v, want a permanent lock", p.PermanentAfter, a)
	}
	if l.sources != 0 {
		t.Fatalf("a permanently locked account keeps %d source states, want none", l.sources)
	}
}

func TestShouldForgetOnlyLocalAccountsNotLockedPermanently(t *testing.T) {
	ctx := context.Background()
	p := Policy{Attempts: 5, Window: time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour, PermanentAfter: 1}
	l := NewLocalLockout(p, nil)
	_, _ = l.Begin(ctx, "victim", "10.0.0.1")
	_ = l.Fail(ctx, "victim", "10.0.0.1") // permanent at once
	for i := range maxLocalKeys + 10 {
		if a, _ := l.Begin(ctx, fmt.Sprintf("usr_%d", i), "10.0.0.1"); !a.Allowed {
			t.Fatalf("first attempt at account %d = %+v, want allowed", i, a)
		}
		if len(l.accounts) > maxLocalKeys || l.sources > maxLocalKeys {
			t.Fatalf("%d accounts with %d source states, bound %d", len(l.accounts), l.sources, maxLocalKeys)
		}
	}
	if l.sources != countedSources(l) {
		t.Fatalf("the source count says %d, the maps hold %d", l.sources, countedSources(l))
	}
	if a, _ := l.Begin(ctx, "victim", "10.0.0.2"); !a.Permanent {
		t.Fatalf("the permanently locked account = %+v: it was forgotten", a)
	}
}

func TestShouldKeepAHotKeysSpentBudgetThroughAFloodOfFreshKeys(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	l := NewLocalLimiter(func() time.Time { return now }) // a frozen clock: no refill
	lim := Limit{Rate: 3, Period: time.Minute, Burst: 3}
	for i := range 3 {
		if d, _ := l.Allow(ctx, "login:addr:attacker", lim); !d.Allowed {
			t.Fatalf("event %d of the hot key refused", i+1)
		}
	}
	for i := range 2 * maxLocalKeys {
		if d, _ := l.Allow(ctx, fmt.Sprintf("login:id:random-%d", i), lim); !d.Allowed {
			t.Fatalf("fresh key %d refused", i)
		}
		if i%1000 == 0 { // the attacker keeps trying: the key stays hot
			if d, _ := l.Allow(ctx, "login:addr:attacker", lim); d.Allowed {
				t.Fatalf("after %d fresh keys the hot key got a fresh budget", i)
			}
		}
	}
	if d, _ := l.Allow(ctx, "login:addr:attacker", lim); d.Allowed {
		t.Fatal("after 2×maxLocalKeys fresh keys the hot key got a fresh budget")
	}
	if n := l.keys.Len(); n > maxLocalKeys {
		t.Fatalf("limiter holds %d keys, want at most %d", n, maxLocalKeys)
	}
}

// The guard asks the limiter on every tool call: a known key's event costs no allocation,
// allowed or refused, and a refusal consumes nothing.
func TestShouldDecideAKnownLocalKeyWithoutAllocating(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	l := NewLocalLimiter(func() time.Time { return now })
	lim := Limit{Rate: 1, Period: time.Minute, Burst: 1 << 30}
	if n := testing.AllocsPerRun(100, func() { _, _ = l.Allow(ctx, "calls:usr_1", lim) }); n != 0 {
		t.Errorf("an allowed event costs %v allocations, want 0", n)
	}
	one := Limit{Rate: 1, Period: time.Minute, Burst: 1}
	if d, _ := l.Allow(ctx, "calls:usr_2", one); !d.Allowed {
		t.Fatal("the first event refused")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = l.Allow(ctx, "calls:usr_2", one) }); n != 0 {
		t.Errorf("a refused event costs %v allocations, want 0", n)
	}
	now = now.Add(time.Minute) // one token back: the refusals took none of it
	if d, _ := l.Allow(ctx, "calls:usr_2", one); !d.Allowed {
		t.Error("after a period the key is still refused: the refusals consumed tokens")
	}
}

package auth_test

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/call"
)

// countingLockout counts the password checks the lockout lets through.
type countingLockout struct {
	throttle.Lockout
	allowed atomic.Int32
}

func (c *countingLockout) Begin(ctx context.Context, account, source string) (throttle.Attempt, error) {
	a, err := c.Lockout.Begin(ctx, account, source)
	if a.Allowed {
		c.allowed.Add(1)
	}
	return a, err
}

func lockoutService(t *testing.T, e *env, lockout throttle.Lockout, limits auth.Limits) *auth.Service {
	return e.newService(t, e.keys, func(c *auth.Config) {
		c.Lockout, c.Limits = lockout, limits
		c.Password.Queue, c.Password.Wait = 1000, time.Minute // these tests flood one account: the lockout must answer, not the pool
	})
}

var fivePerWindow = throttle.Policy{Attempts: 5, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100}

func TestShouldLockAnAccountWithoutRevealingIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	svc := lockoutService(t, e, throttle.NewLocalLockout(fivePerWindow, e.clock.Now), unthrottled)
	login := func(pw auth.Secret) error {
		_, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: pw})
		return err
	}
	var wrong error
	for range 5 {
		wrong = login("not the password")
		wantCode(t, "a wrong password", wrong, apierr.InvalidCredentials)
	}
	locked := login(testPassword)
	if locked == nil || locked.Error() != wrong.Error() {
		t.Fatalf("the right password while locked = %v; want exactly the wrong-password answer %v", locked, wrong)
	}
	e.clock.Advance(61 * time.Second)
	if err := login(testPassword); err != nil {
		t.Fatalf("login after the lock ran out: %v", err)
	}
	for range 5 {
		_ = login("not the password")
	}
	if err := svc.Unlock(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := login(testPassword); err != nil {
		t.Fatalf("login after an admin unlock: %v", err)
	}
}

func TestShouldCheckAtMostNPasswordsOfManyConcurrentAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createUser(t, "ada@example.com", "ada")
	counting := &countingLockout{Lockout: throttle.NewLocalLockout(fivePerWindow, e.clock.Now)}
	svc := lockoutService(t, e, counting, unthrottled)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			_, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: "not the password"})
			if apierr.CodeOf(err) != apierr.InvalidCredentials {
				t.Errorf("answer = %v, want INVALID_CREDENTIALS", err)
			}
		})
	}
	wg.Wait()
	if n := counting.allowed.Load(); n > int32(fivePerWindow.Attempts) {
		t.Fatalf("%d passwords were checked, want at most %d", n, fivePerWindow.Attempts)
	}
}

func TestShouldCountWrongMFACodesAsFailedLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	secret, _ := e.enableMFA(t, u)
	svc := lockoutService(t, e, throttle.NewLocalLockout(fivePerWindow, e.clock.Now), unthrottled)
	for range 5 {
		_, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword, MFACode: "000000"})
		wantCode(t, "a wrong code", err, apierr.InvalidMFACode)
	}
	_, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword,
		MFACode: e.totpCode(t, secret, e.clock.Now())})
	wantCode(t, "the right password and code while locked", err, apierr.InvalidCredentials)
}

func TestShouldRateLimitLoginsPerIdentifierWithARetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	limits := unthrottled
	limits.LoginPerIdentifier = throttle.Limit{Rate: 3, Period: time.Minute, Burst: 3}
	svc := e.newService(t, e.keys, func(c *auth.Config) {
		c.Limits, c.Limiter = limits, throttle.NewLocalLimiter(e.clock.Now)
	})
	for range 3 {
		_, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ghost@example.com", Password: "whatever it is"})
		wantCode(t, "an unknown account", err, apierr.InvalidCredentials)
	}
	_, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ghost@example.com", Password: "whatever it is"})
	wantCode(t, "the 4th attempt", err, apierr.RateLimited)
	if retry, _ := apierr.From(err).Details["retry_after_seconds"].(int); retry < 1 || retry > 20 {
		t.Fatalf("retry_after_seconds = %v, want 1-20", apierr.From(err).Details["retry_after_seconds"])
	}
	// The name can still be registered; its owner logs in once the limit refills.
	if _, err := svc.CreateUser(ctx, auth.NewUser{Email: "ghost@example.com", Password: testPassword}); err != nil {
		t.Fatalf("registering a name that was being guessed: %v", err)
	}
	e.clock.Advance(20 * time.Second)
	if _, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ghost@example.com", Password: testPassword}); err != nil {
		t.Fatalf("login after the limit refilled: %v", err)
	}
}

func TestShouldRateLimitAnAddressPresentingBadAPIKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	limits := unthrottled
	limits.APIKeyFailures = throttle.Limit{Rate: 2, Period: time.Minute, Burst: 2}
	svc := e.newService(t, e.keys, func(c *auth.Config) {
		c.Limits, c.Limiter = limits, throttle.NewLocalLimiter(e.clock.Now)
	})
	_, good := e.newKey(t, e.createUser(t, "ada@example.com", "ada"), "projects:read")
	attacker := fromAddr("203.0.113.7")
	for range 5 { // typos fail their checksum before any look-up, and do not count
		_, err := svc.Validate(attacker, auth.Secret("mcpk_guess"))
		wantCode(t, "a malformed key", err, apierr.TokenInvalid)
	}
	if _, err := svc.Validate(attacker, auth.Secret(good)); err != nil {
		t.Fatalf("a good key after malformed ones: %v", err)
	}
	for range 2 {
		_, err := svc.Validate(attacker, auth.Secret(apikey.WellFormed()))
		wantCode(t, "a guessed key", err, apierr.TokenInvalid)
	}
	_, err := svc.Validate(attacker, auth.Secret(good))
	wantCode(t, "even a good key from that address now", err, apierr.RateLimited)
	if _, err := svc.Validate(fromAddr("198.51.100.1"), auth.Secret(good)); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

func TestShouldFailClosedWhenTheLimiterFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createUser(t, "ada@example.com", "ada")
	svc := e.newService(t, e.keys, func(c *auth.Config) { c.Limiter = brokenLimiter{} })
	_, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
	wantCode(t, "login with the limiter down", err, apierr.Internal)
	if msg := apierr.From(err).Message; msg != "rate limiter unavailable (broken); refusing to authenticate" {
		t.Fatalf("message = %q, want one naming the limiter", msg)
	}
}

type brokenLimiter struct{}

func (brokenLimiter) Allow(context.Context, string, throttle.Limit) (throttle.Decision, error) {
	return throttle.Decision{}, context.DeadlineExceeded
}

func (brokenLimiter) Check(context.Context, string, throttle.Limit) (throttle.Decision, error) {
	return throttle.Decision{}, context.DeadlineExceeded
}

func (brokenLimiter) Name() string { return "broken" }

func TestShouldCountLoginsWithoutTheSecondFactorAndLetTheLockRunOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	secret, _ := e.enableMFA(t, u)
	svc := lockoutService(t, e, throttle.NewLocalLockout(fivePerWindow, e.clock.Now), unthrottled)
	login := func(code auth.Secret) error {
		_, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword, MFACode: code})
		return err
	}
	for range 5 {
		wantCode(t, "the right password without a code", login(""), apierr.MFARequired)
	}
	wantCode(t, "the right password and code after 5 codeless tries", login(e.totpCode(t, secret, e.clock.Now())), apierr.InvalidCredentials)
	e.clock.Advance(61 * time.Second) // the first lock (1 min) runs out; the window (15 min) has not
	if err := login(e.totpCode(t, secret, e.clock.Now())); err != nil {
		t.Fatalf("login once the lock ran out: %v", err)
	}
}

// fromAddr is a context whose transport saw the client at addr.
func fromAddr(addr string) context.Context {
	return call.With(context.Background(), &call.Request{Transport: call.HTTP, ClientAddr: netip.MustParseAddr(addr)})
}

package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
)

// A flood of logins larger than the hashing pool's queue: the overflow is answered
// RATE_LIMITED, the same for a known account with the right password, a known account with a
// wrong one and an unknown account (the pool is taken before anything depends on whether the
// account exists), and nothing that was refused counted against the account's lockout.
func TestShouldQueueALoginFloodAndRefuseTheOverflowAlikeForEveryAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createUser(t, "ada@example.com", "ada")
	const workers, queue, perKind = 1, 2, 8
	// The lockout must not engage here: when more than five wrong passwords get a worker (a
	// slow machine lets the flood in more slowly than the pool serves it), the right password
	// would be refused by the lock, not by the pool, which is not what this test is about.
	never := throttle.DefaultPolicy
	never.Attempts, never.PermanentAfter = 3*perKind+1, 3*perKind+1
	counting := &countingLockout{Lockout: throttle.NewLocalLockout(never, e.clock.Now)}
	svc := e.newService(t, e.keys, func(c *auth.Config) {
		c.Password = password.Config{Workers: workers, Queue: queue, Wait: time.Minute, Cost: 11} // slow enough that the flood arrives while the first logins hash
		c.Lockout = counting
	})
	kinds := []struct {
		name     string
		req      auth.LoginRequest
		hashedOK apierr.Code // the answer when the login got a worker
	}{
		{"known account, right password", auth.LoginRequest{Identifier: "ada", Password: testPassword}, ""},
		{"known account, wrong password", auth.LoginRequest{Identifier: "ada", Password: "not the password"}, apierr.InvalidCredentials},
		{"unknown account", auth.LoginRequest{Identifier: "nobody", Password: testPassword}, apierr.InvalidCredentials},
	}
	type answer struct {
		kind int
		err  error
	}
	answers := make(chan answer, perKind*len(kinds))
	var wg sync.WaitGroup
	for k, kind := range kinds {
		for range perKind {
			wg.Go(func() {
				_, _, err := svc.Login(context.Background(), kind.req)
				answers <- answer{k, err}
			})
		}
	}
	wg.Wait()
	close(answers)
	var limited []error
	served := 0
	for a := range answers {
		switch code := apierr.CodeOf(a.err); code {
		case apierr.RateLimited:
			limited = append(limited, a.err)
		case kinds[a.kind].hashedOK:
			served++
		default:
			t.Errorf("%s: answer %v", kinds[a.kind].name, a.err)
		}
	}
	total := perKind * len(kinds)
	if len(limited) == 0 || served < workers+queue {
		t.Fatalf("%d of %d logins refused, %d served: want the overflow refused and at least %d served", len(limited), total, served, workers+queue)
	}
	for _, err := range limited[1:] {
		if err.Error() != limited[0].Error() {
			t.Fatalf("overload answers differ: %q vs %q", err, limited[0])
		}
	}
	if want := apierr.From(limited[0]).Details["retry_after_seconds"]; want != 1 {
		t.Errorf("retry_after_seconds = %v, want 1", want)
	}
	// Only logins that got a worker reached the lockout (unknown accounts never do).
	if begun := int(counting.allowed.Load()); begun > served {
		t.Fatalf("%d lockout checks for %d served logins: a refused login touched the lockout", begun, served)
	}
}

package auth_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/internal/redistest"
	"github.com/bduf/mcpauth/rbac"
)

// The verified-token and user caches must never change an answer, only its cost: every case
// runs with the caches on (the default) and off, and a token is always validated once before
// the change, so that the cached path is the one that must notice it.
func TestShouldAnswerCachedTokensAsFreshOnes(t *testing.T) {
	t.Parallel()
	caches := []struct {
		name string
		set  func(*auth.Config)
	}{
		{"caches on", func(*auth.Config) {}},
		{"caches off", func(c *auth.Config) { c.TokenCacheSize, c.UserCacheTTL = -1, -1 }},
	}
	cases := []struct {
		name   string
		change func(t *testing.T, e *env, svc *auth.Service, tokens auth.Tokens)
		want   apierr.Code
	}{
		{"a repeated token stays valid", func(*testing.T, *env, *auth.Service, auth.Tokens) {}, ""},
		{"revoking the session refuses the token at once", func(t *testing.T, _ *env, svc *auth.Service, tokens auth.Tokens) {
			if _, err := svc.Revoke(context.Background(), auth.Secret(tokens.AccessToken)); err != nil {
				t.Fatal(err)
			}
		}, apierr.TokenRevoked},
		{"logging out refuses the token at once", func(t *testing.T, _ *env, svc *auth.Service, tokens auth.Tokens) {
			if _, err := svc.Logout(context.Background(), nil, auth.Secret(tokens.RefreshToken), false); err != nil {
				t.Fatal(err)
			}
		}, apierr.TokenRevoked},
		{"the token expires on time", func(_ *testing.T, e *env, _ *auth.Service, _ auth.Tokens) {
			e.clock.Advance(auth.DefaultAccessTTL)
		}, apierr.TokenExpired},
		{"a token one millisecond before expiry is still valid", func(_ *testing.T, e *env, _ *auth.Service, _ auth.Tokens) {
			e.clock.Advance(auth.DefaultAccessTTL - time.Millisecond)
		}, ""},
	}
	for _, cc := range caches {
		for _, tc := range cases {
			t.Run(cc.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				svc := e.newService(t, e.keys, cc.set)
				e.createUser(t, "ada@example.com", "ada")
				tokens, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
				if err != nil {
					t.Fatal(err)
				}
				first := e.validate(t, svc, tokens.AccessToken)
				tc.change(t, e, svc, tokens)
				for range 2 { // the second answer may come from the cache the first filled
					c, err := svc.Validate(context.Background(), auth.Secret(tokens.AccessToken))
					if got := apierr.CodeOf(err); got != tc.want {
						t.Fatalf("validate after the change: %v, want %q", err, tc.want)
					}
					if tc.want == "" && (c.Subject != first.Subject || c.SessionID != first.SessionID || c.TokenID != first.TokenID) {
						t.Fatalf("claims changed: %+v, first %+v", c, first)
					}
				}
			})
		}
	}
}

// A user disabled by another instance (here: straight in the store) is refused once its cached
// record is older than the TTL: the first call after that may still pass (the record is read
// again in the background), the next ones are refused as soon as the read is done. Past twice
// the TTL the call waits for the read itself.
func TestShouldRefuseAUserDisabledElsewhereWithinTheUserCacheTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const ttl = 2 * time.Second
	svc := e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL = ttl })
	u := e.createUser(t, "ada@example.com", "ada")
	tokens, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	caller, _, err := svc.Caller(ctx, auth.Secret(tokens.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if caller.ID != u.ID || len(caller.PasswordHash) != 0 {
		t.Fatalf("caller %s with %d bytes of password hash, want %s without one", caller.ID, len(caller.PasswordHash), u.ID)
	}
	disabled := true
	if err := e.store.UpdateUser(ctx, u.ID, auth.UserChange{Disabled: &disabled, UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Caller(ctx, auth.Secret(tokens.AccessToken)); err != nil {
		t.Fatalf("within the TTL the cached record answers: %v", err)
	}
	e.clock.Advance(ttl)
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, _, err := svc.Caller(ctx, auth.Secret(tokens.AccessToken))
		if apierr.CodeOf(err) == apierr.AccountDisabled {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("caller %v after the TTL, want ACCOUNT_DISABLED once the record is read again", err)
		}
		time.Sleep(5 * time.Millisecond) // polling for the background read, bounded by the deadline
	}

	if err := e.store.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * ttl)
	if _, _, err := svc.Caller(ctx, auth.Secret(tokens.AccessToken)); apierr.CodeOf(err) != apierr.TokenRevoked {
		t.Fatalf("caller %v past twice the TTL after deletion, want TOKEN_REVOKED at once", err)
	}
}

// A change made through this instance reaches Caller at once, whatever the user cache's TTL.
func TestShouldShowACallerTheChangesMadeHereAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	svc := e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL = time.Hour })
	u := e.createUser(t, "ada@example.com", "ada")
	tokens, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Caller(ctx, auth.Secret(tokens.AccessToken)); err != nil { // cached now
		t.Fatal(err)
	}
	email := "lovelace@example.com"
	if _, _, err := svc.UpdateUser(ctx, u.ID, auth.UserChanges{Email: &email}); err != nil {
		t.Fatal(err)
	}
	caller, _, err := svc.Caller(ctx, auth.Secret(tokens.AccessToken))
	if err != nil || caller.Email != email {
		t.Fatalf("caller %+v, %v after the change; want email %s", caller, err, email)
	}
}

// Two instances sharing one store and one redis-server, each trusting a user record for an
// hour: a change made on A reaches B's callers as soon as B hears of it through the shared
// versions, and without them B would go on answering with the record it holds.
func TestShouldShowAChangeMadeOnAnotherInstanceOnceItIsAnnounced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	addr := redistest.Start(t)
	versions := func(t *testing.T) auth.UserVersions {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		v, err := rbac.NewRedisVersions(ctx, c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Close() })
		return v
	}
	a := e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL, c.UserVersions = time.Hour, versions(t) })
	b := e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL, c.UserVersions = time.Hour, versions(t) })
	deaf := e.newService(t, e.keys, func(c *auth.Config) { c.UserCacheTTL = time.Hour }) // hears nothing
	u := e.createUser(t, "ada@example.com", "ada")
	tokens, _, err := a.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	tok := auth.Secret(tokens.AccessToken)
	for _, svc := range []*auth.Service{b, deaf} { // both hold the record now
		if _, _, err := svc.Caller(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// awaitOnB polls B's answer until ok says it shows the change, for at most two seconds.
	awaitOnB := func(what string, ok func(auth.User, error) bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); ; {
			caller, _, err := b.Caller(ctx, tok)
			if ok(caller, err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("B still answers %+v, %v two seconds after %s on A", caller, err, what)
			}
			time.Sleep(10 * time.Millisecond) // polling for Redis's message, bounded by the deadline
		}
	}

	email := "lovelace@example.com"
	if _, _, err := a.UpdateUser(ctx, u.ID, auth.UserChanges{Email: &email}); err != nil {
		t.Fatal(err)
	}
	awaitOnB("an email change", func(c auth.User, err error) bool { return err == nil && c.Email == email })
	if caller, _, err := deaf.Caller(ctx, tok); err != nil || caller.Email != "ada@example.com" {
		t.Fatalf("an instance without the versions answers %+v, %v; want the record it held (the test shows nothing otherwise)", caller, err)
	}

	disabled := true
	if _, _, err := a.UpdateUser(ctx, u.ID, auth.UserChanges{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	awaitOnB("disabling the user", func(_ auth.User, err error) bool {
		return apierr.CodeOf(err) == apierr.AccountDisabled
	})
}

// countingUserReads counts the store's reads of user records by id.
type countingUserReads struct {
	*auth.MongoStore
	one     atomic.Int32
	mu      sync.Mutex
	batches [][]string
}

func (c *countingUserReads) GetUser(ctx context.Context, id string) (auth.User, error) {
	c.one.Add(1)
	return c.MongoStore.GetUser(ctx, id)
}

func (c *countingUserReads) GetUsers(ctx context.Context, ids []string) ([]auth.User, error) {
	c.mu.Lock()
	c.batches = append(c.batches, slices.Clone(ids))
	c.mu.Unlock()
	return c.MongoStore.GetUsers(ctx, ids)
}

func (c *countingUserReads) batchesSoFar() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.batches)
}

// Many active users whose cached records age together are read again in one store round trip,
// not one each: the calls that find their record stale go on with it meanwhile.
func TestShouldRefreshTheCachedUsersInOneStoreRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	store := &countingUserReads{MongoStore: e.store}
	const ttl, users = 4 * time.Second, 20
	svc, err := auth.NewService(ctx, store, e.keys, auth.Config{Issuer: testIssuer, Audience: testAudience,
		Password: password.Config{Cost: bcrypt.MinCost}, Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler), UserCacheTTL: ttl, Limits: unthrottled})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []auth.Secret
	var ids []string
	for i := range users {
		u := e.createUser(t, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("user%d", i))
		tok, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: u.Email, Password: testPassword})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Caller(ctx, auth.Secret(tok.AccessToken)); err != nil { // cached now
			t.Fatal(err)
		}
		tokens, ids = append(tokens, auth.Secret(tok.AccessToken)), append(ids, u.ID)
	}
	before := store.one.Load()
	e.clock.Advance(ttl * 3 / 4) // older than half the TTL: due for a read, still served
	for _, tok := range tokens {
		if _, _, err := svc.Caller(ctx, tok); err != nil {
			t.Fatalf("a call with a record due for a read: %v", err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); len(store.batchesSoFar()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no background read of the cached records")
		}
		time.Sleep(5 * time.Millisecond) // polling for the background read, bounded by the deadline
	}
	first := store.batchesSoFar()[0]
	slices.Sort(first)
	slices.Sort(ids)
	if !slices.Equal(first, ids) {
		t.Errorf("the first background read asked for %d records, want all %d users' at once", len(first), users)
	}
	if n := store.one.Load() - before; n != 0 {
		t.Errorf("%d single-record reads during the refresh, want none", n)
	}
}

package auth_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/internal/redistest"
)

func redisRevocations(t *testing.T, addr string) *session.RedisRevocations {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return revocationsOn(t, c)
}

func revocationsOn(t *testing.T, c redis.UniversalClient) *session.RedisRevocations {
	t.Helper()
	r, err := session.NewRedisRevocations(context.Background(), c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestShouldDenyASessionRevokedOnAnotherInstanceWithinASecond: two services sharing a store and
// Redis, as two instances would, on every Redis topology (on a Cluster, the instances' clients
// may listen on different nodes: a PUBLISH reaches every node's subscribers).
func TestShouldDenyASessionRevokedOnAnotherInstanceWithinASecond(t *testing.T) {
	t.Parallel()
	for _, topo := range redistest.Topologies {
		t.Run(topo.Name, func(t *testing.T) {
			t.Parallel()
			denyRevokedOnAnotherInstance(t, topo.Start(t).Client)
		})
	}
}

func denyRevokedOnAnotherInstance(t *testing.T, client func() redis.UniversalClient) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.newService(t, e.keys, func(c *auth.Config) { c.Revocations = revocationsOn(t, client()) })
	b := e.newService(t, e.keys, func(c *auth.Config) { c.Revocations = revocationsOn(t, client()) })
	e.createUser(t, "ada@example.com", "ada")
	tokens, _, err := a.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	e.validate(t, b, tokens.AccessToken) // B has now checked (and believes) the session

	if _, err := a.Revoke(ctx, auth.Secret(tokens.AccessToken)); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for {
		_, err := b.Validate(ctx, auth.Secret(tokens.AccessToken))
		if apierr.CodeOf(err) == apierr.TokenRevoked {
			break
		}
		if time.Since(revokedAt) > time.Second {
			t.Fatalf("instance B still accepts the token %s after the revocation on A (last answer %v)", time.Since(revokedAt), err)
		}
		time.Sleep(10 * time.Millisecond) // polling for the condition, bounded by the 1 s deadline
	}
}

func TestShouldRefuseTokensWhenTheRevocationListIsUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := redistest.StartServer(t)
	svc := e.newService(t, e.keys, func(c *auth.Config) { c.Revocations = redisRevocations(t, srv.Addr()) })
	e.createUser(t, "ada@example.com", "ada")
	tokens, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := svc.Validate(context.Background(), auth.Secret(tokens.AccessToken))
		if apierr.CodeOf(err) == apierr.Internal {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("with Redis down the token is still answered %v, want INTERNAL (fail closed)", err)
		}
		time.Sleep(20 * time.Millisecond) // the cached "not revoked" lasts up to 500 ms
	}
}

func TestShouldRefuseAKeyRevokedOnAnotherInstanceWithinASecond(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	addr := redistest.Start(t)
	a := e.newService(t, e.keys, func(c *auth.Config) { c.Revocations = redisRevocations(t, addr) })
	b := e.newService(t, e.keys, func(c *auth.Config) { c.Revocations = redisRevocations(t, addr) })
	u := e.createUser(t, "ada@example.com", "ada")
	k, key, err := a.CreateAPIKey(ctx, apikey.Request{UserID: u.ID, OrgID: u.OrgID, Name: "ci", Permissions: []string{"projects:read"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // B looks the key up, then serves it from its cache
		if _, err := b.Validate(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.RevokeAPIKey(ctx, u.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for {
		_, err := b.Validate(ctx, key)
		if apierr.CodeOf(err) == apierr.TokenInvalid {
			break
		}
		if time.Since(revokedAt) > time.Second {
			t.Fatalf("instance B still accepts the key %s after its revocation on A (%v)", time.Since(revokedAt), err)
		}
		time.Sleep(10 * time.Millisecond) // polling for the condition, bounded by the 1 s deadline
	}
}

func TestShouldKeepServingOnThisInstancesRevocationsWhenDegraded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	srv := redistest.StartServer(t)
	svc := e.newService(t, e.keys, func(c *auth.Config) {
		c.Revocations = session.NewDegradedRevocations(redisRevocations(t, srv.Addr()), slog.New(slog.DiscardHandler))
	})
	e.createUser(t, "ada@example.com", "ada")
	login := func() auth.Tokens {
		tokens, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
		if err != nil {
			t.Fatal(err)
		}
		return tokens
	}
	kept, revoked := login(), login()
	srv.Kill()
	if _, err := svc.Revoke(ctx, auth.Secret(revoked.AccessToken)); err != nil {
		t.Fatalf("revoke with Redis down (degraded): %v", err)
	}
	e.validate(t, svc, kept.AccessToken)
	_, err := svc.Validate(ctx, auth.Secret(revoked.AccessToken))
	wantCode(t, "a session revoked on this instance while Redis was down", err, apierr.TokenRevoked)
}

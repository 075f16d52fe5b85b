package main

// End-to-end test of two mcpauth instances sharing one MongoDB-wire server and one redis-server:
// revocations, the lockout and the rate limits hold across them.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/embedmongo"
	"github.com/bduf/mcpauth/internal/mcptest"
	"github.com/bduf/mcpauth/internal/redistest"
)

// sharedStore returns a MongoDB-wire server and a fresh database for processes to share: a real
// MongoDB with MCPAUTH_TEST_MONGO_URI, else a FerretDB run in the test process.
func sharedStore(t testing.TB) (uri, db string) {
	t.Helper()
	db = "mcpauth_e2e_" + randomHex(6)
	if uri = os.Getenv(mcptest.EnvTestMongoURI); uri != "" {
		t.Cleanup(func() { mcptest.DropDatabase(t, uri, db) })
		return uri, db
	}
	srv, err := embedmongo.Start(t.TempDir(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatalf("embedded MongoDB-wire server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), embedmongo.StopTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop the embedded store: %v", err)
		}
	})
	return srv.URI(), db
}

// propagation is how soon a revocation on one instance must hold on the other.
const propagation = time.Second

// On every Redis topology (one server, a Cluster whose nodes the two instances may listen on
// apart, Sentinels), through MCPAUTH_REDIS_URL as an operator writes it.
func TestShouldShareRevocationsAndLimitsBetweenInstances(t *testing.T) {
	t.Parallel()
	for _, topo := range redistest.Topologies {
		t.Run(topo.Name, func(t *testing.T) {
			t.Parallel()
			shareBetweenInstances(t, topo.Name, topo.Start(t).URL)
		})
	}
}

func shareBetweenInstances(t *testing.T, mode, redisURL string) {
	uri, db := sharedStore(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	inA := &instance{
		DataDir: t.TempDir(), MongoURI: uri, MongoDB: db,
		OwnerEmail: "owner@example.com", OwnerPassword: "e2e-Owner-" + randomHex(8), Bootstrap: true,
		Extra: []string{"MCPAUTH_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key), "MCPAUTH_REDIS_URL=" + redisURL,
			"MCPAUTH_LOCKOUT=3/15m/10m/1h", "MCPAUTH_RATE_LIMITS=login_id=8/1m"},
	}
	inB := *inA
	inB.DataDir = t.TempDir()
	a := startHTTP(t, inA, "http")
	b := startHTTP(t, &inB, "http") // after A: A has bootstrapped the owner
	if strings.Contains(b.Stderr.String(), "created owner") {
		t.Fatalf("B bootstrapped an owner of its own: it does not share A's store:\n%s", b.Stderr)
	}
	if !strings.Contains(b.Stderr.String(), `msg=redis mode=`+mode) {
		t.Fatalf("B does not say it uses Redis in %s mode:\n%s", mode, b.Stderr)
	}
	ownerA := dialHTTP(t, a)
	ownerA.Login(t, nil, inA.Owner())
	ownerB := dialHTTP(t, b)
	ownerB.SetBearer(ownerA.Bearer())
	password := "e2e-Shared-" + randomHex(8)

	t.Run("session_revocation", func(t *testing.T) {
		// A session of the owner's, used on B, revoked on A: refused on B within a second.
		sA := dialHTTP(t, a)
		tok := sA.Login(t, nil, inA.Owner())
		sB := dialHTTP(t, b)
		sB.SetBearer(tok.AccessToken)
		for range 2 { // the second answer trusts B's recent look-up
			if w := decode[whoamiResult](t, sB.Call(t, "auth_whoami", nil)); w.SessionID != tok.SessionID {
				t.Fatalf("auth_whoami on B with A's token: %+v", w)
			}
		}
		if r := decode[revokeResult](t, sA.Call(t, "auth_revoke", args{"token": tok.AccessToken})); !r.Revoked {
			t.Fatalf("auth_revoke on A: %+v", r)
		}
		revoked := time.Now()
		sent, _ := pollUntilRefused(t, sB, "auth_whoami", 20*time.Millisecond, revoked.Add(propagation))
		t.Logf("revoked on A, refused on B %s later", sent.Sub(revoked).Round(time.Millisecond))
		if msg := sB.WantUnauthorized(t, "user_list", nil, ""); !strings.Contains(msg, "revoked") {
			t.Errorf("B's 401 for a session revoked on A: %q does not say it is revoked", msg)
		}
		sB.SetBearer("")
		sB.Call(t, "auth_refresh", args{"refresh_token": tok.RefreshToken}).WantError(t, "TOKEN_REVOKED")
		sB.Call(t, "auth_validate", args{"token": tok.AccessToken}).WantError(t, "TOKEN_REVOKED")
	})

	t.Run("api_key_revocation", func(t *testing.T) {
		// A key in use on B (its record cached there), revoked on A: refused on B within a second.
		k := createKey(t, ownerA, nil, "shared", []string{"users:read"}, nil)
		kB := dialHTTP(t, b)
		kB.SetBearer(k.Key)
		for range 2 {
			decode[userListResult](t, kB.Call(t, "user_list", nil))
		}
		decode[revokeResult](t, ownerA.Call(t, "apikey_revoke", args{"id": k.ID}))
		revoked := time.Now()
		sent, _ := pollUntilRefused(t, kB, "user_list", 20*time.Millisecond, revoked.Add(propagation))
		t.Logf("key revoked on A, refused on B %s later", sent.Sub(revoked).Round(time.Millisecond))
		kB.WantUnauthorized(t, "auth_whoami", nil, "")
	})

	t.Run("user_record_change", func(t *testing.T) {
		// A user's record (here its email) changed on A: B, which holds the record (trusted for
		// 30 s when nothing announces a change), shows the new one within a second.
		user := ownerA.CreateUser(t, "before@example.com", password, "viewer")
		cB := dialHTTP(t, b)
		cB.Login(t, nil, args{"email": "before@example.com", "password": password})
		for range 2 { // the second answer comes from B's cached record
			if w := decode[whoamiResult](t, cB.Call(t, "auth_whoami", nil)); w.User.Email != "before@example.com" {
				t.Fatalf("auth_whoami on B: %+v", w.User)
			}
		}
		decode[userResult](t, ownerA.Call(t, "user_update", args{"id": user.ID, "fields": args{"email": "after@example.com"}}))
		changed := time.Now()
		for {
			w := decode[whoamiResult](t, cB.Call(t, "auth_whoami", nil))
			if w.User.Email == "after@example.com" {
				t.Logf("changed on A, shown on B %s later", time.Since(changed).Round(time.Millisecond))
				break
			}
			if time.Since(changed) > propagation {
				t.Fatalf("B still shows %q %s after the change on A", w.User.Email, time.Since(changed).Round(time.Millisecond))
			}
			time.Sleep(20 * time.Millisecond) // polling for the change to arrive, bounded by propagation
		}
	})

	t.Run("lockout", func(t *testing.T) {
		// Three failures spread over A and B lock the account on both; an unlock on B frees it on A.
		user := ownerA.CreateUser(t, "shared@example.com", password, "viewer")
		right := args{"email": "shared@example.com", "password": password}
		wrongArgs := args{"email": "shared@example.com", "password": "wrong-Password-42"}
		cA, cB := dialHTTP(t, a), dialHTTP(t, b)
		wrong := errorBody(t, cA.Call(t, "auth_login", wrongArgs), "INVALID_CREDENTIALS")
		wantSameAnswer(t, "wrong password on B", errorBody(t, cB.Call(t, "auth_login", wrongArgs), "INVALID_CREDENTIALS"), wrong)
		wantSameAnswer(t, "wrong password on A", errorBody(t, cA.Call(t, "auth_login", wrongArgs), "INVALID_CREDENTIALS"), wrong)
		wantSameAnswer(t, "right password on B", errorBody(t, cB.Call(t, "auth_login", right), "INVALID_CREDENTIALS"), wrong)
		wantSameAnswer(t, "right password on A", errorBody(t, cA.Call(t, "auth_login", right), "INVALID_CREDENTIALS"), wrong)
		decode[struct{ Unlocked bool }](t, ownerB.Call(t, "user_unlock", args{"id": user.ID}))
		if tok := cA.Login(t, nil, right); tok.User.ID != user.ID {
			t.Fatalf("login on A after an unlock on B: %+v", tok.User)
		}
	})

	t.Run("login_rate_limit", func(t *testing.T) {
		// 8 logins a minute per identifier, counted across both instances.
		cA, cB := dialHTTP(t, a), dialHTTP(t, b)
		for range 4 {
			cA.Call(t, "auth_login", args{"email": "ghost@example.com", "password": password}).WantError(t, "INVALID_CREDENTIALS")
			cB.Call(t, "auth_login", args{"email": "ghost@example.com", "password": password}).WantError(t, "INVALID_CREDENTIALS")
		}
		wantRateLimited(t, cA.Call(t, "auth_login", args{"email": "ghost@example.com", "password": password}), 8)
		wantRateLimited(t, cB.Call(t, "auth_login", args{"email": "ghost@example.com", "password": password}), 8)
	})

	t.Run("api_key_failures", func(t *testing.T) {
		// A client presenting bad keys is refused on both instances once it has used up its
		// failures (burst 10), even with a good key; a client elsewhere (a stdio process, the
		// address "local") is not.
		k := createKey(t, ownerA, nil, "good", []string{"users:read"}, nil)
		bad := forgeKey(k.Key) // a guess (a typo, failing its checksum, is refused without counting)
		// Earlier subtests' refused keys came from this address too: the budget may already be
		// partly spent, so present bad keys until the address is refused (at most the burst).
		for i := range 10 {
			r := mcptest.Post(t, a.URL+"/mcp", bad, mcptest.ToolsCallJSON(i, "auth_whoami", nil))
			if r.Status == http.StatusTooManyRequests {
				break
			}
			r.Challenge().Want(t, http.StatusUnauthorized, "invalid_token", a.URL+"/.well-known/oauth-protected-resource/mcp")
		}
		r := mcptest.Post(t, b.URL+"/mcp", k.Key, mcptest.ToolsCallJSON(1, "auth_whoami", nil))
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("a good key on B after 10 bad ones on A: %d %s, want 429 (rate-limited)", r.Status, r.Challenge().Header)
		}
		c := mcptest.DialStdio(t, binPath, inA.Env("MCPAUTH_API_KEY="+k.Key))
		if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.AuthMethod != "api_key" {
			t.Fatalf("auth_whoami over stdio with the good key: %+v", w)
		}
		c.CloseStdio(t)
	})
}

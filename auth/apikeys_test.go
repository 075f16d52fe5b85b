package auth_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
)

func (e *env) newKey(t *testing.T, u auth.User, perms ...string) (apikey.Key, string) {
	t.Helper()
	k, key, err := e.svc.CreateAPIKey(context.Background(), apikey.Request{UserID: u.ID, OrgID: u.OrgID, Name: "ci", Permissions: perms})
	if err != nil {
		t.Fatalf("create api key: %v", err)
	}
	return k, key.Reveal()
}

func TestShouldAuthenticateWithAnAPIKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	k, key := e.newKey(t, u, "projects:read", "tasks:*")
	if !strings.HasPrefix(key, apikey.Prefix) || strings.Contains(k.SecretHash, key[len(apikey.Prefix)+17:]) {
		t.Fatalf("key %q / stored hash %q", key, k.SecretHash)
	}
	id, _, ok := apikey.Parse(key)
	if !ok || id != k.ID {
		t.Fatalf("ParseAPIKey(%q) = %q, %v; want the key's id %s", key, id, ok, k.ID)
	}
	got, c, err := e.svc.Caller(ctx, auth.Secret(key))
	if err != nil {
		t.Fatalf("caller: %v", err)
	}
	if got.ID != u.ID || c.APIKeyID != k.ID || c.SessionID != "" || strings.Join(c.Scopes, " ") != "projects:read tasks:*" {
		t.Fatalf("caller = %+v, claims %+v", got, c)
	}
}

func TestShouldRejectAMistypedKeyWithoutALookUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.newKey(t, e.createUser(t, "ada@example.com", "ada"), "projects:read")
	flip := func(i int) string {
		b := []byte(key)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for name, bad := range map[string]string{
		"one character of the id changed":     flip(len(apikey.Prefix) + 2),
		"one character of the secret changed": flip(len(key) - 20),
		"the checksum changed":                flip(len(key) - 1),
		"truncated":                           key[:len(key)-1],
		"one character too many":              key + "a",
		"upper case":                          strings.ToUpper(key),
		"another prefix":                      "mcpx_" + key[len(apikey.Prefix):],
	} {
		if _, _, ok := apikey.Parse(bad); ok {
			t.Errorf("%s: ParseAPIKey accepted %q", name, bad)
		}
		_, err := e.svc.Validate(context.Background(), auth.Secret(bad))
		wantCode(t, name, err, apierr.TokenInvalid)
	}
}

func TestShouldRefuseRevokedExpiredAndOrphanedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("revoked", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		u := e.createUser(t, "ada@example.com", "ada")
		k, key := e.newKey(t, u, "projects:read")
		other := e.createUser(t, "bob@example.com", "bob")
		_, err := e.svc.RevokeAPIKey(ctx, other.ID, k.ID)
		wantCode(t, "revoking someone else's key", err, apierr.NotFound)
		if done, err := e.svc.RevokeAPIKey(ctx, u.ID, k.ID); err != nil || !done {
			t.Fatalf("revoke = %v, %v", done, err)
		}
		_, err = e.svc.Validate(ctx, auth.Secret(key))
		wantCode(t, "a revoked key", err, apierr.TokenInvalid)
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		u := e.createUser(t, "ada@example.com", "ada")
		_, key, err := e.svc.CreateAPIKey(ctx, apikey.Request{UserID: u.ID, OrgID: u.OrgID, Name: "short",
			Permissions: []string{"projects:read"}, ExpiresAt: e.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Validate(ctx, key); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		e.clock.Advance(time.Hour)
		_, err = e.svc.Validate(ctx, key)
		wantCode(t, "an expired key", err, apierr.TokenInvalid)
	})
	t.Run("owner gone", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		u := e.createUser(t, "ada@example.com", "ada")
		_, key := e.newKey(t, u, "projects:read")
		if err := e.store.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.svc.Caller(ctx, auth.Secret(key))
		wantCode(t, "a key whose owner is gone", err, apierr.TokenInvalid)
	})
}

func TestShouldValidateNewKeyRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	for _, tc := range []struct {
		name  string
		nk    apikey.Request
		field string
	}{
		{"no name", apikey.Request{Permissions: []string{"projects:read"}}, "name"},
		{"a name of 101 characters", apikey.Request{Name: strings.Repeat("n", 101), Permissions: []string{"projects:read"}}, "name"},
		{"no permissions", apikey.Request{Name: "ci"}, "permissions"},
		{"an expiry in the past", apikey.Request{Name: "ci", Permissions: []string{"projects:read"}, ExpiresAt: e.clock.Now().Add(-time.Second)}, "expires_at"},
	} {
		tc.nk.UserID, tc.nk.OrgID = u.ID, u.OrgID
		_, _, err := e.svc.CreateAPIKey(context.Background(), tc.nk)
		if got := apierr.From(err); got == nil || got.Code != apierr.InvalidArgument || got.Details["field"] != tc.field {
			t.Errorf("%s: err = %v, want INVALID_ARGUMENT on %s", tc.name, err, tc.field)
		}
	}
}

func TestShouldCoalesceLastUseWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	k, key := e.newKey(t, u, "projects:read")
	lastUsed := func() time.Time {
		got, err := e.store.GetAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}
	first := e.clock.Now()
	for range 3 {
		if _, err := e.svc.Validate(ctx, auth.Secret(key)); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(10 * time.Second)
	}
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last used = %v, want the first use %v (later ones within a minute are not written)", got, first)
	}
	e.clock.Advance(time.Minute)
	second := e.clock.Now()
	if _, err := e.svc.Validate(ctx, auth.Secret(key)); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(second) {
		t.Fatalf("last used = %v, want %v", got, second)
	}
}

func TestShouldNeverShowAKeysSecretInItsView(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, key := e.newKey(t, e.createUser(t, "ada@example.com", "ada"), "projects:read")
	b, _ := json.Marshal(k.View(e.clock.Now()))
	if strings.Contains(string(b), key[len(apikey.Prefix)+17:len(key)-7]) || strings.Contains(string(b), k.SecretHash) {
		t.Fatalf("view shows the secret or its hash: %s", b)
	}
}

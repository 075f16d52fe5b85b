package apikey_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// memRevocations is an in-process revocation set; failing makes it unreachable.
type memRevocations struct {
	failing bool
	ids     map[string]bool
}

func (m *memRevocations) Revoke(_ context.Context, id string, _ time.Duration) error {
	if m.failing {
		return errors.New("revocation set unreachable")
	}
	m.ids[id] = true
	return nil
}

func (m *memRevocations) IsRevoked(_ context.Context, id string) (bool, error) {
	if m.failing {
		return false, errors.New("revocation set unreachable")
	}
	return m.ids[id], nil
}

func request(user string) apikey.Request {
	return apikey.Request{UserID: user, OrgID: "acme", Name: "ci", Permissions: []string{"projects:read"}}
}

// A store that has lost its database fails every call, and Keys answers each one INTERNAL: a
// key it cannot read is never accepted.
func TestShouldFailClosedWhenTheStoreIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, lose := mongotest.LosableDatabase(t)
	store, err := apikey.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	keys := apikey.NewKeys(store, &memRevocations{ids: map[string]bool{}}, time.Now, time.Hour)
	k, secret, err := keys.Create(ctx, request("usr_1"))
	if err != nil {
		t.Fatal(err)
	}
	lose()

	for call, err := range map[string]error{
		"NewMongoStore": second(apikey.NewMongoStore(ctx, db)),
		"CreateAPIKey":  store.CreateAPIKey(ctx, apikey.Key{ID: "k2"}),
		"TouchAPIKey":   store.TouchAPIKey(ctx, k.ID, time.Now()),
		"EraseUser":     store.EraseUser(ctx, "usr_1"),
		"GetAPIKey":     second(store.GetAPIKey(ctx, k.ID)),
		"ListAPIKeys":   second(store.ListAPIKeys(ctx, "usr_1")),
		"RevokeAPIKey":  second(store.RevokeAPIKey(ctx, k.ID, time.Now())),
	} {
		if err == nil || errors.Is(err, storeerr.ErrNotFound) || errors.Is(err, storeerr.ErrAlreadyExists) {
			t.Errorf("store %s without a database: %v, want the database's error", call, err)
		}
	}
	_, _, createErr := keys.Create(ctx, request("usr_1"))
	_, listErr := keys.List(ctx, "usr_1")
	_, _, revokeErr := keys.Revoke(ctx, "usr_1", k.ID)
	_, checkErr := keys.Check(ctx, secret)
	for call, err := range map[string]error{"Create": createErr, "List": listErr, "Revoke": revokeErr, "Check": checkErr} {
		if apierr.CodeOf(err) != apierr.Internal {
			t.Errorf("%s without a database: %v, want INTERNAL", call, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// Revoking a key whose revocation the shared set did not get still revokes it in the store and
// says so; a cached key whose revocation set cannot be asked is refused.
func TestShouldRefuseACachedKeyWhenTheRevocationSetCannotBeAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := apikey.NewMongoStore(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	revocations := &memRevocations{ids: map[string]bool{}}
	keys := apikey.NewKeys(store, revocations, time.Now, time.Hour)
	_, secret, err := keys.Create(ctx, request("usr_1"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Check(ctx, secret) // now cached
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Used(ctx, k); err != nil {
		t.Fatalf("recording a use: %v", err)
	}
	revocations.failing = true
	if _, err := keys.Check(ctx, secret); apierr.CodeOf(err) != apierr.Internal {
		t.Errorf("a cached key with the revocation set unreachable: %v, want INTERNAL", err)
	}
	_, done, err := keys.Revoke(ctx, "usr_1", k.ID)
	if !done || apierr.CodeOf(err) != apierr.Internal {
		t.Fatalf("revoke = %v, %v; want done and INTERNAL", done, err)
	}
	if stored, err := store.GetAPIKey(ctx, k.ID); err != nil || !stored.Revoked {
		t.Errorf("the store does not have the revocation: %+v, %v", stored, err)
	}
}

// What Create refuses, it never stores.
func TestShouldRefuseABadKeyRequestAndStoreNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := apikey.NewMongoStore(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	keys := apikey.NewKeys(store, &memRevocations{ids: map[string]bool{}}, func() time.Time { return now }, time.Hour)
	for _, tc := range []struct {
		name  string
		edit  func(r *apikey.Request)
		field string
	}{
		{"an empty name", func(r *apikey.Request) { r.Name = "  " }, "name"},
		{"a name of 101 characters", func(r *apikey.Request) { r.Name = string(make([]rune, 101)) }, "name"},
		{"no permissions", func(r *apikey.Request) { r.Permissions = nil }, "permissions"},
		{"an expiry and never", func(r *apikey.Request) { r.ExpiresAt, r.NoExpiry = now.Add(time.Hour), true }, "expires_at"},
		{"an expiry in the past", func(r *apikey.Request) { r.ExpiresAt = now.Add(-time.Second) }, "expires_at"},
	} {
		r := request("usr_1")
		tc.edit(&r)
		_, _, err := keys.Create(ctx, r)
		if f, _ := apierr.From(err).Details["field"].(string); apierr.CodeOf(err) != apierr.InvalidArgument || f != tc.field {
			t.Errorf("%s: %v, want INVALID_ARGUMENT on %s", tc.name, err, tc.field)
		}
	}
	if all, _ := keys.List(ctx, "usr_1"); len(all) != 0 {
		t.Errorf("refused requests stored %d keys", len(all))
	}
	var first apikey.Key
	for i := range apikey.MaxPerUser {
		k, _, err := keys.Create(ctx, request("usr_1"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = k
		}
	}
	if _, _, err := keys.Create(ctx, request("usr_1")); apierr.CodeOf(err) != apierr.Conflict {
		t.Errorf("key %d: %v, want CONFLICT", apikey.MaxPerUser+1, err)
	}
	// The cap counts live keys: a revoked one frees its slot, as the refusal says.
	if _, _, err := keys.Revoke(ctx, "usr_1", first.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, _, err := keys.Create(ctx, request("usr_1")); err != nil {
		t.Errorf("a key in the slot of a revoked one: %v", err)
	}
}

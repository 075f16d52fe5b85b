package token_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func sealer(t *testing.T) *token.Sealer {
	t.Helper()
	s, err := token.NewSealer(make([]byte, token.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A key set is never half loaded: a store that cannot be read, or a stored key that cannot be
// used (an algorithm we do not support, a private key that does not parse), stops the load
// with an error naming the key, and a rotation that cannot be stored does not take over.
func TestShouldRefuseToLoadOrRotateKeysItCannotTrust(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s := sealer(t)
	for _, tc := range []struct {
		name string
		key  token.SigningKey
		want string
	}{
		{"an unsupported algorithm", token.SigningKey{ID: "k_hs", Alg: "HS256", CreatedAt: now}, "k_hs"},
		{"a private key that is not PKCS #8", token.SigningKey{ID: "k_bad", Alg: token.AlgEdDSA, PrivateSealed: s.Seal("k_bad", []byte("not a key")), CreatedAt: now}, "k_bad"},
		{"a private key sealed for another record", token.SigningKey{ID: "k_moved", Alg: token.AlgEdDSA, PrivateSealed: s.Seal("k_other", []byte("x")), CreatedAt: now}, "k_moved"},
	} {
		store := token.NewMongoStore(mongotest.Database(t))
		if err := store.CreateSigningKey(ctx, tc.key); err != nil {
			t.Fatal(err)
		}
		if _, err := token.LoadKeySet(ctx, store, s, token.AlgEdDSA, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}

	db, lose := mongotest.LosableDatabase(t)
	store := token.NewMongoStore(db)
	keys, err := token.LoadKeySet(ctx, store, s, token.AlgEdDSA, now)
	if err != nil {
		t.Fatal(err)
	}
	before := keys.JWKS()
	lose()
	if _, err := keys.Rotate(ctx, now.Add(time.Hour)); err == nil {
		t.Error("a rotation that could not be stored succeeded")
	}
	if after := keys.JWKS(); len(after.Keys) != len(before.Keys) || after.Keys[0].Kid != before.Keys[0].Kid {
		t.Errorf("a rotation that could not be stored changed the published keys: %+v, was %+v", after, before)
	}
	if _, err := token.LoadKeySet(ctx, store, s, token.AlgEdDSA, now); err == nil {
		t.Error("loading keys without a database succeeded")
	}
}

package auth_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/token"
)

func TestShouldOpenOnlyWhatTheSameMasterKeySealedForTheSameRecord(t *testing.T) {
	master := newMasterKey(t)
	sealer := newSealer(t, master)
	plaintext := []byte("-----BEGIN PRIVATE KEY----- not really")

	sealed := sealer.Seal("k_1", plaintext)
	if bytes.Contains(sealed, plaintext) {
		t.Fatalf("sealed blob contains the plaintext")
	}
	if again := sealer.Seal("k_1", plaintext); bytes.Equal(again, sealed) {
		t.Errorf("sealing twice gave the same blob: the nonce is not random")
	}
	opened, err := sealer.Open("k_1", sealed)
	if err != nil || !bytes.Equal(opened, plaintext) {
		t.Fatalf("open = %q, %v; want the plaintext", opened, err)
	}
	// A fresh sealer from the same key bytes (a restart) opens it too.
	if _, err := newSealer(t, master).Open("k_1", sealed); err != nil {
		t.Errorf("open with the same master key after a restart: %v", err)
	}

	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name   string
		sealer *token.Sealer
		id     string
		blob   []byte
	}{
		{"another master key", newSealer(t, newMasterKey(t)), "k_1", sealed},
		{"another record's id", sealer, "k_2", sealed},
		{"a flipped bit", sealer, "k_1", tampered},
		{"a truncated blob", sealer, "k_1", sealed[:8]},
		{"an empty blob", sealer, "k_1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.sealer.Open(tc.id, tc.blob); err == nil {
				t.Fatalf("opened %q", got)
			}
		})
	}
}

func TestShouldRejectAMasterKeyOfTheWrongSize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := token.NewSealer(make([]byte, n)); err == nil {
			t.Errorf("accepted a %d-byte master key", n)
		}
	}
}

// newEnvWithAlg is newEnv with a key set of alg.
func newEnvWithAlg(t *testing.T, alg string) *env {
	t.Helper()
	e := &env{store: newMongoStore(t), master: newMasterKey(t), clock: newTestClock()}
	e.keys = loadKeySet(t, e.store, e.master, alg, e.clock.Now())
	e.svc = e.newService(t, e.keys, nil)
	return e
}

func b64Len(t *testing.T, field, s string) int {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s is not base64url without padding: %v", field, err)
	}
	return len(b)
}

func TestShouldGenerateAndPublishAKeyOfEachAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		alg   string
		check func(t *testing.T, k token.JWK)
	}{
		{token.AlgEdDSA, func(t *testing.T, k token.JWK) {
			if k.Kty != "OKP" || k.Crv != "Ed25519" || b64Len(t, "x", k.X) != 32 || k.Y != "" || k.N != "" {
				t.Errorf("EdDSA JWK = %+v", k)
			}
		}},
		{token.AlgES256, func(t *testing.T, k token.JWK) {
			if k.Kty != "EC" || k.Crv != "P-256" || b64Len(t, "x", k.X) != 32 || b64Len(t, "y", k.Y) != 32 || k.N != "" {
				t.Errorf("ES256 JWK = %+v", k)
			}
		}},
		{token.AlgRS256, func(t *testing.T, k token.JWK) {
			if k.Kty != "RSA" || k.Crv != "" || k.E != "AQAB" || b64Len(t, "n", k.N) < 256 || k.X != "" {
				t.Errorf("RS256 JWK = %+v", k)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			t.Parallel()
			e := newEnvWithAlg(t, tc.alg)
			ctx := context.Background()

			stored, err := e.store.ListSigningKeys(ctx)
			if err != nil || len(stored) != 1 {
				t.Fatalf("stored keys = %+v, %v; want one", stored, err)
			}
			if stored[0].Alg != tc.alg || len(stored[0].PublicDER) == 0 {
				t.Errorf("stored key = %+v", stored[0])
			}
			if _, err := x509.ParsePKCS8PrivateKey(stored[0].PrivateSealed); err == nil {
				t.Errorf("the private key is stored in the clear")
			}

			jwks := e.keys.JWKS()
			if len(jwks.Keys) != 1 {
				t.Fatalf("JWKS = %+v, want one key", jwks)
			}
			k := jwks.Keys[0]
			if k.Kid != stored[0].ID || k.Alg != tc.alg || k.Use != "sig" {
				t.Errorf("JWK kid/alg/use = %q/%q/%q, want %q/%q/sig", k.Kid, k.Alg, k.Use, stored[0].ID, tc.alg)
			}
			tc.check(t, k)

			// Tokens are signed with it, named by kid, and verify.
			e.createUser(t, "ada@example.com", "ada")
			tokens := e.login(t, "ada")
			h := header(t, tokens.AccessToken)
			if h["alg"] != tc.alg || h["kid"] != k.Kid || h["typ"] != token.AccessTokenType {
				t.Errorf("token header = %v", h)
			}
			e.validate(t, e.svc, tokens.AccessToken)

			// Loading again (a restart) reuses the stored key instead of making another.
			again := loadKeySet(t, e.store, e.master, tc.alg, e.clock.Now().Add(time.Hour))
			if got := again.JWKS().Keys; len(got) != 1 || got[0] != k {
				t.Errorf("JWKS after reload = %+v, want the same single key %+v", got, k)
			}
			if stored, _ := e.store.ListSigningKeys(ctx); len(stored) != 1 {
				t.Errorf("reload stored another key: %d keys", len(stored))
			}
		})
	}
}

func TestShouldRefuseToLoadKeysWithAnotherMasterKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := token.LoadKeySet(context.Background(), e.store, newSealer(t, newMasterKey(t)), token.AlgEdDSA, e.clock.Now())
	if err == nil {
		t.Fatalf("keys sealed with one master key were loaded with another")
	}
}

func TestShouldRejectAnUnsupportedAlgorithm(t *testing.T) {
	t.Parallel()
	store := newMongoStore(t)
	for _, alg := range []string{"HS256", "none", "", "eddsa"} {
		if _, err := token.LoadKeySet(context.Background(), store, newSealer(t, newMasterKey(t)), alg, time.Now()); err == nil {
			t.Errorf("LoadKeySet accepted algorithm %q", alg)
		}
	}
	if keys, _ := store.ListSigningKeys(context.Background()); len(keys) != 0 {
		t.Errorf("a key was stored for an unsupported algorithm: %+v", keys)
	}
}

func TestShouldKeepVerifyingOldKeysWhenTheSigningAlgorithmChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // EdDSA
	e.createUser(t, "ada@example.com", "ada")
	old := e.login(t, "ada")

	es256 := loadKeySet(t, e.store, e.master, token.AlgES256, e.clock.Now())
	if n := len(es256.JWKS().Keys); n != 2 {
		t.Fatalf("JWKS has %d keys after adding ES256, want 2", n)
	}
	svc := e.newService(t, es256, nil)
	e.validate(t, svc, old.AccessToken) // signed by the EdDSA key, still published

	tokens, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	if alg := header(t, tokens.AccessToken)["alg"]; alg != token.AlgES256 {
		t.Errorf("new tokens are signed with %v, want ES256", alg)
	}
	// Another instance that started before the ES256 key existed finds it by kid in the store
	// (never in the token), as it does after a rotation within one algorithm.
	e.validate(t, e.svc, tokens.AccessToken)
}

func TestShouldRejectATokenMACedWithThePublicKey(t *testing.T) {
	t.Parallel()
	e := newEnvWithAlg(t, token.AlgRS256)
	e.createUser(t, "ada@example.com", "ada")
	genuine := e.validate(t, e.svc, e.login(t, "ada").AccessToken)

	// The classic RS/HS confusion: sign HS256 with the published public key as the secret.
	k := e.keys.JWKS().Keys[0]
	n, _ := base64.RawURLEncoding.DecodeString(k.N)
	der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	now := e.clock.Now()
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": genuine.Subject, "sid": genuine.SessionID,
		"scope": "*", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "forged",
	})
	forged.Header["kid"] = k.Kid
	forged.Header["typ"] = token.AccessTokenType
	for _, secret := range [][]byte{pemKey, der} {
		signed, err := forged.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Validate(context.Background(), auth.Secret(signed))
		wantCode(t, "HS256 token keyed with the RSA public key", err, apierr.TokenInvalid)
	}
}

func TestShouldRotateSigningKeysWithAnOverlap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	// A long-lived token signed by the first key (a service with a 2 h access TTL issues it).
	long := e.newService(t, e.keys, func(c *auth.Config) { c.AccessTTL = 2 * time.Hour })
	oldToken, _, err := long.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	svc := e.newService(t, e.keys, nil) // the 15 min service: overlap = 15 min + skew
	oldKid := header(t, oldToken.AccessToken)["kid"]

	newKid, err := svc.RotateSigningKey(ctx)
	if err != nil || newKid == oldKid {
		t.Fatalf("rotate = %q, %v", newKid, err)
	}
	fresh := e.login(t, "ada")
	if got := header(t, fresh.AccessToken)["kid"]; got != newKid {
		t.Fatalf("new tokens are signed by %v, want the new key %s", got, newKid)
	}
	e.validate(t, svc, oldToken.AccessToken) // inside the overlap

	e.clock.Advance(20 * time.Minute) // past the overlap, before the token's own expiry
	_, err = svc.Validate(ctx, auth.Secret(oldToken.AccessToken))
	wantCode(t, "a token signed by a key rotated out past its overlap", err, apierr.TokenInvalid)
	if _, err := svc.Validate(ctx, auth.Secret(e.login(t, "ada").AccessToken)); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}

	// Another instance loading the same store agrees on the retirement without any write.
	other := loadKeySet(t, e.store, e.master, token.AlgEdDSA, e.clock.Now())
	_, err = e.newService(t, other, nil).Validate(ctx, auth.Secret(oldToken.AccessToken))
	wantCode(t, "the retired key on a freshly loaded instance", err, apierr.TokenInvalid)
}

func TestShouldPickUpAKeyRotatedByAnotherInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	other := loadKeySet(t, e.store, e.master, token.AlgEdDSA, e.clock.Now())
	otherSvc := e.newService(t, other, nil)
	if _, err := otherSvc.RotateSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	tokens, _, err := otherSvc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	e.validate(t, e.svc, tokens.AccessToken) // e.svc has never seen the new kid: it reloads
}

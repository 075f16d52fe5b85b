package auth_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// FuzzValidateAccessToken feeds arbitrary strings to Validate: it must never panic, answer only
// with a token error, and accept nothing but the very strings the service issued. The clock
// stands still, so the issued tokens stay valid for the whole run and an unknown kid reloads
// the key store at most once: the fuzzing loop touches no database.
//
// The seed corpus (testdata/fuzz/FuzzValidateAccessToken) holds tokens of the right shape
// signed by a key that is not ours and a handful of the attack suite's forgeries; the tokens
// issued here, and forgeries of them, are added at run time.
func FuzzValidateAccessToken(f *testing.F) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	store, err := auth.NewMongoStore(ctx, mongotest.Database(f))
	if err != nil {
		f.Fatal(err)
	}
	master := make([]byte, token.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		f.Fatal(err)
	}
	sealer, err := token.NewSealer(master)
	if err != nil {
		f.Fatal(err)
	}
	keys, err := token.LoadKeySet(ctx, store, sealer, token.AlgEdDSA, now)
	if err != nil {
		f.Fatal(err)
	}
	svc, err := auth.NewService(ctx, store, keys, auth.Config{
		Issuer: testIssuer, Audience: testAudience, Password: password.Config{Cost: bcrypt.MinCost},
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
		Scopes: func(context.Context, auth.User) ([]string, error) { return []string{"users:read"}, nil },
	})
	if err != nil {
		f.Fatal(err)
	}
	ada, err := svc.CreateUser(ctx, auth.NewUser{Email: "ada@example.com", Username: "ada", Password: testPassword})
	if err != nil {
		f.Fatal(err)
	}
	login := func() auth.Tokens {
		tokens, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "ada", Password: testPassword})
		if err != nil {
			f.Fatal(err)
		}
		return tokens
	}
	first, second, revoked := login(), login(), login()
	if _, err := svc.Revoke(ctx, auth.Secret(revoked.AccessToken)); err != nil {
		f.Fatal(err)
	}
	// valid are the only strings Validate may accept.
	valid := []string{first.AccessToken, second.AccessToken}

	seeds := append(slices.Clone(valid), revoked.AccessToken, first.RefreshToken)
	parts := strings.Split(first.AccessToken, ".")
	others := strings.Split(second.AccessToken, ".")
	noneHeader := b64([]byte(`{"alg":"none","typ":"at+jwt"}`))
	numberKid := b64([]byte(`{"alg":"EdDSA","typ":"at+jwt","kid":7}`))
	seeds = append(seeds,
		// Forgeries of our own tokens: the fuzzer starts from our kid and our claims.
		parts[0]+"."+parts[1]+".",
		parts[0]+"."+parts[1]+"."+others[2],
		parts[0]+"."+others[1]+"."+parts[2],
		noneHeader+"."+parts[1]+".",
		numberKid+"."+parts[1]+"."+parts[2],
		parts[0]+"."+parts[1]+"."+parts[2][:len(parts[2])-1]+"A",
		first.AccessToken+"."+parts[2],
		strings.Repeat(first.AccessToken, 4),
		parts[0]+"."+parts[1]+"."+strings.Repeat(parts[2], 100),
	)
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		c, err := svc.Validate(ctx, auth.Secret(token))
		if err == nil {
			if !slices.Contains(valid, token) {
				t.Fatalf("Validate accepted a string the service never issued: %q → %+v", token, c)
			}
			if c.Subject != ada.ID {
				t.Fatalf("an issued token validated as %q, want %q", c.Subject, ada.ID)
			}
			return
		}
		switch code := apierr.CodeOf(err); code {
		case apierr.TokenInvalid, apierr.TokenExpired, apierr.TokenRevoked:
		default:
			t.Fatalf("Validate(%q) answered %s (%v), want a token error", token, code, err)
		}
		if c.Subject != "" || c.SessionID != "" {
			t.Fatalf("Validate(%q) returned claims with its error: %+v", token, c)
		}
	})
}

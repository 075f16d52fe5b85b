package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// These benchmarks measure the login and validation paths against the raw library operation
// they are built on, in the same run, and report the ratio (the machines are noisy; ratios
// travel, absolute figures do not).

const benchPassword = auth.Secret("correct horse battery staple")

func benchService(b *testing.B, cost int) (*auth.Service, *auth.KeySet) {
	b.Helper()
	ctx := context.Background()
	store, err := auth.NewMongoStore(ctx, mongotest.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	master := make([]byte, auth.MasterKeySize)
	_, _ = rand.Read(master)
	sealer, err := auth.NewSealer(master)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := auth.LoadKeySet(ctx, store, sealer, auth.AlgEdDSA, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	svc, err := auth.NewService(ctx, store, keys, auth.Config{
		Issuer: "urn:bench", Audience: "urn:bench:mcp", BcryptCost: cost, Logger: slog.New(slog.DiscardHandler),
		RoleExists: func(string) bool { return true },
		Scopes:     func(context.Context, auth.User) ([]string, error) { return []string{"users:read"}, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, auth.NewUser{Email: "bench@example.com", Password: benchPassword, Roles: []string{"owner"}}); err != nil {
		b.Fatal(err)
	}
	return svc, keys
}

func loginOnce(b *testing.B, svc *auth.Service, identifier string, wantErr bool) {
	_, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: identifier, Password: benchPassword})
	if (err != nil) != wantErr {
		b.Fatalf("login %s: %v", identifier, err)
	}
}

// nsPerOp runs f as a sub-benchmark and returns its time per operation. (testing.Benchmark
// cannot be nested in a running benchmark: it takes the same lock.)
func nsPerOp(b *testing.B, name string, f func(b *testing.B)) float64 {
	var ns float64
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		f(b)
		ns = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	return ns
}

// reportRatios prints the ratios as a last sub-benchmark, so they sit beside their figures.
func reportRatios(b *testing.B, metrics map[string]float64) {
	b.Run("ratio", func(b *testing.B) {
		for b.Loop() {
		}
		for unit, v := range metrics {
			b.ReportMetric(v, unit)
		}
	})
}

// BenchmarkLoginVsBcrypt: a full login (store look-up, bcrypt at cost 10, session, refresh
// token, signed access token) against one raw bcrypt compare at the same cost; and an unknown
// user's login against a known user's.
func BenchmarkLoginVsBcrypt(b *testing.B) {
	svc, _ := benchService(b, auth.DefaultBcryptCost)
	hash, _ := bcrypt.GenerateFromPassword([]byte(benchPassword.Reveal()), auth.DefaultBcryptCost)
	raw := nsPerOp(b, "raw-bcrypt", func(b *testing.B) {
		for b.Loop() {
			_ = bcrypt.CompareHashAndPassword(hash, []byte(benchPassword.Reveal()))
		}
	})
	known := nsPerOp(b, "login", func(b *testing.B) {
		for b.Loop() {
			loginOnce(b, svc, "bench@example.com", false)
		}
	})
	unknown := nsPerOp(b, "login-unknown-user", func(b *testing.B) {
		for b.Loop() {
			loginOnce(b, svc, "nobody@example.com", true)
		}
	})
	reportRatios(b, map[string]float64{"login/bcrypt": known / raw, "unknown/known": unknown / known})
}

// BenchmarkValidateVsJWT: Service.Validate against golang-jwt's own parse+verify of the same
// token with the same key (taken from the JWKS, as a resource server would).
func BenchmarkValidateVsJWT(b *testing.B) {
	svc, keys := benchService(b, 4)
	tokens, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "bench@example.com", Password: benchPassword})
	if err != nil {
		b.Fatal(err)
	}
	jwk := keys.JWKS().Keys[0]
	x, _ := base64.RawURLEncoding.DecodeString(jwk.X)
	pub := ed25519.PublicKey(x)
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("urn:bench:mcp"), jwt.WithIssuer("urn:bench"))
	raw := nsPerOp(b, "raw-golang-jwt", func(b *testing.B) {
		for b.Loop() {
			if _, err := parser.Parse(tokens.AccessToken, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	ours := nsPerOp(b, "validate", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Validate(context.Background(), auth.Secret(tokens.AccessToken)); err != nil {
				b.Fatal(err)
			}
		}
	})
	reportRatios(b, map[string]float64{"validate/jwt": ours / raw})
}

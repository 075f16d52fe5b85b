package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/internal/mongotest"
)

// These benchmarks measure the login and validation paths against the raw library operation
// they are built on, in the same run, and report the ratio (the machines are noisy; ratios
// travel, absolute figures do not).

const benchPassword = auth.Secret("correct horse battery staple")

func benchService(b *testing.B, cost int, mutate ...func(*auth.Config)) (*auth.Service, *token.KeySet) {
	b.Helper()
	ctx := context.Background()
	store, err := auth.NewMongoStore(ctx, mongotest.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	master := make([]byte, token.MasterKeySize)
	_, _ = rand.Read(master)
	sealer, err := token.NewSealer(master)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := token.LoadKeySet(ctx, store, sealer, token.AlgEdDSA, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cfg := auth.Config{
		Issuer: "urn:bench", Audience: "urn:bench:mcp", Password: password.Config{Cost: cost}, Logger: slog.New(slog.DiscardHandler),
		// Throttles out of the way: these measure the work, not the limits.
		Limits: unthrottled,
		Lockout: throttle.NewLocalLockout(throttle.Policy{Attempts: 1 << 30, Window: time.Hour, Backoff: time.Second,
			MaxBackoff: time.Second, PermanentAfter: 1 << 30}, nil),
		Scopes: func(context.Context, auth.User) ([]string, error) { return []string{"users:read"}, nil },
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := auth.NewService(ctx, store, keys, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, auth.NewUser{Email: "bench@example.com", Password: benchPassword}); err != nil {
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

// BenchmarkLoginVsBcrypt: a full login (store look-up, bcrypt at cost 10, session, refresh
// token, signed access token) against one raw bcrypt compare at the same cost; and an unknown
// user's failed login against a known user's failed and successful ones.
func BenchmarkLoginVsBcrypt(b *testing.B) {
	svc, _ := benchService(b, password.DefaultCost)
	hash, _ := bcrypt.GenerateFromPassword([]byte(benchPassword.Reveal()), password.DefaultCost)
	raw := benchratio.Run(b, "raw-bcrypt", func(b *testing.B) {
		for b.Loop() {
			_ = bcrypt.CompareHashAndPassword(hash, []byte(benchPassword.Reveal()))
		}
	})
	known := benchratio.Run(b, "login", func(b *testing.B) {
		for b.Loop() {
			loginOnce(b, svc, "bench@example.com", false)
		}
	})
	wrong := benchratio.Run(b, "login-wrong-password", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "bench@example.com", Password: "not the password"}); err == nil {
				b.Fatal("wrong password accepted")
			}
		}
	})
	unknown := benchratio.Run(b, "login-unknown-user", func(b *testing.B) {
		for b.Loop() {
			loginOnce(b, svc, "nobody@example.com", true)
		}
	})
	// unknown/wrong-password is the enumeration question: both fail, and must cost the same.
	benchratio.Report(b, map[string][2]*benchratio.Samples{"login/bcrypt": {known, raw}, "unknown/known": {unknown, known},
		"unknown/wrong-password": {unknown, wrong}})
}

// BenchmarkLoginThroughput: logins on every core at once (GOMAXPROCS goroutines, the hashing
// pool's default size) against raw bcrypt compares on every core at the same cost: the share of
// the machine's bcrypt throughput a login gets (the rest is the store and token signing).
func BenchmarkLoginThroughput(b *testing.B) {
	svc, _ := benchService(b, password.DefaultCost)
	hash, _ := bcrypt.GenerateFromPassword([]byte(benchPassword.Reveal()), password.DefaultCost)
	raw := benchratio.Run(b, "raw-bcrypt-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = bcrypt.CompareHashAndPassword(hash, []byte(benchPassword.Reveal()))
			}
		})
	})
	logins := benchratio.Run(b, "login-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				loginOnce(b, svc, "bench@example.com", false)
			}
		})
	})
	// Time per operation: bcrypt's over the login's is the login's share of bcrypt's throughput.
	benchratio.Report(b, map[string][2]*benchratio.Samples{"login-throughput/bcrypt": {raw, logins}})
}

// BenchmarkValidateVsJWT: Service.Validate of a token it sees for the first time, against
// golang-jwt's own parse+verify of the same tokens with the same key (taken from the JWKS, as a
// resource server would); and of a token it has seen before (every call of an MCP session after
// its first), answered from the verified-token cache. First sight is forced by cycling through
// more distinct tokens than the cache holds.
func BenchmarkValidateVsJWT(b *testing.B) {
	svc, keys := benchService(b, 4, func(c *auth.Config) { c.TokenCacheSize = 1024 })
	ctx := context.Background()
	tokens, u, err := svc.Login(ctx, auth.LoginRequest{Identifier: "bench@example.com", Password: benchPassword})
	if err != nil {
		b.Fatal(err)
	}
	distinct := make([]string, 8192)
	for i := range distinct {
		if distinct[i], err = auth.MintAccessToken(svc, u.ID, tokens.SessionID, u.OrgID, []string{"users:read"}); err != nil {
			b.Fatal(err)
		}
	}
	jwk := keys.JWKS().Keys[0]
	x, _ := base64.RawURLEncoding.DecodeString(jwk.X)
	pub := ed25519.PublicKey(x)
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("urn:bench:mcp"), jwt.WithIssuer("urn:bench"))
	raw := benchratio.Run(b, "raw-golang-jwt", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := parser.Parse(distinct[i%len(distinct)], func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	first := benchratio.Run(b, "first-sight", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := svc.Validate(ctx, auth.Secret(distinct[i%len(distinct)])); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	repeated := benchratio.Run(b, "repeated", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Validate(ctx, auth.Secret(tokens.AccessToken)); err != nil {
				b.Fatal(err)
			}
		}
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"first-sight/jwt": {first, raw}, "jwt/repeated": {raw, repeated}})
}

// BenchmarkAPIKeyVsJWT: authenticating a caller (Service.Caller: credential check plus the live
// user record) with an API key against the same with a JWT access token.
func BenchmarkAPIKeyVsJWT(b *testing.B) {
	svc, _ := benchService(b, 4)
	ctx := context.Background()
	tokens, u, err := svc.Login(ctx, auth.LoginRequest{Identifier: "bench@example.com", Password: benchPassword})
	if err != nil {
		b.Fatal(err)
	}
	_, key, err := svc.CreateAPIKey(ctx, apikey.Request{UserID: u.ID, OrgID: u.OrgID, Name: "bench", Permissions: []string{"users:read"}})
	if err != nil {
		b.Fatal(err)
	}
	caller := func(cred auth.Secret) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if _, _, err := svc.Caller(ctx, cred); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	jwt := benchratio.Run(b, "jwt", caller(auth.Secret(tokens.AccessToken)))
	apiKey := benchratio.Run(b, "api-key", caller(key))
	parse := benchratio.Run(b, "api-key-parse-only", func(b *testing.B) {
		for b.Loop() {
			if _, _, ok := apikey.Parse(key.Reveal()); !ok {
				b.Fatal("parse")
			}
		}
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"api-key/jwt": {apiKey, jwt}, "parse/jwt": {parse, jwt}})
}

// BenchmarkUserByEmail: the login look-up at 20,000 users on the store under test (the embedded
// FerretDB unless MCPAUTH_TEST_MONGO_URI), the last user's email each time: a filter on email
// (what the store did before user_names: FerretDB scans and decodes every user) beside the
// store's GetUserByEmail (a name record by _id, then the user by _id), in one run.
func BenchmarkUserByEmail(b *testing.B) {
	ctx := context.Background()
	db := mongotest.Database(b)
	store, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	const n = 20_000
	users, names := make([]any, n), make([]any, n)
	for i := range n {
		id, email := fmt.Sprintf("usr_%06d", i), fmt.Sprintf("user%06d@example.com", i)
		users[i] = auth.User{ID: id, Email: email, OrgID: "acme"}
		names[i] = bson.D{{Key: "_id", Value: "email:" + email}, {Key: "user_id", Value: id}}
	}
	if _, err := db.Collection("users").InsertMany(ctx, users); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Collection("user_names").InsertMany(ctx, names); err != nil {
		b.Fatal(err)
	}
	last := fmt.Sprintf("user%06d@example.com", n-1)
	scan := benchratio.Run(b, "filter-on-email", func(b *testing.B) {
		for b.Loop() {
			var u auth.User
			if err := db.Collection("users").FindOne(ctx, bson.D{{Key: "email", Value: last}}).Decode(&u); err != nil {
				b.Fatal(err)
			}
		}
	})
	byName := benchratio.Run(b, "name-record", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.GetUserByEmail(ctx, last); err != nil {
				b.Fatal(err)
			}
		}
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"name-record/filter": {byName, scan}})
}

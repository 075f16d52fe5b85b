package oauth_test

// The authorization server's cost, in process (no network): the token endpoint's code
// redemption and refresh, introspection, and the whole authorization code path (authorize →
// login → consent → token) with its bcrypt compare taken out by measuring a raw compare at the
// same cost in the same run. Each beside the raw cost of signing one access token (golang-jwt,
// EdDSA), the floor of anything that issues one.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/internal/mongotest"
)

const (
	benchIssuer   = "https://auth.bench.example"
	benchResource = benchIssuer + "/mcp"
	benchPassword = auth.Secret("correct horse battery staple")
	benchRedirect = "http://127.0.0.1:5555/cb"
	// benchCost is the bcrypt cost of the bench user: the path's own work is what is measured,
	// the compare is subtracted.
	benchCost = bcrypt.MinCost
)

var unlimited = throttle.Limit{Rate: 1 << 20, Period: time.Second, Burst: 1 << 20}

type benchAS struct {
	mux    *http.ServeMux
	store  *oauth.MongoStore
	client string
	secret string // of the confidential client (introspection)
}

func newBenchAS(b testing.TB, db *mongo.Database) benchAS {
	b.Helper()
	ctx := context.Background()
	store, err := auth.NewMongoStore(ctx, db)
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
	svc, err := auth.NewService(ctx, store, keys, auth.Config{Issuer: benchIssuer, Audience: benchResource,
		Password: password.Config{Cost: benchCost}, Logger: slog.New(slog.DiscardHandler),
		Limits: auth.Limits{LoginPerIdentifier: unlimited, LoginPerAddress: unlimited, Refresh: unlimited, APIKeyFailures: unlimited},
		Lockout: throttle.NewLocalLockout(throttle.Policy{Attempts: 1 << 30, Window: time.Hour, Backoff: time.Second,
			MaxBackoff: time.Second, PermanentAfter: 1 << 30}, nil),
		Scopes: func(context.Context, auth.User) ([]string, error) { return []string{"projects:read"}, nil }})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, auth.NewUser{Email: "bench@example.com", Password: benchPassword}); err != nil {
		b.Fatal(err)
	}
	oauthStore, err := oauth.NewMongoStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	mongotest.IndexIDs(ctx)
	srv, err := oauth.NewServer(oauth.Config{Issuer: benchIssuer, Resource: benchResource, Auth: svc, Store: oauthStore,
		Sealer: sealer, Registration: true, RegisterLimit: unlimited, Logger: slog.New(slog.DiscardHandler),
		Scopes: oauth.Scopes{Supported: []string{"projects:read"}, Default: []string{"projects:read"},
			Held: func(_ context.Context, _ auth.User, s []string) ([]string, error) { return s, nil }}})
	if err != nil {
		b.Fatal(err)
	}
	as := benchAS{mux: http.NewServeMux(), store: oauthStore}
	srv.Register(as.mux, func(h http.Handler) http.Handler { return h })
	as.client = as.register(b, `{"redirect_uris":["`+benchRedirect+`"],"token_endpoint_auth_method":"none"}`)["client_id"].(string)
	conf := as.register(b, `{"redirect_uris":["https://rs.example/cb"],"token_endpoint_auth_method":"client_secret_post"}`)
	as.secret = conf["client_id"].(string) + "\x00" + conf["client_secret"].(string)
	return as
}

func (as benchAS) do(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	as.mux.ServeHTTP(w, req)
	return w
}

func (as benchAS) register(b testing.TB, body string) map[string]any {
	req := httptest.NewRequest(http.MethodPost, benchIssuer+oauth.RegistrationPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := as.do(req)
	var m map[string]any
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &m) != nil {
		b.Fatalf("register: %d %s", w.Code, w.Body)
	}
	return m
}

func (as benchAS) form(path string, v url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, benchIssuer+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return as.do(req)
}

var sealedField = regexp.MustCompile(`name="request" value="([^"]*)"`)

// authorize runs the pages as a browser (login and consent) and returns the code.
func (as benchAS) authorize(b testing.TB, verifier string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {as.client}, "redirect_uri": {benchRedirect},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}, "state": {"s"}}
	w := as.do(httptest.NewRequest(http.MethodGet, benchIssuer+oauth.AuthorizePath+"?"+q.Encode(), nil))
	cookies := w.Result().Cookies()
	m := sealedField.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		b.Fatalf("authorize: %d", w.Code)
	}
	w = as.form("/authorize/login", url.Values{"request": {m[1]}, "identifier": {"bench@example.com"}, "password": {benchPassword.Reveal()}}, cookies...)
	if m = sealedField.FindStringSubmatch(w.Body.String()); w.Code != http.StatusOK || m == nil {
		b.Fatalf("login: %d %s", w.Code, w.Body)
	}
	w = as.form("/authorize/consent", url.Values{"request": {m[1]}, "decision": {"allow"}}, cookies...)
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		b.Fatalf("consent: %d %s", w.Code, w.Header().Get("Location"))
	}
	return loc.Query().Get("code")
}

func (as benchAS) redeem(b testing.TB, code, verifier string) map[string]any {
	w := as.form(oauth.TokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {benchRedirect},
		"code_verifier": {verifier}, "client_id": {as.client}})
	var m map[string]any
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &m) != nil {
		b.Fatalf("token: %d %s", w.Code, w.Body)
	}
	return m
}

// signBaseline is one access-token-sized JWT signed with golang-jwt (EdDSA): the floor.
func signBaseline(b *testing.B) *benchratio.Samples {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return benchratio.Run(b, "raw_sign", func(b *testing.B) {
		for b.Loop() {
			claims := jwt.MapClaims{"iss": benchIssuer, "sub": "usr_x", "aud": benchResource, "exp": time.Now().Add(time.Minute).Unix(),
				"jti": "abcdefghijklmnop", "sid": "ses_x", "client_id": "mcp_x", "scope": "projects:read"}
			if _, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(priv); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenEndpoint: a code redeemed for tokens, a refresh, and an introspection, each
// beside one raw JWT signature.
func BenchmarkTokenEndpoint(b *testing.B) {
	as := newBenchAS(b, mongotest.Database(b))
	sign := signBaseline(b)
	redeem := benchratio.Run(b, "code_redemption", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer() // the pages are the next benchmark's; here only the exchange
			verifier := oauth2.GenerateVerifier()
			code := as.authorize(b, verifier)
			b.StartTimer()
			as.redeem(b, code, verifier)
		}
	})
	verifier := oauth2.GenerateVerifier()
	refresh := as.redeem(b, as.authorize(b, verifier), verifier)["refresh_token"].(string)
	rotate := benchratio.Run(b, "refresh", func(b *testing.B) {
		for b.Loop() {
			w := as.form(oauth.TokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {as.client}})
			var m map[string]any
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &m) != nil {
				b.Fatalf("refresh: %d %s", w.Code, w.Body)
			}
			refresh = m["refresh_token"].(string)
		}
	})
	verifier = oauth2.GenerateVerifier()
	access := as.redeem(b, as.authorize(b, verifier), verifier)["access_token"].(string)
	id, secret, _ := strings.Cut(as.secret, "\x00")
	introspect := benchratio.Run(b, "introspect", func(b *testing.B) {
		for b.Loop() {
			w := as.form(oauth.IntrospectPath, url.Values{"token": {access}, "client_id": {id}, "client_secret": {secret}})
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"active":true`) {
				b.Fatalf("introspect: %d %s", w.Code, w.Body)
			}
		}
	})
	// Throughput on both cores: refreshes of GOMAXPROCS families at once (each goroutine its
	// own family, as clients are), beside signatures at once.
	signParallel := benchratio.Run(b, "raw_sign_parallel", func(b *testing.B) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "usr_x", "aud": benchResource}).SignedString(priv); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	rotateParallel := benchratio.Run(b, "refresh_parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			verifier := oauth2.GenerateVerifier()
			rt := as.redeem(b, as.authorize(b, verifier), verifier)["refresh_token"].(string)
			for pb.Next() {
				w := as.form(oauth.TokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {as.client}})
				var m map[string]any
				if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &m) != nil {
					b.Errorf("refresh: %d %s", w.Code, w.Body)
					return
				}
				rt = m["refresh_token"].(string)
			}
		})
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{
		"redeem/sign": {redeem, sign}, "refresh/sign": {rotate, sign}, "introspect/sign": {introspect, sign},
		"refresh-parallel/sign-parallel": {rotateParallel, signParallel}})
}

// storeClock adds up the store operations a client makes and the time they take, as the driver
// sees them (the round trip and the server's work).
type storeClock struct{ ops, ns atomic.Int64 }

func (c *storeClock) monitor() *event.CommandMonitor {
	done := func(d time.Duration) { c.ops.Add(1); c.ns.Add(d.Nanoseconds()) }
	return &event.CommandMonitor{
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { done(e.Duration) },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { done(e.Duration) },
	}
}

func (c *storeClock) reset() { c.ops.Store(0); c.ns.Store(0) }

// BenchmarkAuthorizationCodePath: the whole path a person and a client take (the login page,
// the login with its bcrypt compare, consent, the code, the token request) against one raw
// bcrypt compare at the same cost and against one store round trip (a repeat sign-in makes 14:
// 6 on the pages, 8 at the token endpoint, and up to two writes that follow from the user's
// session set). It splits the path's time in three: the compare, the
// store's operations (timed by the driver: on the embedded store FerretDB's work, on MongoDB
// the round trips to it), and the rest, mcpauth's own time ("ns-own/op").
func BenchmarkAuthorizationCodePath(b *testing.B) {
	var clock storeClock
	as := newBenchAS(b, mongotest.MonitoredDatabase(b, clock.monitor()))
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword.Reveal()), benchCost)
	if err != nil {
		b.Fatal(err)
	}
	compare := benchratio.Run(b, "raw_bcrypt", func(b *testing.B) {
		for b.Loop() {
			if err := bcrypt.CompareHashAndPassword(hash, []byte(benchPassword.Reveal())); err != nil {
				b.Fatal(err)
			}
		}
	})
	// One store round trip, the unit the path is made of: a client read by _id.
	roundTrip := benchratio.Run(b, "store_find_by_id", func(b *testing.B) {
		for b.Loop() {
			if _, err := as.store.GetClient(context.Background(), as.client); err != nil {
				b.Fatal(err)
			}
		}
	})
	inStore := &benchratio.Samples{}
	path := benchratio.Run(b, "authorize_login_consent_token", func(b *testing.B) {
		clock.reset()
		for b.Loop() {
			verifier := oauth2.GenerateVerifier()
			as.redeem(b, as.authorize(b, verifier), verifier)
		}
		b.ReportMetric(float64(clock.ops.Load())/float64(b.N), "store-ops/op")
		b.ReportMetric(float64(clock.ns.Load())/float64(b.N), "ns-in-store/op")
		*inStore = append(*inStore, float64(clock.ns.Load())/float64(b.N))
	})
	own := benchratio.Samples{}
	for i := range *path {
		own = append(own, (*path)[i]-(*inStore)[i])
	}
	benchratio.ReportDelta(b, map[string][2]*benchratio.Samples{"ns-without-bcrypt/op": {path, compare},
		"ns-own/op": {&own, compare}})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"path/store-round-trip": {path, roundTrip}})
}

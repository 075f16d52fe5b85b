package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/mongotest"
)

const (
	testIssuer   = "https://auth.example.test"
	testAudience = "https://mcp.example.test/mcp"
	// testPassword passes the policy: long, not on the common list.
	testPassword = auth.Secret("correct horse battery staple")
)

var testScopes = []string{"users:read"}

var unthrottled = auth.Limits{
	LoginPerIdentifier: throttle.Limit{Rate: 1 << 20, Period: time.Second, Burst: 1 << 20},
	LoginPerAddress:    throttle.Limit{Rate: 1 << 20, Period: time.Second, Burst: 1 << 20},
	Refresh:            throttle.Limit{Rate: 1 << 20, Period: time.Second, Burst: 1 << 20},
	APIKeyFailures:     throttle.Limit{Rate: 1 << 20, Period: time.Second, Burst: 1 << 20},
}

// testClock is the injected clock: tests move time instead of sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	// Whole seconds: JWT times have second precision, stores keep milliseconds.
	return &testClock{now: time.Now().UTC().Truncate(time.Second)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one auth deployment: a store on a fresh database, a master key, a key set, a clock and
// a Service. newService builds more services on the same parts (a restart, another audience).
type env struct {
	db     *mongo.Database
	store  *auth.MongoStore
	master []byte
	keys   *token.KeySet
	clock  *testClock
	svc    *auth.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := mongotest.Database(t)
	store, err := auth.NewMongoStore(context.Background(), db)
	if err != nil {
		t.Fatalf("new mongo store: %v", err)
	}
	indexIDs(t)
	e := &env{db: db, store: store, master: newMasterKey(t), clock: newTestClock()}
	e.keys = loadKeySet(t, e.store, e.master, token.AlgEdDSA, e.clock.Now())
	e.svc = e.newService(t, e.keys, nil)
	return e
}

func newMasterKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, token.MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func newSealer(t *testing.T, master []byte) *token.Sealer {
	t.Helper()
	s, err := token.NewSealer(master)
	if err != nil {
		t.Fatalf("new sealer: %v", err)
	}
	return s
}

func loadKeySet(t *testing.T, store token.KeyStore, master []byte, alg string, now time.Time) *token.KeySet {
	t.Helper()
	ks, err := token.LoadKeySet(context.Background(), store, newSealer(t, master), alg, now)
	if err != nil {
		t.Fatalf("load key set (%s): %v", alg, err)
	}
	return ks
}

// newService builds a Service on e's store and clock with keys; mutate, if given, edits the
// config first.
func (e *env) newService(t *testing.T, keys *token.KeySet, mutate func(*auth.Config)) *auth.Service {
	t.Helper()
	cfg := auth.Config{
		Issuer:   testIssuer,
		Audience: testAudience,
		Password: password.Config{Cost: bcrypt.MinCost},
		Now:      e.clock.Now,
		Logger:   slog.New(slog.DiscardHandler),
		Sealer:   newSealer(t, e.master),
		// Generous throttles: the throttling tests set their own.
		Limits:  unthrottled,
		Lockout: throttle.NewLocalLockout(throttle.Policy{Attempts: 1000, Window: time.Hour, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100000}, e.clock.Now),
		Scopes: func(context.Context, auth.User) ([]string, error) {
			return slices.Clone(testScopes), nil
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := auth.NewService(context.Background(), e.store, keys, cfg)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	return svc
}

// restart builds a new Service as a restarted process would: keys reloaded from the store with
// the same master key.
func (e *env) restart(t *testing.T) *auth.Service {
	t.Helper()
	return e.newService(t, loadKeySet(t, e.store, e.master, token.AlgEdDSA, e.clock.Now()), nil)
}

func (e *env) createUser(t *testing.T, email, username string) auth.User {
	t.Helper()
	u, err := e.svc.CreateUser(context.Background(), auth.NewUser{
		Email: email, Username: username, Password: testPassword, OrgID: "acme",
	})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

func (e *env) login(t *testing.T, identifier string) auth.Tokens {
	t.Helper()
	tokens, _, err := e.svc.Login(context.Background(), auth.LoginRequest{Identifier: identifier, Password: testPassword})
	if err != nil {
		t.Fatalf("login %s: %v", identifier, err)
	}
	return tokens
}

func (e *env) validate(t *testing.T, svc *auth.Service, tok string) token.Claims {
	t.Helper()
	c, err := svc.Validate(context.Background(), auth.Secret(tok))
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	return c
}

// countUsers counts the users of every organization: the users collection itself (the
// listing is per organization).
func (e *env) countUsers(t *testing.T) int64 {
	t.Helper()
	n, err := e.db.Collection("users").CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("count users: %v", err)
	}
	return n
}

func wantCode(t *testing.T, what string, err error, code apierr.Code) {
	t.Helper()
	if got := apierr.CodeOf(err); got != code {
		t.Fatalf("%s: code = %q (%v), want %s", what, got, err, code)
	}
}

func TestShouldRejectInvalidNewUsersWithoutWritingAnything(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := auth.NewUser{Email: "ada@example.com", Username: "ada", Password: testPassword}
	tests := []struct {
		name  string
		edit  func(u *auth.NewUser)
		field string
	}{
		{"an empty email", func(u *auth.NewUser) { u.Email = "" }, "email"},
		{"an email without a domain", func(u *auth.NewUser) { u.Email = "ada" }, "email"},
		{"an email with a display name", func(u *auth.NewUser) { u.Email = "Ada <ada@example.com>" }, "email"},
		{"an email with two at signs", func(u *auth.NewUser) { u.Email = "ada@lab@example.com" }, "email"},
		{"a username that is too short", func(u *auth.NewUser) { u.Username = "ab" }, "username"},
		{"a username with a space", func(u *auth.NewUser) { u.Username = "ada lovelace" }, "username"},
		{"a username with an at sign", func(u *auth.NewUser) { u.Username = "ada@home" }, "username"},
		{"an organization id with a space", func(u *auth.NewUser) { u.OrgID = "acme corp" }, "org_id"},
		{"a password of seven code points", func(u *auth.NewUser) { u.Password = "ñññññññ" }, "password"},
		{"an empty password", func(u *auth.NewUser) { u.Password = "" }, "password"},
		{"a password of 73 bytes", func(u *auth.NewUser) { u.Password = auth.Secret(strings.Repeat("Tr0ub4dor&3", 7)[:73]) }, "password"},
		{"a password of 37 two-byte code points (74 bytes)", func(u *auth.NewUser) { u.Password = auth.Secret(strings.Repeat("é", 37)) }, "password"},
		{"a password of 1 MiB", func(u *auth.NewUser) { u.Password = auth.Secret(strings.Repeat("a", 1<<20)) }, "password"},
		{"a password that is not UTF-8", func(u *auth.NewUser) { u.Password = "abcdefgh\xff\xfe" }, "password"},
		{"a common password", func(u *auth.NewUser) { u.Password = "password1" }, "password"},
		{"another common password", func(u *auth.NewUser) { u.Password = "iloveyou" }, "password"},
		{"a common password in other letter case", func(u *auth.NewUser) { u.Password = "TrustNo1" }, "password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nu := valid
			tc.edit(&nu)
			_, err := e.svc.CreateUser(context.Background(), nu)
			wantCode(t, "create", err, apierr.InvalidArgument)
			if got := apierr.From(err).Details["field"]; got != tc.field {
				t.Errorf("field = %v, want %s", got, tc.field)
			}
			if p := nu.Password.Reveal(); len(p) >= 3 && strings.Contains(err.Error(), p) {
				t.Errorf("the error echoes the password: %v", err)
			}
			if n := e.countUsers(t); n != 0 {
				t.Fatalf("a rejected user was written: %d users", n)
			}
		})
	}
}

// Not parallel: it measures time, so it runs before the parallel tests load the machine.
func TestShouldRejectAHugePasswordWithoutWorkingOnIt(t *testing.T) {
	e := newEnv(t)
	// 1 MiB of "ﬁ" ligatures: NFKC must rewrite every one, which takes ~300ms under the race
	// detector, so the bound below shows the input is rejected before it is even normalized.
	huge := auth.Secret(strings.Repeat("\ufb01", 1<<20/3))
	start := time.Now()
	_, err := e.svc.CreateUser(context.Background(), auth.NewUser{Email: "ada@example.com", Password: huge})
	wantCode(t, "create with a 1 MiB password", err, apierr.InvalidArgument)
	_, _, err = e.svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada@example.com", Password: huge})
	wantCode(t, "login with a 1 MiB password", err, apierr.InvalidArgument)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("rejecting a 1 MiB password took %v", d)
	}
}

func TestShouldAcceptPasswordsAtTheLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name     string
		password auth.Secret
		// login, if set, is another spelling of the password that must log in too.
		login auth.Secret
	}{
		{"eight code points of two bytes each", "ññññññññ", ""},
		{"eight decomposed code points, logged in with the composed form", auth.Secret(strings.Repeat("n\u0303", 8)), "ññññññññ"},
		{"64 characters", "a-64-character-passphrase-that-is-long-but-not-too-long-for-bcry", ""},
		{"exactly 72 bytes", auth.Secret(strings.Repeat("Tr0ub4dor&3", 7)[:72]), ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := len(tc.password.Reveal()); tc.name == "64 characters" && n != 64 {
				t.Fatalf("fixture is %d characters", n)
			}
			email := fmt.Sprintf("user%d@example.com", i)
			if _, err := e.svc.CreateUser(context.Background(), auth.NewUser{Email: email, Password: tc.password}); err != nil {
				t.Fatalf("create: %v", err)
			}
			for _, p := range []auth.Secret{tc.password, tc.login} {
				if p == "" {
					continue
				}
				if _, _, err := e.svc.Login(context.Background(), auth.LoginRequest{Identifier: email, Password: p}); err != nil {
					t.Errorf("login: %v", err)
				}
			}
		})
	}
}

func TestShouldReportATakenEmailOrUsernameAsConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createUser(t, "ada@example.com", "ada")
	tests := []struct {
		name     string
		email    string
		username string
	}{
		{"the same email", "ada@example.com", ""},
		{"the same email in other letter case", "ADA@Example.com", "other"},
		{"the same username in other letter case", "other@example.com", "ADA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.CreateUser(context.Background(), auth.NewUser{Email: tc.email, Username: tc.username, Password: testPassword})
			wantCode(t, "create", err, apierr.Conflict)
		})
	}
	if n := e.countUsers(t); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

func TestShouldLogInByEmailOrUsernameIgnoringCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	for _, identifier := range []string{"ada@example.com", "ADA@Example.COM", "  ada@example.com ", "ada", "AdA"} {
		t.Run(identifier, func(t *testing.T) {
			tokens, got, err := e.svc.Login(context.Background(), auth.LoginRequest{Identifier: identifier, Password: testPassword})
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if got.ID != u.ID {
				t.Errorf("logged in as %s, want %s", got.ID, u.ID)
			}
			if tokens.TokenType != "Bearer" || !strings.HasPrefix(tokens.RefreshToken, session.RefreshTokenPrefix) || tokens.SessionID == "" {
				t.Errorf("tokens = %+v", tokens)
			}
			if want := e.clock.Now().Add(auth.DefaultAccessTTL); !tokens.ExpiresAt.Equal(want) {
				t.Errorf("expires_at = %v, want %v", tokens.ExpiresAt, want)
			}
			c := e.validate(t, e.svc, tokens.AccessToken)
			if c.Subject != u.ID || c.SessionID != tokens.SessionID || c.OrgID != "acme" || !slices.Equal(c.Scopes, testScopes) {
				t.Errorf("claims = %+v", c)
			}
			caller, _, err := e.svc.Caller(context.Background(), auth.Secret(tokens.AccessToken))
			if err != nil || caller.ID != u.ID {
				t.Errorf("caller = %+v, %v", caller, err)
			}
		})
	}
	_, _, err := e.svc.Caller(context.Background(), "")
	wantCode(t, "caller without a token", err, apierr.Unauthenticated)
}

func TestShouldAnswerUnknownUsersAndWrongPasswordsAlike(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createUser(t, "ada@example.com", "ada")
	tests := []struct {
		name       string
		identifier string
		password   auth.Secret
	}{
		{"an unknown email", "nobody@example.com", testPassword},
		{"an unknown username", "nobody", testPassword},
		{"a wrong password with the email", "ada@example.com", "wrong horse battery staple"},
		{"a wrong password with the username", "ada", "wrong horse battery staple"},
	}
	var first *apierr.Error
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.svc.Login(context.Background(), auth.LoginRequest{Identifier: tc.identifier, Password: tc.password})
			wantCode(t, "login", err, apierr.InvalidCredentials)
			got := apierr.From(err)
			if first == nil {
				first = got
				return
			}
			if got.Message != first.Message || len(got.Details) != 0 {
				t.Errorf("answer %q %v differs from %q %v", got.Message, got.Details, first.Message, first.Details)
			}
		})
	}
}

func TestShouldRefuseADisabledUserOnlyAfterTheRightPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword.Reveal()), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	err = e.store.CreateUser(context.Background(), auth.User{ID: "usr_disabled", Email: "off@example.com", Username: "off",
		PasswordHash: hash, OrgID: "acme", Disabled: true, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.Login(context.Background(), auth.LoginRequest{Identifier: "off", Password: testPassword})
	wantCode(t, "right password", err, apierr.AccountDisabled)
	_, _, err = e.svc.Login(context.Background(), auth.LoginRequest{Identifier: "off", Password: "wrong horse battery staple"})
	wantCode(t, "wrong password", err, apierr.InvalidCredentials)
	sessions, err := e.store.ListUserSessions(context.Background(), "usr_disabled")
	if err != nil || len(sessions) != 0 {
		t.Errorf("a disabled user got sessions: %v, %v", sessions, err)
	}
}

func TestShouldRotateRefreshTokensAndRevokeTheFamilyOnReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	first := e.login(t, "ada")

	e.clock.Advance(time.Minute)
	second, err := e.svc.Refresh(ctx, auth.Secret(first.RefreshToken))
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("refresh did not rotate")
	}
	if second.SessionID != first.SessionID {
		t.Errorf("refresh opened session %s, want the same session %s", second.SessionID, first.SessionID)
	}
	e.validate(t, e.svc, first.AccessToken)
	e.validate(t, e.svc, second.AccessToken)

	_, err = e.svc.Refresh(ctx, auth.Secret(first.RefreshToken))
	wantCode(t, "reusing the spent refresh token", err, apierr.TokenRevoked)

	_, err = e.svc.Refresh(ctx, auth.Secret(second.RefreshToken))
	wantCode(t, "the newer refresh token after reuse", err, apierr.TokenRevoked)
	for i, access := range []string{first.AccessToken, second.AccessToken} {
		_, err = e.svc.Validate(ctx, auth.Secret(access))
		wantCode(t, fmt.Sprintf("access token %d of the revoked family", i), err, apierr.TokenRevoked)
	}
	sess, err := e.store.GetSession(ctx, first.SessionID)
	if err != nil || !sess.Revoked {
		t.Errorf("session after reuse = %+v, %v; want revoked", sess, err)
	}
}

func TestShouldRejectMalformedAndUnknownRefreshTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tok := range []string{"", "garbage", session.RefreshTokenPrefix + "short", session.RefreshTokenPrefix + strings.Repeat("A", 43)} {
		_, err := e.svc.Refresh(context.Background(), auth.Secret(tok))
		wantCode(t, fmt.Sprintf("refresh %q", tok), err, apierr.TokenInvalid)
	}
}

// TestShouldLetExactlyOneOfManyConcurrentRefreshesWin: of 50 concurrent presentations of one
// refresh token exactly one gets tokens. The others either raced the rotation (TOKEN_INVALID,
// the session lives on) or came after it completed, which is reuse (TOKEN_REVOKED, and then
// nothing of the family works).
func TestShouldLetExactlyOneOfManyConcurrentRefreshesWin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	tokens := e.login(t, "ada")

	const n = 50
	var (
		mu      sync.Mutex
		winners []auth.Tokens
		codes   = map[apierr.Code]int{}
		start   sync.WaitGroup
		done    sync.WaitGroup
	)
	start.Add(1)
	for range n {
		done.Go(func() {
			start.Wait()
			got, err := e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, got)
				return
			}
			codes[apierr.CodeOf(err)]++
		})
	}
	start.Done()
	done.Wait()

	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1 (failures: %v)", len(winners), n, codes)
	}
	if codes[apierr.TokenInvalid]+codes[apierr.TokenRevoked] != n-1 {
		t.Fatalf("failures by code = %v, want %d TOKEN_INVALID or TOKEN_REVOKED", codes, n-1)
	}
	t.Logf("failures: %v", codes)
	_, err := e.svc.Validate(ctx, auth.Secret(winners[0].AccessToken))
	if codes[apierr.TokenRevoked] > 0 {
		wantCode(t, "the winner's access token after a late presentation revoked the family", err, apierr.TokenRevoked)
	} else if err != nil {
		t.Fatalf("the winner's access token: %v", err)
	}
}

// TestShouldTellAConcurrentRotationFromReuse: a spent token whose replacement is still being
// issued is refused without ending the session; once the rotation is done, or once a rotation
// has hung for 30 seconds, presenting it again is reuse.
func TestShouldTellAConcurrentRotationFromReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	tokens := e.login(t, "ada")

	// Spend the token in the store directly: a rotation that started and has not finished.
	sum := sha256.Sum256([]byte(tokens.RefreshToken))
	if _, err := e.store.SpendRefreshToken(ctx, hex.EncodeToString(sum[:]), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken))
	wantCode(t, "presenting a token whose rotation is in flight", err, apierr.TokenInvalid)
	e.validate(t, e.svc, tokens.AccessToken) // the session lives on

	e.clock.Advance(31 * time.Second)
	_, err = e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken))
	wantCode(t, "presenting it after the rotation hung for 30s", err, apierr.TokenRevoked)
	_, err = e.svc.Validate(ctx, auth.Secret(tokens.AccessToken))
	wantCode(t, "the session's access token after reuse", err, apierr.TokenRevoked)
}

// forge returns token with its header replaced by header (JSON) and its signature by sig.
func forge(t *testing.T, token, header, sig string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + parts[1] + "." + sig
}

// header decodes a token's JOSE header.
func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("header: %v", err)
	}
	return h
}

func TestShouldRejectAccessTokensThatAreNotValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// token returns the token to validate with e.svc, after any change to e.
		tok  func(t *testing.T, e *env) string
		code apierr.Code
	}{
		{
			name: "a token one access TTL old",
			tok: func(t *testing.T, e *env) string {
				tokens := e.login(t, "ada")
				e.clock.Advance(auth.DefaultAccessTTL - time.Second)
				e.validate(t, e.svc, tokens.AccessToken) // still valid a second before
				e.clock.Advance(time.Second)
				return tokens.AccessToken
			},
			code: apierr.TokenExpired,
		},
		{"an empty string", func(*testing.T, *env) string { return "" }, apierr.TokenInvalid},
		{"garbage", func(*testing.T, *env) string { return "not-a-token" }, apierr.TokenInvalid},
		{"three garbage segments", func(*testing.T, *env) string { return "a.b.c" }, apierr.TokenInvalid},
		{"an oversized token", func(*testing.T, *env) string { return strings.Repeat("a", 1<<20) }, apierr.TokenInvalid},
		{"a refresh token", func(t *testing.T, e *env) string { return e.login(t, "ada").RefreshToken }, apierr.TokenInvalid},
		{
			name: "a token signed by another key set",
			tok: func(t *testing.T, e *env) string {
				other := newEnv(t) // another database, master key and key set; same issuer and audience
				other.createUser(t, "ada@example.com", "ada")
				return other.login(t, "ada").AccessToken
			},
			code: apierr.TokenInvalid,
		},
		{
			name: "a token for another audience signed with our keys",
			tok: func(t *testing.T, e *env) string {
				svc := e.newService(t, e.keys, func(c *auth.Config) { c.Audience = "https://other.example.test/mcp" })
				tokens, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
				if err != nil {
					t.Fatal(err)
				}
				return tokens.AccessToken
			},
			code: apierr.TokenInvalid,
		},
		{
			name: "a token from another issuer signed with our keys",
			tok: func(t *testing.T, e *env) string {
				svc := e.newService(t, e.keys, func(c *auth.Config) { c.Issuer = "https://evil.example.test" })
				tokens, _, err := svc.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
				if err != nil {
					t.Fatal(err)
				}
				return tokens.AccessToken
			},
			code: apierr.TokenInvalid,
		},
		{
			name: "a token with alg none",
			tok: func(t *testing.T, e *env) string {
				tok := e.login(t, "ada").AccessToken
				kid := header(t, tok)["kid"]
				return forge(t, tok, fmt.Sprintf(`{"alg":"none","typ":"at+jwt","kid":%q}`, kid), "")
			},
			code: apierr.TokenInvalid,
		},
		{
			name: "a token with an edited payload",
			tok: func(t *testing.T, e *env) string {
				tok := e.login(t, "ada").AccessToken
				parts := strings.Split(tok, ".")
				payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
				var claims map[string]any
				if err := json.Unmarshal(payload, &claims); err != nil {
					t.Fatal(err)
				}
				claims["scope"] = "*"
				edited, _ := json.Marshal(claims)
				return parts[0] + "." + base64.RawURLEncoding.EncodeToString(edited) + "." + parts[2]
			},
			code: apierr.TokenInvalid,
		},
		{
			name: "a token naming its own key in the header",
			tok: func(t *testing.T, e *env) string {
				tok := e.login(t, "ada").AccessToken
				h := header(t, tok)
				h["jku"] = "https://evil.example.test/jwks.json"
				raw, _ := json.Marshal(h)
				return forge(t, tok, string(raw), strings.Split(tok, ".")[2])
			},
			code: apierr.TokenInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.createUser(t, "ada@example.com", "ada")
			tok := tc.tok(t, e)
			_, err := e.svc.Validate(context.Background(), auth.Secret(tok))
			wantCode(t, "validate", err, tc.code)
		})
	}
}

func TestShouldLogOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("the current session", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.createUser(t, "ada@example.com", "ada")
		current, other := e.login(t, "ada"), e.login(t, "ada")
		caller := e.validate(t, e.svc, current.AccessToken)

		n, err := e.svc.Logout(ctx, &caller, "", false)
		if err != nil || n != 1 {
			t.Fatalf("logout = %d, %v; want 1", n, err)
		}
		_, err = e.svc.Validate(ctx, auth.Secret(current.AccessToken))
		wantCode(t, "the logged-out access token", err, apierr.TokenRevoked)
		_, err = e.svc.Refresh(ctx, auth.Secret(current.RefreshToken))
		wantCode(t, "the logged-out refresh token", err, apierr.TokenRevoked)
		e.validate(t, e.svc, other.AccessToken)

		n, err = e.svc.Logout(ctx, &caller, "", false)
		if err != nil || n != 0 {
			t.Errorf("second logout = %d, %v; want 0", n, err)
		}
	})

	t.Run("the session of a refresh token", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.createUser(t, "ada@example.com", "ada")
		target, other := e.login(t, "ada"), e.login(t, "ada")

		n, err := e.svc.Logout(ctx, nil, auth.Secret(target.RefreshToken), false)
		if err != nil || n != 1 {
			t.Fatalf("logout = %d, %v; want 1", n, err)
		}
		_, err = e.svc.Validate(ctx, auth.Secret(target.AccessToken))
		wantCode(t, "the logged-out access token", err, apierr.TokenRevoked)
		_, err = e.svc.Refresh(ctx, auth.Secret(target.RefreshToken))
		wantCode(t, "the logged-out refresh token", err, apierr.TokenRevoked)
		e.validate(t, e.svc, other.AccessToken)

		_, err = e.svc.Logout(ctx, nil, "mcpr_garbage", false)
		wantCode(t, "logout with a garbage refresh token", err, apierr.TokenInvalid)
	})

	t.Run("all sessions", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.createUser(t, "ada@example.com", "ada")
		e.createUser(t, "bob@example.com", "bob")
		mine := []auth.Tokens{e.login(t, "ada"), e.login(t, "ada"), e.login(t, "ada"), e.login(t, "ada")}
		bobs := e.login(t, "bob")
		if _, err := e.svc.Revoke(ctx, auth.Secret(mine[3].AccessToken)); err != nil {
			t.Fatal(err)
		}
		caller := e.validate(t, e.svc, mine[0].AccessToken)

		n, err := e.svc.Logout(ctx, &caller, "", true)
		if err != nil || n != 3 {
			t.Fatalf("logout of all sessions = %d, %v; want 3 (the already revoked one not counted)", n, err)
		}
		for i, tokens := range mine {
			_, err := e.svc.Validate(ctx, auth.Secret(tokens.AccessToken))
			wantCode(t, fmt.Sprintf("access token %d", i), err, apierr.TokenRevoked)
		}
		e.validate(t, e.svc, bobs.AccessToken)
	})

	t.Run("without a caller or a refresh token", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		_, err := e.svc.Logout(ctx, nil, "", false)
		wantCode(t, "logout", err, apierr.Unauthenticated)
		_, err = e.svc.Logout(ctx, nil, "", true)
		wantCode(t, "logout of all sessions", err, apierr.Unauthenticated)
	})
}

func TestShouldRevokeTheSessionOfAnAccessOrRefreshToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// token picks the token to revoke, after any change to e.
		tok func(t *testing.T, e *env, tokens auth.Tokens) string
	}{
		{"an access token", func(_ *testing.T, _ *env, tokens auth.Tokens) string { return tokens.AccessToken }},
		{"a refresh token", func(_ *testing.T, _ *env, tokens auth.Tokens) string { return tokens.RefreshToken }},
		{"an expired access token", func(_ *testing.T, e *env, tokens auth.Tokens) string {
			e.clock.Advance(auth.DefaultAccessTTL + time.Minute)
			return tokens.AccessToken
		}},
		{"a refresh token already rotated", func(t *testing.T, e *env, tokens auth.Tokens) string {
			if _, err := e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken)); err != nil {
				t.Fatalf("rotate: %v", err)
			}
			return tokens.RefreshToken
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.createUser(t, "ada@example.com", "ada")
			tokens, other := e.login(t, "ada"), e.login(t, "ada")
			tok := auth.Secret(tc.tok(t, e, tokens))

			revoked, err := e.svc.Revoke(ctx, tok)
			if err != nil || !revoked {
				t.Fatalf("revoke = %v, %v; want true", revoked, err)
			}
			_, err = e.svc.Refresh(ctx, auth.Secret(tokens.RefreshToken))
			wantCode(t, "refresh after revoke", err, apierr.TokenRevoked)
			if e.clock.Now().Before(tokens.ExpiresAt) {
				_, err = e.svc.Validate(ctx, auth.Secret(tokens.AccessToken))
				wantCode(t, "validate after revoke", err, apierr.TokenRevoked)
			}
			sess, err := e.store.GetSession(ctx, tokens.SessionID)
			if err != nil || !sess.Revoked {
				t.Errorf("session = %+v, %v; want revoked", sess, err)
			}
			if _, err := e.svc.Refresh(ctx, auth.Secret(other.RefreshToken)); err != nil {
				t.Errorf("another session was hit: %v", err)
			}

			revoked, err = e.svc.Revoke(ctx, tok)
			if err != nil || revoked {
				t.Errorf("second revoke = %v, %v; want false", revoked, err)
			}
		})
	}

	t.Run("garbage", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		for _, tok := range []string{"", "garbage", "mcpr_garbage", session.RefreshTokenPrefix + strings.Repeat("A", 43)} {
			_, err := e.svc.Revoke(ctx, auth.Secret(tok))
			wantCode(t, fmt.Sprintf("revoke %q", tok), err, apierr.TokenInvalid)
		}
	})
}

func TestShouldListOnlyActiveSessionsMarkingTheCurrentOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	e.createUser(t, "bob@example.com", "bob")
	open := func(identifier string, remember bool, client string) auth.Tokens {
		tokens, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: identifier, Password: testPassword, RememberMe: remember, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second) // distinct creation times
		return tokens
	}
	remembered := open("ada", true, "claude-desktop")
	short := open("ada", false, "inspector")
	revoked := open("ada", false, "script")
	open("bob", true, "bob's client")
	if _, err := e.svc.Revoke(ctx, auth.Secret(revoked.RefreshToken)); err != nil {
		t.Fatal(err)
	}
	caller := e.validate(t, e.svc, short.AccessToken)

	list := func() []auth.SessionInfo {
		t.Helper()
		sessions, err := e.svc.Sessions(ctx, caller)
		if err != nil {
			t.Fatalf("sessions: %v", err)
		}
		return sessions
	}
	got := list()
	if len(got) != 2 || got[0].ID != remembered.SessionID || got[1].ID != short.SessionID {
		t.Fatalf("sessions = %+v, want the remembered and the short one", got)
	}
	if got[0].Current || !got[1].Current {
		t.Errorf("current flags = %v, %v; want only the caller's session", got[0].Current, got[1].Current)
	}
	if !got[0].RememberMe || got[0].Client != "claude-desktop" || got[1].Client != "inspector" {
		t.Errorf("session details = %+v", got)
	}

	// A day later the session that was not remembered has expired; the remembered one lives on.
	e.clock.Advance(25 * time.Hour)
	got = list()
	if len(got) != 1 || got[0].ID != remembered.SessionID || got[0].Current {
		t.Errorf("sessions a day later = %+v, want only the remembered one", got)
	}
}

func TestShouldValidateTokensIssuedBeforeARestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	tokens := e.login(t, "ada")

	restarted := e.restart(t)
	c := e.validate(t, restarted, tokens.AccessToken)
	if c.SessionID != tokens.SessionID {
		t.Errorf("claims after restart = %+v", c)
	}
	rotated, err := restarted.Refresh(ctx, auth.Secret(tokens.RefreshToken))
	if err != nil {
		t.Fatalf("refresh after restart: %v", err)
	}
	e.validate(t, e.svc, rotated.AccessToken) // and the old instance accepts the new one's tokens
}

func TestShouldStillRejectRevokedSessionsAfterARestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ada@example.com", "ada")
	revoked, kept := e.login(t, "ada"), e.login(t, "ada")
	if _, err := e.svc.Revoke(ctx, auth.Secret(revoked.AccessToken)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)

	restarted := e.restart(t)
	_, err := restarted.Validate(ctx, auth.Secret(revoked.AccessToken))
	wantCode(t, "the revoked session's access token after a restart", err, apierr.TokenRevoked)
	e.validate(t, restarted, kept.AccessToken)
}

func TestShouldBootstrapTheOwnerOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		email     string
		password  auth.Secret
		wantEmail string
	}{
		{"with an email and a password", "root@example.com", testPassword, "root@example.com"},
		{"with neither: the default email and a generated password", "", "", auth.BootstrapAdminEmail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var provisioned []string
			provision := func(_ context.Context, u auth.User) error { provisioned = append(provisioned, u.ID); return nil }
			created, generated, err := e.svc.Bootstrap(ctx, tc.email, tc.password, provision)
			if err != nil || !created {
				t.Fatalf("bootstrap = %v, %v; want created", created, err)
			}
			password := tc.password
			if tc.password == "" {
				if len(generated.Reveal()) < 20 {
					t.Fatalf("generated password %d characters long", len(generated.Reveal()))
				}
				password = generated
			} else if generated != "" {
				t.Errorf("a password was generated although one was given")
			}
			_, u, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: tc.wantEmail, Password: password})
			if err != nil {
				t.Fatalf("login as the bootstrapped owner: %v", err)
			}
			if !slices.Equal(provisioned, []string{u.ID}) || u.OrgID != auth.DefaultOrgID {
				t.Errorf("owner = %+v, provisioned %v; want provisioned once in the default org", u.View(nil), provisioned)
			}

			created, generated, err = e.svc.Bootstrap(ctx, "second@example.com", "", provision)
			if err != nil || created || generated != "" {
				t.Errorf("second bootstrap = %v, %q, %v; want nothing done", created, generated.Reveal(), err)
			}
			if n := e.countUsers(t); n != 1 {
				t.Errorf("%d users after a second bootstrap, want 1", n)
			}
		})
	}

	t.Run("on a store that already has users", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.createUser(t, "ada@example.com", "ada")
		created, _, err := e.svc.Bootstrap(ctx, "", "", nil)
		if err != nil || created {
			t.Errorf("bootstrap = %v, %v; want nothing done", created, err)
		}
	})
}

func TestShouldDeleteTheUserAgainWhenProvisioningFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	failure := apierr.New(apierr.NotFound, "role not found")
	_, err := e.svc.CreateUser(ctx, auth.NewUser{Email: "ada@example.com", Username: "ada", Password: testPassword,
		Provision: func(context.Context, auth.User) error { return failure }})
	if !errors.Is(err, failure) {
		t.Fatalf("create = %v, want the provisioning error", err)
	}
	if n := e.countUsers(t); n != 0 {
		t.Fatalf("%d users after a failed provisioning, want 0", n)
	}
	e.createUser(t, "ada@example.com", "ada") // the email and username are free again
}

// awayStore is the real store whose DeleteUser fails while down is above zero (counting down):
// the store away when a creation must be undone.
type awayStore struct {
	*auth.MongoStore
	down atomic.Int32
}

func (s *awayStore) DeleteUser(ctx context.Context, id string) error {
	if s.down.Add(-1) >= 0 {
		return errors.New("store unreachable")
	}
	return s.MongoStore.DeleteUser(ctx, id)
}

// A creation that fails after the user was stored, while the store cannot take the delete
// either (the usual reason the creation failed), answers only once the user is gone again.
func TestShouldDeleteAHalfMadeUserOnceTheStoreIsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	away := &awayStore{MongoStore: e.store}
	away.down.Store(3)
	svc, err := auth.NewService(ctx, away, e.keys, auth.Config{Issuer: testIssuer, Audience: testAudience,
		Password: password.Config{Cost: bcrypt.MinCost}, Logger: slog.New(slog.DiscardHandler), Sealer: newSealer(t, e.master)})
	if err != nil {
		t.Fatal(err)
	}
	failure := apierr.Internalf("assign roles: store unreachable")
	if _, err := svc.CreateUser(ctx, auth.NewUser{Email: "ada@example.com", Password: testPassword,
		Provision: func(context.Context, auth.User) error { return failure }}); !errors.Is(err, failure) {
		t.Fatalf("create = %v, want the provisioning error", err)
	}
	if n := e.countUsers(t); n != 0 || away.down.Load() >= 0 {
		t.Fatalf("%d users after the failed creation (deletes left to fail %d), want 0: the delete is retried until the store takes it", n, away.down.Load())
	}
}

func TestShouldPageThroughUsersWithACursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 7 {
		want[e.createUser(t, fmt.Sprintf("user%d@example.com", i), "").ID] = true
	}
	seen := map[string]bool{}
	var sizes []int
	cursor := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatalf("paging does not end")
		}
		users, next, err := e.svc.ListUsers(ctx, "", "acme", 3, cursor)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		sizes = append(sizes, len(users))
		for _, u := range users {
			if seen[u.ID] {
				t.Errorf("user %s listed twice", u.ID)
			}
			seen[u.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("page sizes = %v, want [3 3 1]", sizes)
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d users, want %d", len(seen), len(want))
	}

	users, _, err := e.svc.ListUsers(ctx, "USER3", "acme", 0, "")
	if err != nil || len(users) != 1 || users[0].Email != "user3@example.com" {
		t.Errorf("filter USER3 = %v, %v", users, err)
	}
	for _, bad := range []struct {
		name   string
		limit  int
		cursor string
	}{
		{"a limit over the maximum", auth.MaxPageSize + 1, ""},
		{"a negative limit", -1, ""},
		{"a cursor that is not base64", 3, "!!!"},
		{"a cursor that is not a user id", 3, base64.RawURLEncoding.EncodeToString([]byte("ses_1"))},
	} {
		_, _, err := e.svc.ListUsers(ctx, "", "", bad.limit, bad.cursor)
		wantCode(t, bad.name, err, apierr.InvalidArgument)
	}
}

func TestShouldRedactSecretsInFormattingAndLogs(t *testing.T) {
	const raw = "hunter2-the-real-secret"
	s := auth.Secret(raw)
	type request struct {
		User     string
		Password auth.Secret
	}
	req := request{User: "ada", Password: s}

	for _, verb := range []string{"%v", "%s", "%#v", "%+v", "%q", "%x"} {
		for _, arg := range []any{s, req, &req} {
			if out := fmt.Sprintf(verb, arg); strings.Contains(out, raw) || strings.Contains(out, fmt.Sprintf("%x", raw)) {
				t.Errorf("fmt %s of %T leaks the secret: %s", verb, arg, out)
			}
		}
	}
	if out := fmt.Sprint(s); out != "[REDACTED]" {
		t.Errorf("fmt.Sprint = %q", out)
	}
	js, err := json.Marshal(req)
	if err != nil || strings.Contains(string(js), raw) {
		t.Errorf("json = %s, %v", js, err)
	}

	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("login", "password", s, slog.Any("secret", s), "request", req)
	logger.With("token", s).Info("with")
	logger.Info("group", slog.Group("g", "password", s))
	if strings.Contains(buf.String(), raw) {
		t.Errorf("slog JSON leaks the secret: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"password":"[REDACTED]"`) {
		t.Errorf("slog JSON does not show the redaction: %s", buf.String())
	}
	if s.Reveal() != raw {
		t.Errorf("Reveal = %q", s.Reveal())
	}
}

func TestShouldRequireIssuerAndAudience(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, cfg := range []auth.Config{{Audience: testAudience}, {Issuer: testIssuer}} {
		if _, err := auth.NewService(context.Background(), e.store, e.keys, cfg); err == nil {
			t.Errorf("NewService(%+v) accepted a config without issuer or audience", cfg)
		}
	}
}

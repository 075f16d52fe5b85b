package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
)

// sessionClaims are the claims of a session of u logged in now (as Validate returns them).
func (e *env) sessionClaims(t *testing.T, u auth.User) token.Claims {
	t.Helper()
	return token.Claims{Subject: u.ID, SessionID: "ses_test", OrgID: u.OrgID, AuthTime: e.clock.Now()}
}

// withLockout is newEnv with a service under a real lockout policy.
func withLockout(t *testing.T, p throttle.Policy) *env {
	t.Helper()
	e := newEnv(t)
	e.svc = e.newService(t, e.keys, func(c *auth.Config) { c.Lockout = throttle.NewLocalLockout(p, e.clock.Now) })
	return e
}

func TestShouldCountWrongSecondFactorsAsFailedLogins(t *testing.T) {
	t.Parallel()
	e := withLockout(t, throttle.Policy{Attempts: 5, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100})
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	secret, _ := e.enableMFA(t, u)
	for i := range 5 {
		wantCode(t, "wrong code "+string(rune('1'+i)), e.svc.VerifyMFA(ctx, u, "000000"), apierr.InvalidMFACode)
	}
	// The sixth attempt is refused whatever it carries: the account is locked.
	wantCode(t, "the right code while locked", e.svc.VerifyMFA(ctx, u, e.totpCode(t, secret, e.clock.Now())), apierr.AccountLocked)
	// And so is the password at login, exactly like a wrong one.
	_, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: u.Email, Password: testPassword, MFACode: e.totpCode(t, secret, e.clock.Now())})
	wantCode(t, "login while locked", err, apierr.InvalidCredentials)
	e.clock.Advance(61 * time.Second) // the first lock lasts a minute
	if err := e.svc.VerifyMFA(ctx, u, e.totpCode(t, secret, e.clock.Now())); err != nil {
		t.Fatalf("the right code once the lock ran out: %v", err)
	}
}

func TestShouldAskForAFreshProofBeforeACredentialChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	fresh := e.sessionClaims(t, u)
	step := func(c token.Claims, p auth.Proof) error { return e.svc.StepUp(ctx, u, c, p, "apikey_create", false) }

	if err := step(fresh, auth.Proof{}); err != nil {
		t.Fatalf("a token of a login just made: %v", err)
	}
	e.clock.Advance(auth.DefaultStepUpMaxAge + time.Second)
	err := step(fresh, auth.Proof{})
	wantCode(t, "a token of an older login", err, apierr.PermissionDenied)
	if apierr.From(err).Details["step_up_required"] != true {
		t.Errorf("the refusal does not say a step-up is required: %v", apierr.From(err).Details)
	}
	wantCode(t, "a wrong password", step(fresh, auth.Proof{Password: "not the password"}), apierr.InvalidCredentials)
	if err := step(fresh, auth.Proof{Password: testPassword}); err != nil {
		t.Fatalf("the password: %v", err)
	}
	key := token.Claims{Subject: u.ID, APIKeyID: "key_1", Scopes: []string{"*"}}
	wantCode(t, "an API key, without the password", step(key, auth.Proof{}), apierr.PermissionDenied)
	someoneElse := fresh
	someoneElse.Subject = "usr_other"
	wantCode(t, "another user's token", step(someoneElse, auth.Proof{Password: testPassword}), apierr.PermissionDenied)
	noSession := token.Claims{Subject: u.ID, AuthTime: e.clock.Now()}
	wantCode(t, "a token without a session", step(noSession, auth.Proof{}), apierr.PermissionDenied)

	secret, _ := e.enableMFA(t, u)
	wantCode(t, "the password alone with MFA on", step(fresh, auth.Proof{Password: testPassword}), apierr.MFARequired)
	wantCode(t, "a wrong code", step(fresh, auth.Proof{Password: testPassword, MFACode: "000000"}), apierr.InvalidMFACode)
	if err := step(fresh, auth.Proof{Password: testPassword, MFACode: e.totpCode(t, secret, e.clock.Now())}); err != nil {
		t.Fatalf("password and code: %v", err)
	}
	if err := e.svc.StepUp(ctx, u, e.sessionClaims(t, u), auth.Proof{}, "mfa_disable", true); apierr.CodeOf(err) != apierr.InvalidArgument {
		t.Fatalf("a fresh token where the password is required: %v, want INVALID_ARGUMENT", err)
	}
}

func TestShouldNeverCountATokenAsFreshWhenStepUpAgeIsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc = e.newService(t, e.keys, func(c *auth.Config) { c.StepUpMaxAge = -1 })
	u := e.createUser(t, "ada@example.com", "ada")
	err := e.svc.StepUp(context.Background(), u, e.sessionClaims(t, u), auth.Proof{}, "mfa_enroll", false)
	wantCode(t, "a token of a login just made", err, apierr.PermissionDenied)
}

func TestShouldCarryTheLoginTimeThroughRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	loggedIn := e.clock.Now()
	tokens := e.login(t, u.Email)
	e.clock.Advance(10 * time.Minute)
	refreshed, err := e.svc.Refresh(context.Background(), auth.Secret(tokens.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	c := e.validate(t, e.svc, refreshed.AccessToken)
	if !c.AuthTime.Equal(loggedIn) || !c.IssuedAt.After(loggedIn) {
		t.Fatalf("refreshed token: auth_time %v, iat %v; want auth_time %v (the login), iat later", c.AuthTime, c.IssuedAt, loggedIn)
	}
}

func TestShouldHonourAnUnlockMadeOutOfProcess(t *testing.T) {
	t.Parallel()
	e := withLockout(t, throttle.Policy{Attempts: 100, Window: time.Hour, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 3})
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	for range 3 {
		_, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: u.Email, Password: "not the password"})
		wantCode(t, "wrong password", err, apierr.InvalidCredentials)
	}
	_, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: u.Email, Password: testPassword})
	wantCode(t, "the right password once permanently locked", err, apierr.InvalidCredentials)

	// The CLI is another process: its service has a lockout of its own, on the same store.
	cli := e.newService(t, e.keys, nil)
	e.clock.Advance(time.Second)
	if err := cli.ReleaseLock(ctx, u.ID, "cli"); err != nil {
		t.Fatal(err)
	}
	e.login(t, u.Email)
}

// unreachableUsers is a store whose user look-ups fail, as during a MongoDB outage.
type unreachableUsers struct{ auth.Store }

func (unreachableUsers) GetUserByEmail(context.Context, string) (auth.User, error) {
	return auth.User{}, errors.New("server selection timeout")
}

func TestShouldNameTheIdentifierOfALoginThatFailedOnASystemError(t *testing.T) {
	t.Parallel()
	e, rec := adminEnv(t, nil)
	svc, err := auth.NewService(context.Background(), unreachableUsers{e.store}, e.keys, auth.Config{
		Issuer: testIssuer, Audience: testAudience, Password: password.Config{Cost: bcrypt.MinCost}, Now: e.clock.Now,
		Logger: slog.New(slog.DiscardHandler), Audit: rec, Limits: unthrottled})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Login(context.Background(), auth.LoginRequest{Identifier: " Ada@Example.COM", Password: testPassword})
	wantCode(t, "login during an outage", err, apierr.Internal)
	failed, _ := rec.of(audit.AuthFailed, "")
	if len(failed) != 1 || failed[0].Details["reason"] != audit.ReasonSystemError || failed[0].Details["identifier"] != "ada@example.com" {
		t.Fatalf("AUTH_FAILED events = %+v, want one SYSTEM_ERROR naming the normalized identifier", failed)
	}
}

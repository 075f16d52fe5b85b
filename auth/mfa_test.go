package auth_test

import (
	"bytes"
	"context"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
)

func (e *env) totpCode(t *testing.T, secret auth.Secret, at time.Time) auth.Secret {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret.Reveal(), at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return auth.Secret(code)
}

// enable enrolls and confirms MFA for u, returning the secret and the recovery codes.
func (e *env) enableMFA(t *testing.T, u auth.User) (auth.Secret, []auth.Secret) {
	t.Helper()
	ctx := context.Background()
	en, err := e.svc.EnrollMFA(ctx, u)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	codes, err := e.svc.ConfirmMFA(ctx, u, e.totpCode(t, en.Secret, e.clock.Now()))
	if err != nil {
		t.Fatalf("confirm: %v", err)
	}
	e.clock.Advance(30 * time.Second) // the confirming code's step is spent
	return en.Secret, codes
}

func (e *env) loginWith(u auth.User, code auth.Secret) error {
	_, _, err := e.svc.Login(context.Background(), auth.LoginRequest{Identifier: u.Email, Password: testPassword, MFACode: code})
	return err
}

func TestShouldEnrollTOTPWithAQRCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	en, err := e.svc.EnrollMFA(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	link, err := url.Parse(en.OTPAuthURL.Reveal())
	if err != nil || link.Scheme != "otpauth" || link.Host != "totp" || link.Query().Get("secret") != en.Secret.Reveal() ||
		!strings.Contains(link.Path, "ada@example.com") {
		t.Fatalf("otpauth URL = %s", en.OTPAuthURL.Reveal())
	}
	img, err := png.Decode(bytes.NewReader(en.QRCodePNG))
	if err != nil || img.Bounds().Dx() != 256 {
		t.Fatalf("QR code is not a 256 px PNG: %v", err)
	}
	// Pending: login does not ask for a code until the enrollment is confirmed.
	if err := e.loginWith(u, ""); err != nil {
		t.Fatalf("login with a pending enrollment: %v", err)
	}
	_, err = e.svc.ConfirmMFA(context.Background(), u, "000000")
	wantCode(t, "confirming with a wrong code", err, apierr.InvalidMFACode)
}

func TestShouldRequireTheSecondFactorOnceEnabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	secret, recovery := e.enableMFA(t, u)
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(recovery))
	}

	wantCode(t, "login without a code", e.loginWith(u, ""), apierr.MFARequired)
	wantCode(t, "login with a wrong code", e.loginWith(u, "123456"), apierr.InvalidMFACode)
	code := e.totpCode(t, secret, e.clock.Now())
	if err := e.loginWith(u, code); err != nil {
		t.Fatalf("login with a valid code: %v", err)
	}
	wantCode(t, "the same code again (replay)", e.loginWith(u, code), apierr.InvalidMFACode)
	earlier := e.totpCode(t, secret, e.clock.Now().Add(-30*time.Second))
	wantCode(t, "a code of an earlier step after a later one was used", e.loginWith(u, earlier), apierr.InvalidMFACode)

	e.clock.Advance(30 * time.Second)
	if err := e.loginWith(u, e.totpCode(t, secret, e.clock.Now().Add(-30*time.Second))); err == nil {
		t.Fatal("the previous step's code was accepted after it had been used")
	}
	if err := e.loginWith(u, e.totpCode(t, secret, e.clock.Now())); err != nil {
		t.Fatalf("the next step's code: %v", err)
	}

	if err := e.loginWith(u, recovery[0]); err != nil {
		t.Fatalf("login with a recovery code: %v", err)
	}
	wantCode(t, "the same recovery code again", e.loginWith(u, recovery[0]), apierr.InvalidMFACode)
	upper := auth.Secret(strings.ToUpper(strings.ReplaceAll(recovery[1].Reveal(), "-", " ")))
	if err := e.loginWith(u, upper); err != nil {
		t.Fatalf("a recovery code typed in capitals with a space: %v", err)
	}
	// The wrong password is still the wrong password, code or not.
	_, _, err := e.svc.Login(context.Background(), auth.LoginRequest{Identifier: u.Email, Password: "not the password", MFACode: recovery[2]})
	wantCode(t, "wrong password with a valid recovery code", err, apierr.InvalidCredentials)
}

func TestShouldDisableMFAOnlyWithThePasswordAndAValidCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ada@example.com", "ada")
	secret, _ := e.enableMFA(t, u)
	claims := e.sessionClaims(t, u)
	_, err := e.svc.EnrollMFA(ctx, u)
	wantCode(t, "enrolling again while enabled", err, apierr.Conflict)
	code := e.totpCode(t, secret, e.clock.Now())
	wantCode(t, "disabling without the password", e.svc.DisableMFA(ctx, u, claims, "", code), apierr.InvalidArgument)
	wantCode(t, "disabling with a wrong password", e.svc.DisableMFA(ctx, u, claims, "not the password", code), apierr.InvalidCredentials)
	wantCode(t, "disabling with a wrong code", e.svc.DisableMFA(ctx, u, claims, testPassword, "999999"), apierr.InvalidMFACode)
	wantCode(t, "login still needs the code", e.loginWith(u, ""), apierr.MFARequired)
	if err := e.svc.VerifyMFA(ctx, u, code); err != nil {
		t.Fatalf("step-up verify: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	if err := e.svc.DisableMFA(ctx, u, claims, testPassword, e.totpCode(t, secret, e.clock.Now())); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if err := e.loginWith(u, ""); err != nil {
		t.Fatalf("login after disabling: %v", err)
	}
	wantCode(t, "verify without MFA", e.svc.VerifyMFA(ctx, u, "123456"), apierr.Conflict)
}

func TestShouldSealTheTOTPSecretAtRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	en, err := e.svc.EnrollMFA(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.store.GetMFA(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(m.SecretSealed, []byte(en.Secret.Reveal())) {
		t.Fatal("the stored TOTP secret is readable")
	}
}

// A code is accepted once, even when it races itself: of concurrent logins presenting one valid
// code, exactly one gets in (the step is claimed by a unique insert); a code of the wrong length
// is refused before any compare.
func TestShouldAcceptATOTPCodeOnceEvenUnderConcurrentReplays(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser(t, "ada@example.com", "ada")
	secret, _ := e.enableMFA(t, u)
	code := e.totpCode(t, secret, e.clock.Now())
	const replays = 4
	errs := make(chan error, replays)
	for range replays {
		go func() { errs <- e.loginWith(u, code) }()
	}
	in := 0
	for range replays {
		if err := <-errs; err == nil {
			in++
		} else if c := apierr.CodeOf(err); c != apierr.InvalidMFACode && c != apierr.InvalidCredentials && c != apierr.RateLimited {
			t.Errorf("a replay failed with %v, want a refusal", err)
		}
	}
	if in != 1 {
		t.Fatalf("%d of %d concurrent logins with one code got in, want exactly 1", in, replays)
	}
	e.clock.Advance(30 * time.Second)
	code = e.totpCode(t, secret, e.clock.Now())
	for _, bad := range []auth.Secret{code[:5], code + "0", "      "} {
		wantCode(t, "a code of the wrong length", e.loginWith(u, bad), apierr.InvalidMFACode)
	}
}

package auth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/random"
)

// MFA is a user's second factor: a TOTP secret (sealed with the master key) and the hashes of
// their recovery codes. Pending until confirmed with a first valid code.
type MFA struct {
	UserID         string    `bson:"_id"`
	SecretSealed   []byte    `bson:"secret_sealed"`
	Enabled        bool      `bson:"enabled"`
	RecoveryHashes []string  `bson:"recovery_hashes"`
	CreatedAt      time.Time `bson:"created_at"`
	EnabledAt      time.Time `bson:"enabled_at,omitempty"`
}

// MFAStore persists second factors. Replay protection and single use are claim inserts with a
// unique _id (FerretDB v1 updates are not atomic).
type MFAStore interface {
	GetMFA(ctx context.Context, userID string) (MFA, error) // ErrNotFound
	PutMFA(ctx context.Context, m MFA) error                // create or replace
	DeleteMFA(ctx context.Context, userID string) error
	// ClaimTOTPStep records that a code of this time step was accepted; ErrAlreadyExists if
	// it was before (a replay).
	ClaimTOTPStep(ctx context.Context, userID string, step int64, at time.Time) error
	// LastTOTPStep is the highest step claimed (0 if none).
	LastTOTPStep(ctx context.Context, userID string) (int64, error)
	// SpendRecoveryCode records a recovery code's use; ErrAlreadyExists if it was used before.
	SpendRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error
}

// TOTP parameters: RFC 6238 defaults every authenticator app supports.
const (
	totpPeriod        = 30
	totpSkew          = 1 // one step either side: ±30 s of clock drift
	recoveryCodeCount = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// MFA errors.
var (
	ErrMFARequired     = apierr.New(apierr.MFARequired, "this account needs a second factor: pass mfa_code (a TOTP code or a recovery code)")
	ErrInvalidMFACode  = apierr.New(apierr.InvalidMFACode, "the MFA code is not valid")
	ErrMFANotEnabled   = apierr.New(apierr.Conflict, "MFA is not enabled for this account")
	ErrMFAAlreadyOn    = apierr.New(apierr.Conflict, "MFA is already enabled; disable it before enrolling again")
	ErrMFANotPending   = apierr.New(apierr.Conflict, "no pending MFA enrollment: call mfa_enroll first")
	errMFAUnconfigured = apierr.New(apierr.Internal, "MFA is not configured on this server")
)

// Enrollment is a new, pending TOTP secret: shown once so the user can add it to an app.
type Enrollment struct {
	Secret     Secret
	OTPAuthURL Secret // contains the secret
	QRCodePNG  []byte
}

// EnrollMFA creates (or replaces) a pending TOTP secret for u.
func (s *Service) EnrollMFA(ctx context.Context, u User) (Enrollment, error) {
	if s.cfg.Sealer == nil {
		return Enrollment{}, errMFAUnconfigured
	}
	if m, err := s.store.GetMFA(ctx, u.ID); err == nil && m.Enabled {
		return Enrollment{}, ErrMFAAlreadyOn
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return Enrollment{}, apierr.Internalf("get mfa: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.MFAIssuer, AccountName: u.Email, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Enrollment{}, apierr.Internalf("generate totp key: %w", err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return Enrollment{}, apierr.Internalf("qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, apierr.Internalf("qr code: %w", err)
	}
	m := MFA{UserID: u.ID, SecretSealed: s.cfg.Sealer.Seal("mfa:"+u.ID, []byte(key.Secret())), CreatedAt: s.cfg.Now()}
	if err := s.store.PutMFA(ctx, m); err != nil {
		return Enrollment{}, apierr.Internalf("store mfa: %w", err)
	}
	return Enrollment{Secret: Secret(key.Secret()), OTPAuthURL: Secret(key.URL()), QRCodePNG: buf.Bytes()}, nil
}

// ConfirmMFA enables a pending enrollment with a first valid code and returns the recovery
// codes, shown only here.
func (s *Service) ConfirmMFA(ctx context.Context, u User, code Secret) ([]Secret, error) {
	m, err := s.getMFA(ctx, u.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrMFANotPending
	}
	if err != nil {
		return nil, err
	}
	if m.Enabled {
		return nil, ErrMFAAlreadyOn
	}
	if err := s.checkTOTP(ctx, m, code); err != nil {
		return nil, err
	}
	codes := make([]Secret, recoveryCodeCount)
	m.RecoveryHashes = make([]string, recoveryCodeCount)
	for i := range codes {
		c := random.String(10) // 80 bits, 16 characters
		codes[i] = Secret(c[:8] + "-" + c[8:])
		m.RecoveryHashes[i] = hashSecret(normalizeRecoveryCode(codes[i].Reveal()))
	}
	m.Enabled, m.EnabledAt = true, s.cfg.Now()
	if err := s.store.PutMFA(ctx, m); err != nil {
		return nil, apierr.Internalf("enable mfa: %w", err)
	}
	s.log.InfoContext(ctx, "mfa enabled", "user_id", u.ID)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.MFAEnabled, Subject: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"method": "totp"}}); err != nil {
		return nil, apierr.Internalf("audit mfa enable: %w", err)
	}
	return codes, nil
}

// VerifyMFA checks a code (TOTP or recovery) for an enabled second factor: a step-up. Guessing
// is a failed login: each check is reserved with the lockout, a wrong code is counted and
// audited (AUTH_FAILED, INVALID_MFA), and a locked account is refused (ACCOUNT_LOCKED) even
// with the right code.
func (s *Service) VerifyMFA(ctx context.Context, u User, code Secret) error {
	m, err := s.enabledMFA(ctx, u.ID)
	if err != nil {
		return err
	}
	if err := s.beginCheck(ctx, u, "mfa_verify"); err != nil {
		return err
	}
	if err := s.secondFactor(ctx, u, m, code, "mfa_verify"); err != nil {
		return err
	}
	return s.succeeded(ctx, u.ID)
}

// enabledMFA is u's second factor, CONFLICT if it has none enabled.
func (s *Service) enabledMFA(ctx context.Context, userID string) (MFA, error) {
	m, err := s.getMFA(ctx, userID)
	if errors.Is(err, ErrNotFound) || (err == nil && !m.Enabled) {
		return MFA{}, ErrMFANotEnabled
	}
	return m, err
}

// DisableMFA turns the second factor off. It takes the whole proof of the user, whatever the
// session's age: the current password and a valid code or recovery code (StepUp).
func (s *Service) DisableMFA(ctx context.Context, u User, c token.Claims, password, code Secret) error {
	if _, err := s.enabledMFA(ctx, u.ID); err != nil {
		return err
	}
	if code.Reveal() == "" {
		return apierr.Field("code", "is required")
	}
	if err := s.StepUp(ctx, u, c, Proof{Password: password, MFACode: code}, "mfa_disable", true); err != nil {
		return err
	}
	if err := s.store.DeleteMFA(ctx, u.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return apierr.Internalf("disable mfa: %w", err)
	}
	s.log.InfoContext(ctx, "mfa disabled", "user_id", u.ID)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.MFADisabled, Severity: audit.Warning, Subject: u.ID, OrgID: u.OrgID}); err != nil {
		return apierr.Internalf("audit mfa disable: %w", err)
	}
	return nil
}

// mfaEnabled reports whether u must give a second factor at login.
func (s *Service) mfaEnabled(ctx context.Context, userID string) (MFA, bool, error) {
	m, err := s.store.GetMFA(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return MFA{}, false, nil
	}
	if err != nil {
		return MFA{}, false, apierr.Internalf("get mfa: %w", err)
	}
	return m, m.Enabled, nil
}

func (s *Service) getMFA(ctx context.Context, userID string) (MFA, error) {
	if s.cfg.Sealer == nil {
		return MFA{}, errMFAUnconfigured
	}
	m, err := s.store.GetMFA(ctx, userID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return MFA{}, apierr.Internalf("get mfa: %w", err)
	}
	return m, err
}

// checkSecondFactor accepts a TOTP code (six digits) or an unused recovery code.
func (s *Service) checkSecondFactor(ctx context.Context, m MFA, code Secret) error {
	c := strings.TrimSpace(code.Reveal())
	if len(c) == 6 && strings.Trim(c, "0123456789") == "" {
		return s.checkTOTP(ctx, m, Secret(c))
	}
	return s.checkRecoveryCode(ctx, m, c)
}

// checkTOTP accepts a code of the current step or one step either side, at most once, and never
// one of a step at or before the last accepted one.
func (s *Service) checkTOTP(ctx context.Context, m MFA, code Secret) error {
	if s.cfg.Sealer == nil {
		return errMFAUnconfigured
	}
	c := strings.TrimSpace(code.Reveal())
	if len(c) != 6 {
		return ErrInvalidMFACode
	}
	secret, err := s.cfg.Sealer.Open("mfa:"+m.UserID, m.SecretSealed)
	if err != nil {
		return apierr.Internalf("open totp secret: %w", err)
	}
	now := s.cfg.Now()
	step := int64(-1)
	for d := -totpSkew; d <= totpSkew; d++ {
		at := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(string(secret), at, totpOpts)
		if err != nil {
			return apierr.Internalf("totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(c)) == 1 {
			step = at.Unix() / totpPeriod
		}
	}
	if step < 0 {
		return ErrInvalidMFACode
	}
	last, err := s.store.LastTOTPStep(ctx, m.UserID)
	if err != nil {
		return apierr.Internalf("last totp step: %w", err)
	}
	if step <= last {
		return ErrInvalidMFACode.With("reason", "code already used")
	}
	if err := s.store.ClaimTOTPStep(ctx, m.UserID, step, now); err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			return ErrInvalidMFACode.With("reason", "code already used")
		}
		return apierr.Internalf("claim totp step: %w", err)
	}
	return nil
}

func normalizeRecoveryCode(c string) string {
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(c)))
}

func (s *Service) checkRecoveryCode(ctx context.Context, m MFA, code string) error {
	if len(code) > 64 {
		return ErrInvalidMFACode
	}
	h := hashSecret(normalizeRecoveryCode(code))
	found := false
	for _, rh := range m.RecoveryHashes {
		if subtle.ConstantTimeCompare([]byte(rh), []byte(h)) == 1 {
			found = true
		}
	}
	if !found {
		return ErrInvalidMFACode
	}
	if err := s.store.SpendRecoveryCode(ctx, m.UserID, h, s.cfg.Now()); err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			return ErrInvalidMFACode.With("reason", "recovery code already used")
		}
		return apierr.Internalf("spend recovery code: %w", err)
	}
	s.log.InfoContext(ctx, "recovery code used", "user_id", m.UserID)
	return nil
}

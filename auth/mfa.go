package auth

import (
	"context"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/token"
)

// Enrollment is a new, pending TOTP secret: shown once so the user can add it to an app.
type Enrollment struct {
	Secret     Secret
	OTPAuthURL Secret // contains the secret
	QRCodePNG  []byte
}

// EnrollMFA creates (or replaces) a pending TOTP secret for u.
func (s *Service) EnrollMFA(ctx context.Context, u User) (Enrollment, error) {
	e, err := s.factors.Enroll(ctx, u.ID, u.Email)
	if err != nil {
		return Enrollment{}, err
	}
	return Enrollment{Secret: Secret(e.Secret), OTPAuthURL: Secret(e.OTPAuthURL), QRCodePNG: e.QRCodePNG}, nil
}

// ConfirmMFA enables a pending enrollment with a first valid code and returns the recovery
// codes, shown only here.
func (s *Service) ConfirmMFA(ctx context.Context, u User, code Secret) ([]Secret, error) {
	codes, err := s.factors.Confirm(ctx, u.ID, code.Reveal())
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "mfa enabled", "user_id", u.ID)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.MFAEnabled, Subject: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"method": "totp"}}); err != nil {
		return nil, apierr.Internalf("audit mfa enable: %w", err)
	}
	secrets := make([]Secret, len(codes))
	for i, c := range codes {
		secrets[i] = Secret(c)
	}
	return secrets, nil
}

// VerifyMFA checks a code (TOTP or recovery) for an enabled second factor: a step-up. Guessing
// is a failed login: each check is reserved with the lockout, a wrong code is counted and
// audited (AUTH_FAILED, INVALID_MFA), and a locked account is refused (ACCOUNT_LOCKED) even
// with the right code.
func (s *Service) VerifyMFA(ctx context.Context, u User, code Secret) error {
	m, err := s.factors.EnabledFactor(ctx, u.ID)
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

// DisableMFA turns the second factor off. It takes the whole proof of the user, whatever the
// session's age: the current password and a valid code or recovery code (StepUp).
func (s *Service) DisableMFA(ctx context.Context, u User, c token.Claims, password, code Secret) error {
	if _, err := s.factors.EnabledFactor(ctx, u.ID); err != nil {
		return err
	}
	if code.Reveal() == "" {
		return apierr.Field("code", "is required")
	}
	if err := s.StepUp(ctx, u, c, Proof{Password: password, MFACode: code}, "mfa_disable", true); err != nil {
		return err
	}
	if err := s.factors.Remove(ctx, u.ID); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "mfa disabled", "user_id", u.ID)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.MFADisabled, Severity: audit.Warning, Subject: u.ID, OrgID: u.OrgID}); err != nil {
		return apierr.Internalf("audit mfa disable: %w", err)
	}
	return nil
}

// secondFactor checks a TOTP or recovery code of an enabled factor, with a reservation open; a
// wrong code is audited and counted.
func (s *Service) secondFactor(ctx context.Context, u User, m mfa.Factor, code Secret, during string) error {
	method, err := s.factors.Check(ctx, m, code.Reveal())
	switch {
	case apierr.CodeOf(err) == apierr.InvalidMFACode:
		s.record(ctx, authFailed(u, audit.ReasonInvalidMFA, during, nil))
		return s.failed(ctx, u.ID, err)
	case err == nil && method == mfa.RecoveryCode:
		s.log.InfoContext(ctx, "recovery code used", "user_id", u.ID)
	}
	return err
}

package auth

// Checks of what a user knows (the password) and has (the second factor), in the one sequence
// every path shares: a login, a password change, a step-up for a credential change, an MFA
// verification. Each check is reserved with the lockout first (per account and client address:
// a guesser elsewhere does not lock the owner out of their usual address; the account's
// consecutive failures still lead to the permanent lock), each failure is counted and audited,
// and only a whole proof (the password and, when MFA is on, the second factor) clears the count.

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
)

// DefaultStepUpMaxAge is how long after a login its session's tokens count as a fresh proof of
// the user for credential changes (Config.StepUpMaxAge).
const DefaultStepUpMaxAge = 5 * time.Minute

// DefaultAPIKeyTTL is the lifetime of an API key created without an expiry (Config.APIKeyTTL).
const DefaultAPIKeyTTL = 90 * 24 * time.Hour

// ErrStepUpRequired answers a credential change made with neither a recent login nor a proof.
var ErrStepUpRequired = apierr.New(apierr.PermissionDenied,
	"this changes how you sign in: pass your current password (and mfa_code if MFA is on), or log in again and retry within a few minutes").
	With("step_up_required", true)

// errLocked is the answer of a refused check outside login (login answers a locked account
// exactly like a wrong password: no lockout oracle for strangers).
func errLocked(a throttle.Attempt) error {
	if a.Permanent {
		return apierr.New(apierr.AccountLocked, "too many failed attempts: the account is locked until an administrator unlocks it").
			With("permanent", true)
	}
	return apierr.New(apierr.AccountLocked, "too many failed attempts: the account is locked for now").
		With("retry_after_seconds", max(int(math.Ceil(a.LockedFor.Seconds())), 1))
}

// hashWorker takes a bcrypt worker (see hashPool); a flood is answered RATE_LIMITED, recorded
// with identifier (what was typed; "" for an authenticated caller).
func (s *Service) hashWorker(ctx context.Context, identifier string) (release func(), err error) {
	acquired, err := s.passwords.Acquire(ctx)
	if err != nil {
		if errors.Is(err, password.ErrBusy) {
			rateLimitHits.Add(ctx, 1, metric.WithAttributes(attribute.String("limit", "password_hashing")))
			details := map[string]any{"limit": "password_hashing"}
			if identifier != "" {
				details["identifier"] = identifier
			}
			s.record(ctx, audit.Event{Type: audit.AuthRateLimited, Severity: audit.Warning, Details: details})
		}
		return nil, hashingError(err)
	}
	return sync.OnceFunc(acquired), nil
}

// hashingError is the answer when no password worker could be had: RATE_LIMITED under a
// flood, INTERNAL when the request ended while it waited.
func hashingError(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return RateLimited(time.Second).With("reason", "too many logins in progress")
	}
	return apierr.New(apierr.Internal, "request ended while waiting to check the password").Wrap(err)
}

// hash bcrypts a new password on a worker of the pool.
func (s *Service) hash(ctx context.Context, p Secret) ([]byte, error) {
	h, err := s.passwords.Hash(ctx, p.Reveal())
	switch {
	case errors.Is(err, password.ErrBusy) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil, hashingError(err)
	case err != nil:
		return nil, apierr.Internalf("%w", err)
	}
	return h, nil
}

// beginCheck reserves a check of u's credentials from the caller's address. A lock is ACCOUNT_LOCKED
// (recorded), unless it is the permanent lock and the operator released it out of process after
// it engaged (`mcpauth user unlock`): then the lock is lifted here and the check goes ahead.
// Only the permanent lock is looked up (a store read, made while the caller holds a hashing
// worker): a soft lock ends by itself within the longest backoff, and with Redis the CLI lifts
// every lock at once.
func (s *Service) beginCheck(ctx context.Context, u User, during string) error {
	src := limitAddr(ctx)
	a, err := s.cfg.Lockout.Begin(ctx, u.ID, src)
	if err != nil {
		return limiterDown(s.cfg.Lockout.Name(), err)
	}
	if !a.Allowed && a.Permanent && s.releasedSince(ctx, u.ID, a.Since) {
		if err := s.cfg.Lockout.Unlock(ctx, u.ID); err != nil {
			return limiterDown(s.cfg.Lockout.Name(), err)
		}
		s.log.InfoContext(ctx, "lock released out of process: lifted", "user_id", u.ID)
		if a, err = s.cfg.Lockout.Begin(ctx, u.ID, src); err != nil {
			return limiterDown(s.cfg.Lockout.Name(), err)
		}
	}
	if a.Allowed {
		return nil
	}
	lockouts.Add(ctx, 1)
	msg := "login refused: account locked"
	if during != "" {
		msg = during + " refused: account locked"
	}
	s.log.WarnContext(ctx, msg, "user_id", u.ID, "permanent", a.Permanent)
	details := map[string]any{"permanent": a.Permanent, "locked_for_seconds": int(a.LockedFor.Seconds())}
	if during != "" {
		details["during"] = during
	}
	s.record(ctx, audit.Event{Type: audit.AccountLocked, Severity: audit.Warning, Subject: u.ID, OrgID: u.OrgID, Details: details})
	return errLocked(a)
}

// releasedSince reports whether userID was released out of process at or after the lock that
// engaged at since. A store error keeps the lock (fail closed).
func (s *Service) releasedSince(ctx context.Context, userID string, since time.Time) bool {
	if since.IsZero() {
		return false
	}
	at, err := s.store.LockReleasedAt(ctx, userID)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "could not read lock releases; the lock stays", "user_id", userID, "error", err)
		}
		return false
	}
	return !at.Before(since)
}

// checkPassword is the one password check. The caller holds a hashing worker (release frees
// it, once the compare is done). A locked account costs the same compare (against the dummy
// hash) and answers ACCOUNT_LOCKED; a wrong password is audited, counted and answers
// INVALID_CREDENTIALS. When the password matches, the reservation stays open: the caller ends
// it with succeeded (after any second factor) or failed.
func (s *Service) checkPassword(ctx context.Context, u User, pw Secret, during string, release func()) error {
	if err := s.beginCheck(ctx, u, during); err != nil {
		if apierr.CodeOf(err) == apierr.AccountLocked {
			s.passwords.CompareDummy(pw.Reveal())
		}
		return err
	}
	if len(u.PasswordHash) == 0 { // an account of single sign-on: no password matches, in the time one takes
		s.passwords.CompareDummy(pw.Reveal())
		release()
		s.record(ctx, authFailed(u, audit.ReasonInvalidPassword, during, nil))
		return s.failed(ctx, u.ID, ErrInvalidCredentials)
	}
	ok, err := password.Matches(u.PasswordHash, pw.Reveal())
	release() // the rest is cheap: free the worker for the next check
	if err != nil {
		return apierr.Internalf("user %s: %w", u.ID, err)
	}
	if !ok {
		s.record(ctx, authFailed(u, audit.ReasonInvalidPassword, during, nil))
		return s.failed(ctx, u.ID, ErrInvalidCredentials)
	}
	return nil
}

// secondFactorIfEnabled is the second step of a proof whose password matched, with the
// reservation still open: when u has MFA on, code must be a right TOTP or recovery code. A
// missing code is MFA_REQUIRED and counted as a failed attempt (never as a success: whoever
// holds the password must not be able to reset the count of wrong codes; the next proof with
// a code clears it); a wrong one is audited and counted. It reports whether MFA is on.
func (s *Service) secondFactorIfEnabled(ctx context.Context, u User, code Secret, during string) (bool, error) {
	m, enabled, err := s.factors.Enabled(ctx, u.ID)
	if err != nil || !enabled {
		return enabled, err
	}
	if code == "" {
		details := map[string]any{"method": "totp"}
		if during != "" {
			details["during"] = during
		}
		s.record(ctx, audit.Event{Type: audit.MFAChallengeSent, Subject: u.ID, OrgID: u.OrgID, Details: details})
		return true, s.failed(ctx, u.ID, mfa.ErrRequired)
	}
	return true, s.secondFactor(ctx, u, m, code, during)
}

// failed records a failed check with the lockout and returns answer.
func (s *Service) failed(ctx context.Context, userID string, answer error) error {
	if err := s.cfg.Lockout.Fail(ctx, userID, limitAddr(ctx)); err != nil {
		return limiterDown(s.cfg.Lockout.Name(), err)
	}
	return answer
}

// succeeded ends a reservation with a whole proof: the failures of the account (from this
// address, and its consecutive count) are cleared.
func (s *Service) succeeded(ctx context.Context, userID string) error {
	if err := s.cfg.Lockout.Succeed(ctx, userID, limitAddr(ctx)); err != nil {
		return limiterDown(s.cfg.Lockout.Name(), err)
	}
	return nil
}

// Proof is what a call offers to show that the user is there: the current password and, when
// MFA is on, a TOTP or recovery code.
type Proof struct {
	Password Secret
	MFACode  Secret
}

// StepUp checks that the user behind claims is present for a change of how they sign in
// (during names it: "apikey_create", "mfa_enroll", ...): either the claims come from a session
// whose login is at most Config.StepUpMaxAge old (an API key never is), or p proves the user
// (password, and the second factor when MFA is on; each failure counted by the lockout and
// audited). With requirePassword the proof is needed whatever the token's age.
func (s *Service) StepUp(ctx context.Context, u User, c token.Claims, p Proof, during string, requirePassword bool) error {
	if c.Subject != u.ID {
		return apierr.New(apierr.PermissionDenied, "a user's credentials are changed only by that user")
	}
	if p.Password == "" {
		if requirePassword {
			return apierr.Field("password", "is required: your current password")
		}
		if s.fresh(c) {
			return nil
		}
		return ErrStepUpRequired
	}
	if err := password.CheckPresented("password", p.Password.Reveal()); err != nil {
		return err
	}
	full, err := s.GetUser(ctx, u.ID) // with its password hash
	if err != nil {
		return err
	}
	release, err := s.hashWorker(ctx, "")
	if err != nil {
		return err
	}
	defer release()
	if err := s.checkPassword(ctx, full, p.Password, during, release); err != nil {
		return err
	}
	if _, err := s.secondFactorIfEnabled(ctx, full, p.MFACode, during); err != nil {
		return err
	}
	return s.succeeded(ctx, u.ID)
}

// fresh reports whether c comes from a session whose login is recent enough for a step-up.
func (s *Service) fresh(c token.Claims) bool {
	if c.SessionID == "" || c.AuthTime.IsZero() || s.cfg.StepUpMaxAge <= 0 {
		return false
	}
	return s.cfg.Now().Sub(c.AuthTime) <= s.cfg.StepUpMaxAge
}

// ReleaseLock lifts userID's lockout from outside the server (`mcpauth user unlock`): the
// lockout this process sees is cleared, and a release is recorded that a server whose lockout
// lives in its own memory honours at the account's next refused check. Audited durably.
func (s *Service) ReleaseLock(ctx context.Context, userID, by string) error {
	u, err := s.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	if err := s.store.ReleaseLock(ctx, u.ID, s.cfg.Now()); err != nil {
		return apierr.Internalf("release lock: %w", err)
	}
	if err := s.cfg.Lockout.Unlock(ctx, u.ID); err != nil {
		return limiterDown(s.cfg.Lockout.Name(), err)
	}
	s.log.InfoContext(ctx, "account unlocked", "user_id", u.ID, "by", by)
	return s.recordDurable(ctx, audit.Event{Type: audit.AccountUnlocked, Subject: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"by": by}})
}

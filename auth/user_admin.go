package auth

import (
	"context"
	"errors"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/token"
)

// Account administration: changing, disabling and deleting users, and passwords. Each operation
// answers only once its audit record is durable; the actor of the record is the caller the
// guard put in the context, the subject the user acted on.

// UserChanges is a change to an account (user_update): nil fields stay as they are.
type UserChanges struct {
	Email    *string
	Username *string
	Disabled *bool
}

// Errors of account administration.
var (
	ErrEmailTaken    = apierr.New(apierr.Conflict, "email already in use")
	ErrUsernameTaken = apierr.New(apierr.Conflict, "username already in use")
)

// Revocation reasons of the sessions account administration ends.
const (
	reasonUserDisabled    = "user disabled"
	reasonUserDeleted     = "user deleted"
	reasonPasswordChanged = "password changed"
)

// UpdateUser changes an account and returns it as stored, with the names of the fields that
// changed (a field set to the value it has is no change). Email and username are normalized
// and validated as at creation; one that another user holds is CONFLICT. Disabling revokes
// every session and API key of the user (re-enabling lets them log in again, with new
// sessions and keys). Setting disabled to true on a disabled user finishes the revocations of
// an earlier disable that failed half-way.
func (s *Service) UpdateUser(ctx context.Context, id string, ch UserChanges) (User, []string, error) {
	var change UserChange
	if ch.Email != nil {
		email, err := NormalizeEmail("email", *ch.Email)
		if err != nil {
			return User{}, nil, err
		}
		change.Email = &email
	}
	if ch.Username != nil {
		username, err := NormalizeUsername("username", *ch.Username)
		if err != nil {
			return User{}, nil, err
		}
		change.Username = &username
	}
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return User{}, nil, err
	}
	fields := []string{}
	if change.Email != nil && *change.Email != u.Email {
		fields = append(fields, "email")
	} else {
		change.Email = nil
	}
	if change.Username != nil && *change.Username != u.Username {
		fields = append(fields, "username")
	} else {
		change.Username = nil
	}
	if ch.Disabled != nil && *ch.Disabled != u.Disabled {
		fields = append(fields, "disabled")
		change.Disabled = ch.Disabled
	}
	if len(fields) == 0 {
		if u.Disabled && ch.Disabled != nil && *ch.Disabled {
			if _, _, err := s.cutOff(ctx, u, reasonUserDisabled); err != nil {
				return User{}, nil, err
			}
		}
		return u, fields, nil
	}
	change.UpdatedAt = s.cfg.Now()
	err = s.store.UpdateUser(ctx, u.ID, change)
	s.forgetUser(ctx, u.ID)
	if err != nil {
		return User{}, nil, s.updateError(ctx, u.ID, change, err)
	}
	if change.Email != nil {
		u.Email = *change.Email
	}
	if change.Username != nil {
		u.Username = *change.Username
	}
	if change.Disabled != nil {
		u.Disabled = *change.Disabled
	}
	u.UpdatedAt = change.UpdatedAt
	s.log.InfoContext(ctx, "user updated", "user_id", u.ID, "fields", fields)

	var opErr error
	var events []audit.Event
	disabling := change.Disabled != nil && *change.Disabled
	enabling := change.Disabled != nil && !*change.Disabled
	if profile := withoutDisabled(fields); len(profile) > 0 || enabling {
		details := map[string]any{}
		if enabling {
			profile = append(profile, "disabled")
			details["disabled"] = false
		}
		details["fields"] = profile
		events = append(events, audit.Event{Type: audit.UserUpdated, Subject: u.ID, OrgID: u.OrgID, Details: details})
	}
	if disabling {
		sessions, keys, err := s.cutOff(ctx, u, reasonUserDisabled)
		opErr = err
		s.log.WarnContext(ctx, "user disabled", "user_id", u.ID, "sessions_revoked", sessions, "api_keys_revoked", keys)
		events = append(events, audit.Event{Type: audit.UserDisabled, Severity: audit.Warning, Subject: u.ID, OrgID: u.OrgID,
			Details: map[string]any{"sessions_revoked": sessions, "api_keys_revoked": keys}})
	}
	for _, e := range events {
		if err := s.recordDurable(ctx, e); err != nil && opErr == nil {
			opErr = apierr.New(apierr.Internal, "the user was updated, but the audit record was not written").Wrap(err)
		}
	}
	if opErr != nil {
		return User{}, nil, opErr
	}
	return u, fields, nil
}

func withoutDisabled(fields []string) []string {
	out := []string{}
	for _, f := range fields {
		if f != "disabled" {
			out = append(out, f)
		}
	}
	return out
}

// updateError turns a failed store update into the caller's answer: which of email and
// username is taken, if one is.
func (s *Service) updateError(ctx context.Context, id string, ch UserChange, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return ErrUserNotFound
	case !errors.Is(err, ErrAlreadyExists):
		return apierr.Internalf("update user: %w", err)
	}
	if ch.Email != nil {
		if other, gerr := s.store.GetUserByEmail(ctx, *ch.Email); gerr == nil && other.ID != id {
			return ErrEmailTaken
		}
	}
	if ch.Username != nil {
		if other, gerr := s.store.GetUserByUsername(ctx, *ch.Username); gerr == nil && other.ID != id {
			return ErrUsernameTaken
		}
	}
	return ErrUserTaken
}

// cutOff revokes every active session and API key of u. It goes on past a failure (so that as
// much as possible is cut off) and returns the first error.
func (s *Service) cutOff(ctx context.Context, u User, reason string) (sessions, keys int, err error) {
	sessions, err = s.revokeSessionsOf(ctx, u.ID, reason, "")
	keys, kerr := s.RevokeAPIKeysOf(ctx, u.ID)
	if err == nil {
		err = kerr
	}
	return sessions, keys, err
}

// revokeSessionsOf revokes every active session of userID but keep, and returns how many it
// revoked. It goes on past a failure and returns the first error.
func (s *Service) revokeSessionsOf(ctx context.Context, userID, reason, keep string) (int, error) {
	active, err := s.sessions.Active(ctx, userID)
	if err != nil {
		return 0, err
	}
	count := 0
	var first error
	for _, sess := range active {
		if sess.ID == keep {
			continue
		}
		done, err := s.revokeSession(ctx, sess.ID, reason)
		if err != nil && first == nil {
			first = err
		}
		if done {
			count++
		}
	}
	return count, first
}

// DeleteUserOptions are the options of DeleteUser.
type DeleteUserOptions struct {
	// Erase also removes every stored record of the user (sessions, refresh tokens, API key
	// records, second factor), not only the account. The audit trail stays: its hash chain
	// cannot be edited.
	Erase bool
	// Deprovision, if set, runs before the account is removed (e.g. to take its role
	// assignments back in rbac).
	Deprovision func(ctx context.Context, u User) error
}

// DeleteUser deletes an account: first it is disabled (every credential stops at once), then its
// sessions and API keys are revoked, its second factor removed, Deprovision run, its records
// erased (with Erase), and finally the account removed. Its email and username are free
// again afterwards. If a step fails the account stays, disabled, and the error is returned:
// deleting again finishes the job.
func (s *Service) DeleteUser(ctx context.Context, id string, opts DeleteUserOptions) error {
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return err
	}
	if !u.Disabled {
		disabled := true
		err := s.store.UpdateUser(ctx, u.ID, UserChange{Disabled: &disabled, UpdatedAt: s.cfg.Now()})
		s.forgetUser(ctx, u.ID)
		if err != nil {
			return s.updateError(ctx, u.ID, UserChange{}, err)
		}
		u.Disabled = true
	}
	fail := func(step string, err error) error {
		s.log.ErrorContext(ctx, "user deletion stopped half-way; the account stays, disabled", "user_id", u.ID, "step", step, "error", err)
		return err
	}
	sessions, keys, err := s.cutOff(ctx, u, reasonUserDeleted)
	if err != nil {
		return fail("revoke credentials", err)
	}
	if err := s.store.DeleteMFA(ctx, u.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return fail("remove mfa", apierr.Internalf("delete mfa: %w", err))
	}
	if opts.Deprovision != nil {
		if err := opts.Deprovision(ctx, u); err != nil {
			return fail("deprovision", err)
		}
	}
	if opts.Erase {
		if err := s.store.EraseUserRecords(ctx, u.ID); err != nil {
			return fail("erase records", apierr.Internalf("erase user records: %w", err))
		}
	}
	if err := s.cfg.Lockout.Unlock(ctx, u.ID); err != nil { // its lockout state is of no more use
		s.log.WarnContext(ctx, "could not clear a deleted user's lockout state", "user_id", u.ID, "error", err)
	}
	err = s.store.DeleteUser(ctx, u.ID)
	s.forgetUser(ctx, u.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fail("delete account", apierr.Internalf("delete user: %w", err))
	}
	s.log.WarnContext(ctx, "user deleted", "user_id", u.ID, "erase", opts.Erase)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.UserDeleted, Severity: audit.Warning, Subject: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"erase": opts.Erase, "sessions_revoked": sessions, "api_keys_revoked": keys}}); err != nil {
		return apierr.New(apierr.Internal, "the user was deleted, but the audit record was not written").Wrap(err)
	}
	return nil
}

// ChangePassword is a user's change of its own password, from the session of c: p.Password
// must be its current password and, when MFA is on, p.MFACode a valid code (a step-up with the
// password required: a wrong one is INVALID_CREDENTIALS and counts for the lockout; a locked
// account answers the same, as at login), and next must pass the password policy. Every other
// session of the user is revoked; c's session (if any) stays. It returns how many sessions it
// revoked.
func (s *Service) ChangePassword(ctx context.Context, c token.Claims, p Proof, next Secret) (int, error) {
	if err := password.CheckPresented("current_password", p.Password.Reveal()); err != nil {
		return 0, err
	}
	if err := password.CheckPolicy("new_password", next.Reveal()); err != nil {
		return 0, err
	}
	u, err := s.GetUser(ctx, c.Subject)
	if err != nil {
		return 0, err
	}
	if err := s.StepUp(ctx, u, c, p, "password_change", true); err != nil {
		if apierr.CodeOf(err) == apierr.AccountLocked {
			return 0, ErrInvalidCredentials // as at login: the wrong-password answer
		}
		return 0, err
	}
	return s.setPassword(ctx, u, next, c.SessionID, "self")
}

// ResetPassword sets a user's password without the current one (an administrator's act): next
// must pass the password policy, and every session of the user is revoked. It returns how many
// sessions it revoked.
func (s *Service) ResetPassword(ctx context.Context, userID string, next Secret) (int, error) {
	if err := password.CheckPolicy("new_password", next.Reveal()); err != nil {
		return 0, err
	}
	u, err := s.GetUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	return s.setPassword(ctx, u, next, "", "admin")
}

func (s *Service) setPassword(ctx context.Context, u User, next Secret, keep, by string) (int, error) {
	hash, err := s.hash(ctx, next)
	if err != nil {
		return 0, err
	}
	err = s.store.UpdateUser(ctx, u.ID, UserChange{PasswordHash: hash, UpdatedAt: s.cfg.Now()})
	s.forgetUser(ctx, u.ID)
	if err != nil {
		return 0, s.updateError(ctx, u.ID, UserChange{}, err)
	}
	revoked, revokeErr := s.revokeSessionsOf(ctx, u.ID, reasonPasswordChanged, keep)
	s.log.InfoContext(ctx, "password changed", "user_id", u.ID, "by", by, "sessions_revoked", revoked)
	severity := audit.Info
	if by != "self" {
		severity = audit.Warning
	}
	if err := s.recordDurable(ctx, audit.Event{Type: audit.UserUpdated, Severity: severity, Subject: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"fields": []string{"password"}, "by": by, "sessions_revoked": revoked}}); err != nil && revokeErr == nil {
		revokeErr = apierr.New(apierr.Internal, "the password was changed, but the audit record was not written").Wrap(err)
	}
	return revoked, revokeErr
}

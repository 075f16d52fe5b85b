package auth

import (
	"context"
	"errors"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/token"
)

// What the authorization server (auth/oauth) asks of the Service: a login proven on its pages
// without a session, a session opened for a client's grant, a rotation for that client only.

// Authenticate proves a login exactly as Login does (the limits, the lockout, one answer for
// an unknown account and a wrong password, the audit) without opening a session: the
// authorization server's login page proves the user, and the session opens when the client
// redeems its code. A correct password of an account with MFA, sent without a code, answers
// mfa.ErrRequired together with the user, so that the page can ask for the code alone
// (AuthenticateSecondFactor); every other error comes with no user.
func (s *Service) Authenticate(ctx context.Context, req LoginRequest) (User, error) {
	if err := password.CheckPresented("password", req.Password.Reveal()); err != nil {
		return User{}, err
	}
	identifier, err := normalizeIdentifier(req.Identifier)
	if err != nil {
		return User{}, err
	}
	if err := s.throttleLogin(ctx, identifier); err != nil {
		return User{}, err
	}
	u, mfaOn, err := s.proveLogin(ctx, identifier, req)
	if errors.Is(err, mfa.ErrRequired) {
		return u, err
	}
	if err != nil {
		return User{}, err
	}
	s.recordBrowserLogin(ctx, u, mfaOn)
	return u, nil
}

// AuthenticateSecondFactor finishes a login whose password was proven moments before
// (Authenticate answered mfa.ErrRequired for userID: the caller holds that proof, sealed): the
// code is limited, checked, counted by the lockout and audited as in Login.
func (s *Service) AuthenticateSecondFactor(ctx context.Context, userID string, code Secret) (User, error) {
	if code == "" {
		return User{}, apierr.Field("mfa_code", "is required")
	}
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrInvalidCredentials
	}
	if err != nil {
		return User{}, apierr.Internalf("user of a second factor: %w", err)
	}
	if err := s.throttleLogin(ctx, u.Email); err != nil {
		return User{}, err
	}
	if err := s.beginCheck(ctx, u, ""); err != nil {
		if apierr.CodeOf(err) == apierr.AccountLocked {
			return User{}, ErrInvalidCredentials
		}
		return User{}, err
	}
	if u.Disabled {
		s.record(ctx, authFailed(u, audit.ReasonAccountInactive, "", nil))
		return User{}, s.failed(ctx, u.ID, ErrAccountDisabled)
	}
	m, enabled, err := s.factors.Enabled(ctx, u.ID)
	if err != nil {
		return User{}, err
	}
	if !enabled { // turned off since the password: the password was the whole proof
		return User{}, ErrInvalidCredentials
	}
	if err := s.secondFactor(ctx, u, m, code, ""); err != nil {
		return User{}, err
	}
	if err := s.succeeded(ctx, u.ID); err != nil {
		return User{}, err
	}
	u.PasswordHash = nil
	s.recordBrowserLogin(ctx, u, true)
	return u, nil
}

// ResumeLogin is the authorization server's check of a login it remembers in a browser (its
// browser session): the user, proven at authTime (with the second factor when withMFA), is
// still the same account. A deleted or disabled account, any change of the account since
// (password, email, enable state: UpdatedAt), or a second factor turned on after a login made
// without one are ErrInvalidCredentials: the person signs in again.
func (s *Service) ResumeLogin(ctx context.Context, userID string, authTime time.Time, withMFA bool) (User, error) {
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrInvalidCredentials
	}
	if err != nil {
		return User{}, apierr.Internalf("user of a browser session: %w", err)
	}
	if u.Disabled || u.UpdatedAt.After(authTime) {
		return User{}, ErrInvalidCredentials
	}
	if !withMFA {
		_, enabled, err := s.factors.Enabled(ctx, u.ID)
		if err != nil {
			return User{}, err
		}
		if enabled {
			return User{}, ErrInvalidCredentials
		}
	}
	u.PasswordHash = nil
	return u, nil
}

func (s *Service) recordBrowserLogin(ctx context.Context, u User, mfaOn bool) {
	s.log.InfoContext(ctx, "login on the authorization server's page", "user_id", u.ID)
	s.record(ctx, audit.Event{Type: audit.AuthSuccess, Subject: u.ID, Actor: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"method": "password", "mfa": mfaOn, "via": "authorization_server"}})
}

// OpenGrant opens the session of an OAuth client's grant for userID, under the session id the
// authorization server chose, and issues its first tokens; a non-zero notAfter ends it then
// (a single sign-on's). The user is read again: one disabled or deleted since the login gets
// no tokens.
func (s *Service) OpenGrant(ctx context.Context, sessionID, userID string, g session.Grant, notAfter time.Time) (Tokens, error) {
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, token.ErrRevoked.With("reason", "the user no longer exists")
	}
	if err != nil {
		return Tokens{}, apierr.Internalf("user of a grant: %w", err)
	}
	if u.Disabled {
		return Tokens{}, ErrAccountDisabled
	}
	sess, refresh, err := s.sessions.OpenGrant(ctx, sessionID, u.ID, u.OrgID, g, notAfter)
	if err != nil {
		return Tokens{}, err
	}
	tokens, err := s.tokensFor(ctx, u, sess, refresh)
	if err != nil {
		return Tokens{}, err
	}
	s.record(ctx, audit.Event{Type: audit.OAuthTokenIssued, Subject: u.ID, OrgID: u.OrgID, SessionID: sess.ID,
		Details: map[string]any{"client_id": g.ClientID, "scopes": g.Scopes, "grant_type": "authorization_code"}})
	return tokens, nil
}

// RevokeGrant revokes the session of a grant (a code redeemed twice: what the first redemption
// issued is revoked). Revoking a session that never opened is not an error.
func (s *Service) RevokeGrant(ctx context.Context, sessionID, reason string) error {
	_, err := s.revokeSession(ctx, sessionID, reason)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ErrNotThisClient answers a refresh token presented by a client it was not issued to.
var ErrNotThisClient = token.ErrRevoked.With("reason", "the refresh token was issued to another client")

// RefreshGrant rotates a refresh token for the OAuth client clientID, as Refresh does. A refresh
// token of another client, or of mcpauth's own tools, is refused and its session revoked: the
// token is in the wrong hands. With scopes (the request's scope parameter), the new access token
// carries the grant's scopes that are among them (RFC 6749 §6: never wider; the grant itself
// stays as it was, so a later refresh may ask for all of it again); nil: the grant's.
func (s *Service) RefreshGrant(ctx context.Context, refreshToken Secret, clientID string, scopes []string) (Tokens, error) {
	return s.rotate(ctx, refreshToken, func(sess session.Session) bool {
		return sess.Grant != nil && sess.Grant.ClientID == clientID
	}, scopes)
}

// SSOLogin signs userID in after the identity provider connector proved who they are (the
// authorization server resolved the identity to this account): the account must be enabled,
// and when it has a second factor that the provider is not trusted for (mfaDone false), the
// answer is mfa.ErrRequired with the user, for the page to ask for the code
// (AuthenticateSecondFactor).
func (s *Service) SSOLogin(ctx context.Context, userID, connector string, mfaDone bool) (User, error) {
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrInvalidCredentials
	}
	if err != nil {
		return User{}, apierr.Internalf("user of a single sign-on: %w", err)
	}
	if u.Disabled {
		s.record(ctx, authFailed(u, audit.ReasonAccountInactive, "", nil))
		return User{}, ErrAccountDisabled
	}
	u.PasswordHash = nil
	if !mfaDone {
		_, enabled, err := s.factors.Enabled(ctx, u.ID)
		if err != nil {
			return User{}, err
		}
		if enabled {
			return u, mfa.ErrRequired
		}
	}
	s.log.InfoContext(ctx, "single sign-on on the authorization server's page", "user_id", u.ID, "connector", connector)
	s.record(ctx, audit.Event{Type: audit.SSOLogin, Subject: u.ID, Actor: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"connector": connector, "mfa": mfaDone, "via": "authorization_server"}})
	return u, nil
}

// OpenSSOSession opens a session of mcpauth's own tools for userID, whom an identity provider
// proved in a browser moments before (sso_login: the authorization server's pages resolved the
// identity and asked for the account's second factor where needed), ending at notAfter (the
// connector's session lifetime). The user is read again: one disabled or deleted since gets no
// tokens.
func (s *Service) OpenSSOSession(ctx context.Context, userID, connector string, notAfter time.Time, client string) (Tokens, User, error) {
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, User{}, ErrInvalidCredentials
	}
	if err != nil {
		return Tokens{}, User{}, apierr.Internalf("user of a single sign-on: %w", err)
	}
	if u.Disabled {
		s.record(ctx, authFailed(u, audit.ReasonAccountInactive, "", nil))
		return Tokens{}, User{}, ErrAccountDisabled
	}
	u.PasswordHash = nil
	tokens, err := s.openSession(ctx, u, false, client, notAfter)
	if err != nil {
		return Tokens{}, User{}, err
	}
	s.log.InfoContext(ctx, "single sign-on session opened", "user_id", u.ID, "connector", connector, "session_id", tokens.SessionID)
	s.record(ctx, audit.Event{Type: audit.AuthSuccess, Subject: u.ID, Actor: u.ID, OrgID: u.OrgID, SessionID: tokens.SessionID,
		Details: map[string]any{"method": "sso", "connector": connector, "via": "sso_login"}})
	return tokens, u, nil
}

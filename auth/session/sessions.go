// Package session is mcpauth's login sessions: each login opens a session, a family of
// refresh tokens of which only hashes are stored, rotated on every refresh with reuse detection
// (a spent token presented again is a thief or a replay: the whole family ends), and the set of
// revoked sessions every validation consults (in process, or shared through Redis).
//
// Spending a refresh token is a unique insert of its spend record, atomic on FerretDB and
// MongoDB alike: of two racing refreshes exactly one wins. What a refresh hands out (the
// access token, the user's live state) and what is audited is the auth service's.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/random"
)

// RefreshTokenPrefix starts every refresh token, so secret scanners and auth_revoke can tell it
// from a JWT at a glance.
const RefreshTokenPrefix = "mcpr_"

const (
	// shortTTL caps a refresh token's life when the user did not ask to be remembered.
	shortTTL = 24 * time.Hour
	// rotationInFlight bounds how long a spent token whose replacement is not yet issued counts
	// as "being rotated by a concurrent request" rather than reuse (a spender that died).
	rotationInFlight = 30 * time.Second
)

// ErrReused is Spend's answer for a token that was spent and rotated before: the caller
// revokes the session (Revoke) and records the reuse.
var ErrReused = errors.New("refresh token reuse")

// Sessions opens, rotates, lists and revokes sessions. It is safe for concurrent use.
type Sessions struct {
	store      Store
	revoked    Revocations
	now        func() time.Time
	refreshTTL time.Duration
	accessTTL  time.Duration
}

// NewSessions returns Sessions over the store and the revocation set. refreshTTL is a
// remembered session's lifetime (others get at most a day); accessTTL the access tokens'.
func NewSessions(store Store, revoked Revocations, now func() time.Time, refreshTTL, accessTTL time.Duration) *Sessions {
	return &Sessions{store: store, revoked: revoked, now: now, refreshTTL: refreshTTL, accessTTL: accessTTL}
}

// ReloadRevoked enters the sessions revoked within the last access-token lifetime into the
// revocation set: at start, so that a restart forgets no revocation.
func (m *Sessions) ReloadRevoked(ctx context.Context) error {
	ids, err := m.store.ListSessionsRevokedSince(ctx, m.now().Add(-m.accessTTL))
	if err != nil {
		return fmt.Errorf("load revoked sessions: %w", err)
	}
	for _, id := range ids {
		if err := m.revoked.Revoke(ctx, id, m.accessTTL); err != nil {
			return fmt.Errorf("reload revoked sessions: %w", err)
		}
	}
	return nil
}

func (m *Sessions) ttl(rememberMe bool) time.Duration {
	if rememberMe {
		return m.refreshTTL
	}
	return min(m.refreshTTL, shortTTL)
}

// until is when sess, used at now, expires: its lifetime from now, never past its NotAfter.
func (m *Sessions) until(sess Session, now time.Time) time.Time {
	end := now.Add(m.ttl(sess.RememberMe))
	if !sess.NotAfter.IsZero() && sess.NotAfter.Before(end) {
		return sess.NotAfter
	}
	return end
}

// Open starts a session of userID in orgID and issues its first refresh token; a non-zero
// notAfter ends it then whatever its refreshes. A user keeps at most MaxPerUser sessions: the
// store revokes the oldest beyond them, and Open shares those revocations as Revoke does (a
// failure to share them fails the login, as it fails Revoke).
func (m *Sessions) Open(ctx context.Context, userID, orgID string, rememberMe bool, client string, notAfter time.Time) (Session, string, error) {
	return m.open(ctx, Session{
		ID: random.ID("ses"), UserID: userID, OrgID: orgID, RememberMe: rememberMe, Client: client, NotAfter: notAfter,
	})
}

// OpenGrant starts the session of an OAuth grant under the given id (the authorization server
// derives it from the code, so that a second redemption of the code can revoke it), for the
// refresh lifetime and never past a non-zero notAfter; ErrAlreadyExists (wrapped in an
// INTERNAL error) when id is taken.
func (m *Sessions) OpenGrant(ctx context.Context, id, userID, orgID string, g Grant, notAfter time.Time) (Session, string, error) {
	return m.open(ctx, Session{
		ID: id, UserID: userID, OrgID: orgID, RememberMe: true, Client: g.ClientID, Grant: &g, NotAfter: notAfter,
	})
}

func (m *Sessions) open(ctx context.Context, sess Session) (Session, string, error) {
	now := m.now()
	sess.CreatedAt, sess.LastUsedAt, sess.ExpiresAt = now, now, m.until(sess, now)
	evicted, err := m.store.CreateSession(ctx, sess)
	// Shared even when the creation failed: the store may have revoked them before it did.
	shareErr := m.share(ctx, evicted...)
	if err != nil {
		return Session{}, "", apierr.Internalf("create session: %w", err)
	}
	if shareErr != nil {
		return Session{}, "", shareErr
	}
	refresh, err := m.issue(ctx, sess, now)
	return sess, refresh, err
}

// issue mints and stores a refresh token of sess.
func (m *Sessions) issue(ctx context.Context, sess Session, now time.Time) (string, error) {
	b := make([]byte, 32) // 256 bits
	_, _ = rand.Read(b)
	refresh := RefreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	rt := RefreshToken{Hash: hashToken(refresh), SessionID: sess.ID, UserID: sess.UserID, IssuedAt: now,
		ExpiresAt: m.until(sess, now)}
	if err := m.store.AddRefreshToken(ctx, rt); err != nil {
		return "", apierr.Internalf("store refresh token: %w", err)
	}
	return refresh, nil
}

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// IsRefreshToken reports whether t has a refresh token's prefix (it may still be malformed).
func IsRefreshToken(t string) bool { return strings.HasPrefix(t, RefreshTokenPrefix) }

// wellFormed bounds and shapes a presented refresh token before any look-up.
func wellFormed(t string) bool {
	return strings.HasPrefix(t, RefreshTokenPrefix) && len(t) == len(RefreshTokenPrefix)+43
}

// Spend spends a presented refresh token, the first step of a rotation, and returns it with
// its session. A token spent and rotated before is ErrReused (with the token and, if it still
// exists, the session); one spent by a concurrent rotation in flight, an unknown or malformed
// one is token.ErrInvalid; one whose session was revoked token.ErrRevoked; an expired one
// token.ErrExpired.
func (m *Sessions) Spend(ctx context.Context, presented string) (RefreshToken, Session, error) {
	if !wellFormed(presented) {
		return RefreshToken{}, Session{}, token.ErrInvalid.With("reason", "not a refresh token")
	}
	now := m.now()
	rt, err := m.store.SpendRefreshToken(ctx, hashToken(presented), now)
	switch {
	case errors.Is(err, storeerr.ErrNotFound):
		return RefreshToken{}, Session{}, token.ErrInvalid.With("reason", "unknown refresh token")
	case errors.Is(err, ErrAlreadySpent):
		sess, serr := m.store.GetSession(ctx, rt.SessionID)
		if serr != nil && !errors.Is(serr, storeerr.ErrNotFound) {
			return rt, Session{}, apierr.Internalf("session of refresh token: %w", serr)
		}
		if serr != nil || sess.Revoked { // spent by a logout or revocation: nothing more to end
			return rt, sess, token.ErrRevoked
		}
		if !rt.Rotated && now.Sub(rt.SpentAt) < rotationInFlight {
			// Another request is rotating this very token right now (two calls racing, not a
			// thief replaying an old token): refuse without ending the session.
			return rt, sess, token.ErrInvalid.With("reason", "refresh token is being rotated by a concurrent request")
		}
		return rt, sess, ErrReused
	case err != nil:
		return RefreshToken{}, Session{}, apierr.Internalf("spend refresh token: %w", err)
	}
	if !now.Before(rt.ExpiresAt) {
		return rt, Session{}, token.ErrExpired
	}
	sess, err := m.store.GetSession(ctx, rt.SessionID)
	if err != nil {
		return rt, Session{}, apierr.Internalf("session of refresh token: %w", err)
	}
	if sess.Revoked {
		return rt, sess, token.ErrRevoked
	}
	return rt, sess, nil
}

// Rotate finishes the rotation of spent (Spend's token of sess): the session's lifetime is
// extended and a new refresh token issued. A session revoked since Spend is token.ErrRevoked.
func (m *Sessions) Rotate(ctx context.Context, spent RefreshToken, sess Session) (string, error) {
	now := m.now()
	if err := m.store.TouchSession(ctx, sess.ID, now, m.until(sess, now)); err != nil {
		if errors.Is(err, storeerr.ErrNotFound) { // revoked between Spend and now
			return "", token.ErrRevoked
		}
		return "", apierr.Internalf("touch session: %w", err)
	}
	return m.issue(ctx, sess, now)
}

// Rotated records that the replacement of spent was handed out: from then on, presenting spent
// is reuse rather than a concurrent refresh. A failure only delays reuse detection of this
// token by rotationInFlight.
func (m *Sessions) Rotated(ctx context.Context, spent RefreshToken) error {
	return m.store.CompleteRotation(ctx, spent.Hash)
}

// SpendForRevocation spends a presented refresh token in order to end its session (RFC 7009
// and logout): a token already spent still names its session.
func (m *Sessions) SpendForRevocation(ctx context.Context, presented string) (RefreshToken, error) {
	if !wellFormed(presented) {
		return RefreshToken{}, token.ErrInvalid.With("reason", "not a refresh token")
	}
	rt, err := m.store.SpendRefreshToken(ctx, hashToken(presented), m.now())
	if errors.Is(err, storeerr.ErrNotFound) {
		return RefreshToken{}, token.ErrInvalid.With("reason", "unknown refresh token")
	}
	if err != nil && !errors.Is(err, ErrAlreadySpent) {
		return RefreshToken{}, apierr.Internalf("spend refresh token: %w", err)
	}
	return rt, nil
}

// Revoke revokes a session in the store, then in the revocation set; it reports whether this
// call did the revoking. A failure to share the revocation is an error though the store has
// it: every instance refuses the session's refresh tokens, but its access tokens may live on
// elsewhere until they expire.
func (m *Sessions) Revoke(ctx context.Context, sid, reason string) (bool, error) {
	done, err := m.store.RevokeSession(ctx, sid, m.now(), reason)
	if err != nil {
		return false, apierr.Internalf("revoke session: %w", err)
	}
	return done, m.share(ctx, sid)
}

// share enters sessions the store has revoked in the revocation set, so that their access
// tokens fail at once everywhere. It tries each and returns the first failure. Unshared (a
// failure, or this process dying first), a revocation is still the store's: every instance
// refuses the session's refresh tokens, the set gets it at an instance's next start
// (ReloadRevoked), and until then its access tokens may live on until they expire.
func (m *Sessions) share(ctx context.Context, sids ...string) error {
	var first error
	for _, sid := range sids {
		// Remembered for one access-token lifetime and the clock skew: after that no access
		// token of the session verifies anyway.
		if err := m.revoked.Revoke(ctx, sid, m.accessTTL+token.ClockSkew); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return apierr.New(apierr.Internal, "session revoked, but the revocation could not be shared with other instances").Wrap(first)
	}
	return nil
}

// IsRevoked reports whether sid is in the revocation set; an error means the set could not be
// asked (the caller fails closed).
func (m *Sessions) IsRevoked(ctx context.Context, sid string) (bool, error) {
	return m.revoked.IsRevoked(ctx, sid)
}

// Get returns a session (storeerr.ErrNotFound if there is none).
func (m *Sessions) Get(ctx context.Context, sid string) (Session, error) {
	return m.store.GetSession(ctx, sid)
}

// Active returns userID's sessions that can still be used.
func (m *Sessions) Active(ctx context.Context, userID string) ([]Session, error) {
	all, err := m.store.ListUserSessions(ctx, userID)
	if err != nil {
		return nil, apierr.Internalf("list sessions: %w", err)
	}
	now := m.now()
	active := all[:0]
	for _, sess := range all {
		if sess.Active(now) {
			active = append(active, sess)
		}
	}
	return active, nil
}

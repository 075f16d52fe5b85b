package session

import (
	"context"
	"errors"
	"time"
)

// ErrAlreadySpent is returned by SpendRefreshToken for a token that exists but was already
// rotated: the caller must treat it as reuse.
var ErrAlreadySpent = errors.New("refresh token already spent")

// MaxPerUser bounds the sessions a user keeps: opening one more revokes the oldest beyond it
// (ReasonSessionLimit). The bound is what keeps listing a user's sessions (auth_sessions,
// logout of all, revoking them all on disable or a password change) a bounded number of _id
// look-ups whatever the user does, and a revoked session is one that no list needs to find.
const MaxPerUser = 100

// ReasonSessionLimit is the revocation reason of a session that a newer one pushed past
// MaxPerUser.
const ReasonSessionLimit = "session_limit"

// Store persists refresh-token sessions (one family each) and their tokens by hash. Errors wrap
// storeerr's sentinels, and ErrAlreadySpent.
type Store interface {
	// CreateSession stores a new session of s.UserID, who keeps the newest MaxPerUser: the
	// oldest beyond them are revoked (ReasonSessionLimit) before they stop being listed, and
	// their ids are returned, with an error too (a later step may fail after revoking), so
	// that the caller shares those revocations as it shares any other. The session being
	// created is never one of them.
	CreateSession(ctx context.Context, s Session) (evicted []string, err error)
	GetSession(ctx context.Context, id string) (Session, error)
	// ListUserSessions returns the sessions of a user, oldest first: revoked and expired ones
	// included, and at most MaxPerUser (the older ones were revoked when they left).
	ListUserSessions(ctx context.Context, userID string) ([]Session, error)
	// TouchSession records a rotation: last use and the new expiry. storeerr.ErrNotFound if revoked.
	TouchSession(ctx context.Context, id string, at, expiresAt time.Time) error
	// RevokeSession marks a session revoked. It reports false if it was already revoked.
	RevokeSession(ctx context.Context, id string, at time.Time, reason string) (bool, error)
	// ListSessionsRevokedSince returns ids of sessions revoked at or after t.
	ListSessionsRevokedSince(ctx context.Context, t time.Time) ([]string, error)

	AddRefreshToken(ctx context.Context, t RefreshToken) error
	// SpendRefreshToken marks an unspent token spent in one atomic step and returns it. For an
	// unknown hash it returns storeerr.ErrNotFound; for a spent one, the token (with SpentAt and Rotated
	// set) and ErrAlreadySpent.
	SpendRefreshToken(ctx context.Context, hash string, at time.Time) (RefreshToken, error)
	// CompleteRotation records that the spender of a token has issued its replacement: from then
	// on, presenting the spent token is reuse rather than a concurrent refresh.
	CompleteRotation(ctx context.Context, hash string) error
}

// Session is one login: a family of refresh tokens. Its id is the access tokens' sid claim.
type Session struct {
	ID         string `bson:"_id"`
	UserID     string `bson:"user_id"`
	OrgID      string `bson:"org_id"`
	RememberMe bool   `bson:"remember_me"`
	Client     string `bson:"client,omitempty"`
	// Grant is what an OAuth client was granted: the session's tokens are that client's, for
	// that resource and those scopes (nil for a session of mcpauth's own tools, auth_login).
	Grant      *Grant    `bson:"grant,omitempty"`
	CreatedAt  time.Time `bson:"created_at"`
	LastUsedAt time.Time `bson:"last_used_at"`
	ExpiresAt  time.Time `bson:"expires_at"`
	// NotAfter, when set, ends the session whatever its refreshes (its ExpiresAt, and its
	// refresh tokens', never pass it): a single sign-on's, so that the provider is asked again
	// (and its groups read again) at least that often.
	NotAfter time.Time `bson:"not_after,omitzero"`
	// Revoked, RevokedAt and RevokeReason come from the session's revocation record (see
	// MongoStore): never stored with the session, so no reader meets a stale copy.
	Revoked      bool      `bson:"-"`
	RevokedAt    time.Time `bson:"-"`
	RevokeReason string    `bson:"-"`
}

// Grant is an OAuth client's authorization in a session.
type Grant struct {
	ClientID string    `bson:"client_id"`
	Resource string    `bson:"resource"`
	Scopes   []string  `bson:"scopes"`
	AuthTime time.Time `bson:"auth_time"` // the login the grant came from
}

// Active reports whether the session can still be used at now. Expiry is checked here, at read
// time, never by the database.
func (s Session) Active(now time.Time) bool {
	return !s.Revoked && now.Before(s.ExpiresAt)
}

// RefreshToken is a stored refresh token: only its SHA-256 hash is kept.
type RefreshToken struct {
	Hash      string    `bson:"_id"`
	SessionID string    `bson:"session_id"`
	UserID    string    `bson:"user_id"`
	IssuedAt  time.Time `bson:"issued_at"`
	ExpiresAt time.Time `bson:"expires_at"`
	// Spent, SpentAt and Rotated (the spender issued the replacement, see CompleteRotation)
	// come from the token's spend record: never stored with the token.
	Spent   bool      `bson:"-"`
	SpentAt time.Time `bson:"-"`
	Rotated bool      `bson:"-"`
}

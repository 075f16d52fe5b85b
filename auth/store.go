package auth

import (
	"context"
	"errors"
	"time"

	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
)

// Store sentinels (the same values as storeerr's, which the capability packages' stores
// answer with). Implementations wrap them with %w; callers test with errors.Is.
var (
	ErrNotFound      = storeerr.ErrNotFound
	ErrAlreadyExists = storeerr.ErrAlreadyExists
	// ErrAlreadySpent is returned by SpendRefreshToken for a token that exists but was already
	// rotated: the caller must treat it as reuse.
	ErrAlreadySpent = errors.New("refresh token already spent")
)

// Store is everything auth persists. One conformance suite (auth/storetest) defines its
// behaviour; MongoStore implements it.
type Store interface {
	UserStore
	SessionStore
	token.KeyStore
	apikey.Store
	mfa.Store
	LockReleaseStore
}

// LockReleaseStore keeps unlocks made outside the server (the operator's `mcpauth user unlock`):
// the lockout may live in another process's memory, so the CLI leaves a record that the server
// honours the next time a check of the account is refused by a lock engaged before it.
type LockReleaseStore interface {
	// ReleaseLock records that userID was unlocked at at (create or replace).
	ReleaseLock(ctx context.Context, userID string, at time.Time) error
	// LockReleasedAt is the time of userID's latest release; ErrNotFound if there is none.
	LockReleasedAt(ctx context.Context, userID string) (time.Time, error)
}

// UserStore persists accounts. Emails and usernames are unique (already normalized by callers).
type UserStore interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	// GetUsers returns the users of ids that exist, in no particular order (one round trip:
	// the user cache refreshes its records with it).
	GetUsers(ctx context.Context, ids []string) ([]User, error)
	// DeleteUser removes a user; ErrNotFound if there is none.
	DeleteUser(ctx context.Context, id string) error
	GetUserByEmail(ctx context.Context, email string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	// ListUsers returns up to q.Limit users with id > q.After in id order.
	ListUsers(ctx context.Context, q UserQuery) ([]User, error)
	CountUsers(ctx context.Context) (int64, error)
	// UpdateUser writes the fields ch sets (and UpdatedAt) on the user id, leaving the others
	// as they are: ErrNotFound if there is no such user, ErrAlreadyExists if the new email or
	// username is another user's (and then nothing is written). Writing only the changed
	// fields keeps updates of different fields from undoing each other on MongoDB; on FerretDB
	// v1, whose updates are a read and a replace, concurrent updates are last-writer-wins.
	UpdateUser(ctx context.Context, id string, ch UserChange) error
	// EraseUserRecords removes every record kept about a user apart from the account itself:
	// sessions, refresh tokens and their spend records, API keys and their revocation records,
	// the second factor, accepted TOTP steps and spent recovery codes. Session revocation
	// records stay: they hold a session id, a time and a reason, and keep the erased sessions'
	// access tokens refused after a restart. Erasing a user without records is no error.
	EraseUserRecords(ctx context.Context, userID string) error
}

// UserChange is an update of a user: nil fields stay as they are.
type UserChange struct {
	Email        *string
	Username     *string
	Disabled     *bool
	PasswordHash []byte
	UpdatedAt    time.Time
}

// UserQuery selects users for ListUsers.
type UserQuery struct {
	// Prefix, when set, keeps users whose email or username starts with it.
	Prefix string
	OrgID  string
	After  string
	Limit  int
}

// SessionStore persists refresh-token sessions (one family each) and their tokens by hash.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	// ListUserSessions returns every session of a user, revoked and expired ones included.
	ListUserSessions(ctx context.Context, userID string) ([]Session, error)
	// TouchSession records a rotation: last use and the new expiry. ErrNotFound if revoked.
	TouchSession(ctx context.Context, id string, at, expiresAt time.Time) error
	// RevokeSession marks a session revoked. It reports false if it was already revoked.
	RevokeSession(ctx context.Context, id string, at time.Time, reason string) (bool, error)
	// ListSessionsRevokedSince returns ids of sessions revoked at or after t.
	ListSessionsRevokedSince(ctx context.Context, t time.Time) ([]string, error)

	AddRefreshToken(ctx context.Context, t RefreshToken) error
	// SpendRefreshToken marks an unspent token spent in one atomic step and returns it. For an
	// unknown hash it returns ErrNotFound; for a spent one, the token (with SpentAt and Rotated
	// set) and ErrAlreadySpent.
	SpendRefreshToken(ctx context.Context, hash string, at time.Time) (RefreshToken, error)
	// CompleteRotation records that the spender of a token has issued its replacement: from then
	// on, presenting the spent token is reuse rather than a concurrent refresh.
	CompleteRotation(ctx context.Context, hash string) error
}

// Session is one login: a family of refresh tokens. Its id is the access tokens' sid claim.
type Session struct {
	ID         string    `bson:"_id"`
	UserID     string    `bson:"user_id"`
	OrgID      string    `bson:"org_id"`
	RememberMe bool      `bson:"remember_me"`
	Client     string    `bson:"client,omitempty"`
	CreatedAt  time.Time `bson:"created_at"`
	LastUsedAt time.Time `bson:"last_used_at"`
	ExpiresAt  time.Time `bson:"expires_at"`
	// Revoked, RevokedAt and RevokeReason come from the session's revocation record (see
	// MongoStore): never stored with the session, so no reader meets a stale copy.
	Revoked      bool      `bson:"-"`
	RevokedAt    time.Time `bson:"-"`
	RevokeReason string    `bson:"-"`
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

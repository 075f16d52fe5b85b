package auth

import (
	"context"
	"errors"
	"time"

	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
)

// Store sentinels (the same values as storeerr's, which the capability packages' stores
// answer with). Implementations wrap them with %w; callers test with errors.Is.
var (
	ErrNotFound      = storeerr.ErrNotFound
	ErrAlreadyExists = storeerr.ErrAlreadyExists
	// ErrInvalidCursor: a ListUsers cursor the store did not return.
	ErrInvalidCursor = errors.New("invalid cursor")
)

// Store is everything auth persists. One conformance suite (auth/storetest) defines its
// behaviour; MongoStore implements it.
type Store interface {
	UserStore
	session.Store
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
	// ListUsers returns up to q.Limit users of q.OrgID (DefaultOrgID when empty) in order of
	// creation, from the place q.After names (a cursor it returned; "" is the start), and the
	// cursor of the next page ("" when there is none). A page may hold fewer than q.Limit
	// users and still have a next one (a filtered listing reads a bounded part per call).
	// A cursor it did not return may be ErrInvalidCursor.
	ListUsers(ctx context.Context, q UserQuery) (users []User, next string, err error)
	// AnyUsers reports whether the store has a user.
	AnyUsers(ctx context.Context) (bool, error)
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
	After  string // a cursor ListUsers returned
	Limit  int
}

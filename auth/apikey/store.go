package apikey

import (
	"context"
	"time"
)

// Store persists API keys (by the hash of their secret). Revocation is its own record, so no
// concurrent write can undo it. Errors wrap storeerr's sentinels.
type Store interface {
	CreateAPIKey(ctx context.Context, k Key) error         // storeerr.ErrAlreadyExists
	GetAPIKey(ctx context.Context, id string) (Key, error) // storeerr.ErrNotFound; Revoked filled in
	// ListAPIKeys returns a user's keys, oldest first, revoked ones included.
	ListAPIKeys(ctx context.Context, userID string) ([]Key, error)
	// RevokeAPIKey reports false if the key was already revoked.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) (bool, error)
	// TouchAPIKey records a use (callers coalesce: not on every call).
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

package apikey

import (
	"context"
	"errors"
	"time"
)

// Store persists API keys (by the hash of their secret). Revocation is its own record, so no
// concurrent write can undo it. Errors wrap storeerr's sentinels, and ErrTooManyKeys.
type Store interface {
	// CreateAPIKey stores k, unless its user already has MaxPerUser live keys: neither revoked
	// nor expired at k.CreatedAt (ErrTooManyKeys). The check and the write are one atomic step:
	// concurrent creates never take a user past the cap. An id taken is storeerr.ErrAlreadyExists.
	CreateAPIKey(ctx context.Context, k Key) error
	GetAPIKey(ctx context.Context, id string) (Key, error) // storeerr.ErrNotFound; Revoked filled in
	// ListAPIKeys returns a user's keys, oldest first, revoked and expired ones included, but
	// for the oldest of those once the user has more than 2×MaxPerUser keys: a create drops
	// them from the listing then (they keep refusing to authenticate).
	ListAPIKeys(ctx context.Context, userID string) ([]Key, error)
	// RevokeAPIKey reports false if the key was already revoked.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) (bool, error)
	// TouchAPIKey records a use (callers coalesce: not on every call).
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// ErrTooManyKeys is a store's refusal of a key whose user has MaxPerUser live keys.
var ErrTooManyKeys = errors.New("too many live api keys")

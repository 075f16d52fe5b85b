package apikey

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
)

// Answers callers see.
var (
	// ErrInvalid is every failed check of a well-formed key: unknown, wrong secret, expired or
	// revoked look the same.
	ErrInvalid = token.ErrInvalid.With("reason", "API key is invalid, expired or revoked")
	// ErrMalformed is a key whose shape or checksum does not hold: a typo or garbage.
	ErrMalformed = token.ErrInvalid.With("reason", "malformed API key")
	// ErrNotFound is the answer for a key that does not exist or is not the caller's.
	ErrNotFound = apierr.New(apierr.NotFound, "API key not found")
)

// cacheTTL is how long a looked-up key record is reused. Revocation does not wait for it: a
// revoked key is also entered in the revocation set (shared through Redis), which every use of
// a cached record consults.
const cacheTTL = 30 * time.Second

// lastUseInterval coalesces last-used writes: at most one per key per interval.
const lastUseInterval = time.Minute

// Revocations is the revocation set shared by every instance (auth's, beside the sessions).
type Revocations interface {
	Revoke(ctx context.Context, id string, ttl time.Duration) error
	IsRevoked(ctx context.Context, id string) (bool, error)
}

// RevocationID names a key in the revocation set (beside session ids).
func RevocationID(keyID string) string { return "apikey:" + keyID }

// Keys creates, lists, revokes and checks API keys. It is safe for concurrent use.
type Keys struct {
	store   Store
	revoked Revocations
	now     func() time.Time
	ttl     time.Duration
	cache   cache
	uses    uses
}

// NewKeys returns Keys over the store and the revocation set; ttl is the lifetime of a key
// created without an expiry (zero or negative: such keys never expire).
func NewKeys(store Store, revoked Revocations, now func() time.Time, ttl time.Duration) *Keys {
	return &Keys{store: store, revoked: revoked, now: now, ttl: ttl}
}

// Request is a request to create a key. Permissions must already be checked against the
// creator's (rbac: a key never holds more than its creator).
type Request struct {
	UserID      string
	OrgID       string
	Name        string
	Permissions []string
	ExpiresAt   time.Time // zero: the default lifetime from now
	NoExpiry    bool      // a key that never expires: an explicit choice, never the default
}

// Create stores a new key and returns it with the key string, which is shown only once.
func (ks *Keys) Create(ctx context.Context, r Request) (Key, string, error) {
	name := strings.TrimSpace(r.Name)
	if name == "" || utf8.RuneCountInString(name) > MaxName || !utf8.ValidString(name) {
		return Key{}, "", apierr.Field("name", "must be 1-%d characters", MaxName)
	}
	if len(r.Permissions) == 0 || len(r.Permissions) > MaxPermissions {
		return Key{}, "", apierr.Field("permissions", "give 1 to %d permissions", MaxPermissions)
	}
	now := ks.now()
	switch {
	case r.NoExpiry && !r.ExpiresAt.IsZero():
		return Key{}, "", apierr.Field("expires_at", "either a time or never, not both")
	case !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now):
		return Key{}, "", apierr.Field("expires_at", "must be in the future")
	case r.ExpiresAt.IsZero() && !r.NoExpiry && ks.ttl > 0:
		r.ExpiresAt = now.Add(ks.ttl)
	}
	key, id, hash := generate()
	k := Key{ID: id, UserID: r.UserID, OrgID: r.OrgID, Name: name, SecretHash: hash,
		Permissions: r.Permissions, CreatedAt: now, ExpiresAt: r.ExpiresAt.UTC().Truncate(time.Millisecond)}
	// The store counts the live keys as it writes (a count here, then a write, would let two
	// concurrent creates at the cap both pass); revoked and expired keys leave a slot free.
	err := ks.store.CreateAPIKey(ctx, k)
	if errors.Is(err, ErrTooManyKeys) {
		return Key{}, "", apierr.Newf(apierr.Conflict, "at most %d live API keys per user; revoke some first", MaxPerUser)
	}
	if err != nil {
		return Key{}, "", apierr.Internalf("create api key: %w", err)
	}
	return k, key, nil
}

// List returns a user's keys, revoked and expired ones included (but for the oldest of them
// past 2×MaxPerUser keys: see Store).
func (ks *Keys) List(ctx context.Context, userID string) ([]Key, error) {
	keys, err := ks.store.ListAPIKeys(ctx, userID)
	if err != nil {
		return nil, apierr.Internalf("list api keys: %w", err)
	}
	return keys, nil
}

// Revoke revokes one of userID's keys and enters it in the revocation set, so instances holding
// its record in their cache refuse it at once. It reports whether this call revoked it; a key
// that is not userID's is ErrNotFound, like one that does not exist.
func (ks *Keys) Revoke(ctx context.Context, userID, id string) (Key, bool, error) {
	k, err := ks.store.GetAPIKey(ctx, id)
	if errors.Is(err, storeerr.ErrNotFound) || (err == nil && k.UserID != userID) {
		return Key{}, false, ErrNotFound
	}
	if err != nil {
		return Key{}, false, apierr.Internalf("get api key: %w", err)
	}
	done, err := ks.store.RevokeAPIKey(ctx, id, ks.now())
	if err != nil {
		return k, false, apierr.Internalf("revoke api key: %w", err)
	}
	ks.cache.drop(id)
	if err := ks.revoked.Revoke(ctx, RevocationID(id), cacheTTL+token.ClockSkew); err != nil {
		return k, done, apierr.New(apierr.Internal, "key revoked, but the revocation could not be shared with other instances").Wrap(err)
	}
	return k, done, nil
}

// Check authenticates a key: shape and checksum first (no I/O; ErrMalformed), then the stored
// hash in constant time, expiry and revocation (each ErrInvalid).
func (ks *Keys) Check(ctx context.Context, key string) (Key, error) {
	id, secret, ok := Parse(key)
	if !ok {
		return Key{}, ErrMalformed
	}
	now := ks.now()
	k, cached := ks.cache.get(id, now)
	if !cached {
		var err error
		k, err = ks.store.GetAPIKey(ctx, id)
		if errors.Is(err, storeerr.ErrNotFound) {
			return Key{}, ErrInvalid
		}
		if err != nil {
			return Key{}, apierr.Internalf("get api key: %w", err)
		}
		ks.cache.put(k, now)
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(k.SecretHash)) != 1 {
		return Key{}, ErrInvalid
	}
	if !k.Active(now) {
		return Key{}, ErrInvalid
	}
	if cached {
		revoked, err := ks.revoked.IsRevoked(ctx, RevocationID(k.ID))
		if err != nil {
			return Key{}, apierr.New(apierr.Internal, "revocation list unavailable; refusing the key").Wrap(err)
		}
		if revoked {
			ks.cache.drop(k.ID)
			return Key{}, ErrInvalid
		}
	}
	return k, nil
}

// Used records a use of k, at most once per key a minute (the last-used time is for people, and
// a write per call would cost more than the call).
func (ks *Keys) Used(ctx context.Context, k Key) error {
	now := ks.now()
	if !ks.uses.due(k.ID, now) {
		return nil
	}
	return ks.store.TouchAPIKey(ctx, k.ID, now)
}

// Claims are what a call made with k carries: its owner, org and permissions.
func (k Key) Claims() token.Claims {
	return token.Claims{Subject: k.UserID, OrgID: k.OrgID, Scopes: k.Permissions, TokenID: k.ID, APIKeyID: k.ID,
		IssuedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}
}

type cachedKey struct {
	key     Key
	fetched time.Time
}

// cache holds key records by id, so a key's every call is not a store read.
type cache struct {
	mu   sync.RWMutex
	keys map[string]cachedKey
}

func (c *cache) get(id string, now time.Time) (Key, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.keys[id]
	if !ok || now.Sub(e.fetched) >= cacheTTL {
		return Key{}, false
	}
	return e.key, true
}

func (c *cache) put(k Key, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= 100_000 {
		c.keys = map[string]cachedKey{}
	}
	c.keys[k.ID] = cachedKey{key: k, fetched: now}
}

func (c *cache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, id)
}

type uses struct {
	mu      sync.Mutex
	written map[string]time.Time
}

func (u *uses) due(id string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.written == nil {
		u.written = map[string]time.Time{}
	}
	if last, ok := u.written[id]; ok && now.Sub(last) < lastUseInterval {
		return false
	}
	if len(u.written) > 100_000 { // bounded: forgetting only means one extra write
		clear(u.written)
	}
	u.written[id] = now
	return true
}

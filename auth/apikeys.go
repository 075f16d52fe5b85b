package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/token"
)

// API keys look like mcpk_<id>_<secret><checksum>: a fixed prefix secret scanners know, a
// 16-character id (80 bits) to look the key up by, a 52-character secret (256 bits) of which only
// a SHA-256 hash is stored, and a 7-character CRC-32 of everything before it, so a mistyped or
// truncated key is refused without a database look-up.
const (
	APIKeyPrefix     = "mcpk_"
	apiKeyIDLen      = 16
	apiKeySecretLen  = 52
	apiKeyChecksumLn = 7
	apiKeyLen        = len(APIKeyPrefix) + apiKeyIDLen + 1 + apiKeySecretLen + apiKeyChecksumLn
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// APIKey is a stored API key. SecretHash is the SHA-256 of the secret part; the key itself is
// shown once, at creation, and never stored.
type APIKey struct {
	ID          string    `bson:"_id"`
	UserID      string    `bson:"user_id"`
	OrgID       string    `bson:"org_id"`
	Name        string    `bson:"name"`
	SecretHash  string    `bson:"secret_hash"`
	Permissions []string  `bson:"permissions"`
	CreatedAt   time.Time `bson:"created_at"`
	ExpiresAt   time.Time `bson:"expires_at,omitempty"`
	LastUsedAt  time.Time `bson:"last_used_at,omitempty"`
	// Revoked and RevokedAt come from the key's revocation record (see MongoStore).
	Revoked   bool      `bson:"-"`
	RevokedAt time.Time `bson:"-"`
}

// Active reports whether the key can authenticate at now.
func (k APIKey) Active(now time.Time) bool {
	return !k.Revoked && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// APIKeyView is an API key as its owner sees it: never the secret or its hash.
type APIKeyView struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	OrgID       string     `json:"org_id"`
	Permissions []string   `json:"permissions"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	Revoked     bool       `json:"revoked"`
	Active      bool       `json:"active"`
}

// View renders the key for its owner.
func (k APIKey) View(now time.Time) APIKeyView {
	v := APIKeyView{ID: k.ID, Name: k.Name, OrgID: k.OrgID, Permissions: k.Permissions, CreatedAt: k.CreatedAt,
		Revoked: k.Revoked, Active: k.Active(now)}
	if v.Permissions == nil {
		v.Permissions = []string{}
	}
	if !k.ExpiresAt.IsZero() {
		v.ExpiresAt = &k.ExpiresAt
	}
	if !k.LastUsedAt.IsZero() {
		v.LastUsedAt = &k.LastUsedAt
	}
	return v
}

func apiKeyChecksum(body string) string {
	var b [4]byte
	c := crc32.ChecksumIEEE([]byte(body))
	b[0], b[1], b[2], b[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return keyEncoding.EncodeToString(b[:])
}

// newAPIKey returns a fresh key string, its id and the hash of its secret.
func newAPIKey() (key, id, secretHash string) {
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 32)
	_, _ = rand.Read(idBytes)
	_, _ = rand.Read(secretBytes)
	id = keyEncoding.EncodeToString(idBytes)
	secret := keyEncoding.EncodeToString(secretBytes)
	body := APIKeyPrefix + id + "_" + secret
	return body + apiKeyChecksum(body), id, hashSecret(secret)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ParseAPIKey splits a key into its id and secret after checking its shape and checksum. It
// does no I/O: a malformed key costs nothing.
func ParseAPIKey(key string) (id, secret string, ok bool) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, APIKeyPrefix) {
		return "", "", false
	}
	body, sum := key[:len(key)-apiKeyChecksumLn], key[len(key)-apiKeyChecksumLn:]
	if subtle.ConstantTimeCompare([]byte(apiKeyChecksum(body)), []byte(sum)) != 1 {
		return "", "", false
	}
	rest := body[len(APIKeyPrefix):]
	if rest[apiKeyIDLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:apiKeyIDLen], rest[apiKeyIDLen+1:]
	for _, part := range []string{id, secret} {
		if _, err := keyEncoding.DecodeString(part); err != nil {
			return "", "", false
		}
	}
	return id, secret, true
}

// Limits on API keys.
const (
	MaxAPIKeyName        = 100 // characters (code points, as JSON Schema's maxLength counts)
	MaxAPIKeyPermissions = 64
	maxAPIKeysPerUser    = 100
)

// NewAPIKey is a request to create a key. Permissions must already be checked against the
// creator's (rbac: a key never holds more than its creator).
type NewAPIKey struct {
	UserID      string
	OrgID       string
	Name        string
	Permissions []string
	ExpiresAt   time.Time // zero: Config.APIKeyTTL from now
	NoExpiry    bool      // a key that never expires: an explicit choice, never the default
}

// CreateAPIKey stores a new key and returns it with the key string, which is shown only here.
func (s *Service) CreateAPIKey(ctx context.Context, nk NewAPIKey) (APIKey, Secret, error) {
	name := strings.TrimSpace(nk.Name)
	if name == "" || utf8.RuneCountInString(name) > MaxAPIKeyName || !utf8.ValidString(name) {
		return APIKey{}, "", apierr.Field("name", "must be 1-%d characters", MaxAPIKeyName)
	}
	if len(nk.Permissions) == 0 || len(nk.Permissions) > MaxAPIKeyPermissions {
		return APIKey{}, "", apierr.Field("permissions", "give 1 to %d permissions", MaxAPIKeyPermissions)
	}
	now := s.cfg.Now()
	switch {
	case nk.NoExpiry && !nk.ExpiresAt.IsZero():
		return APIKey{}, "", apierr.Field("expires_at", "either a time or never, not both")
	case !nk.ExpiresAt.IsZero() && !nk.ExpiresAt.After(now):
		return APIKey{}, "", apierr.Field("expires_at", "must be in the future")
	case nk.ExpiresAt.IsZero() && !nk.NoExpiry && s.cfg.APIKeyTTL > 0:
		nk.ExpiresAt = now.Add(s.cfg.APIKeyTTL)
	}
	existing, err := s.store.ListAPIKeys(ctx, nk.UserID)
	if err != nil {
		return APIKey{}, "", apierr.Internalf("list api keys: %w", err)
	}
	if len(existing) >= maxAPIKeysPerUser {
		return APIKey{}, "", apierr.Newf(apierr.Conflict, "at most %d API keys per user; revoke some first", maxAPIKeysPerUser)
	}
	key, id, hash := newAPIKey()
	k := APIKey{ID: id, UserID: nk.UserID, OrgID: nk.OrgID, Name: name, SecretHash: hash,
		Permissions: nk.Permissions, CreatedAt: now, ExpiresAt: nk.ExpiresAt.UTC().Truncate(time.Millisecond)}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return APIKey{}, "", apierr.Internalf("create api key: %w", err)
	}
	s.log.InfoContext(ctx, "api key created", "user_id", k.UserID, "key_id", k.ID)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.APIKeyCreated, Subject: k.UserID, OrgID: k.OrgID,
		Details: map[string]any{"key_id": k.ID, "name": k.Name, "permissions": k.Permissions}}); err != nil {
		return APIKey{}, "", apierr.Internalf("audit api key creation: %w", err)
	}
	return k, Secret(key), nil
}

// ListAPIKeys returns a user's keys, revoked and expired ones included.
func (s *Service) ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error) {
	keys, err := s.store.ListAPIKeys(ctx, userID)
	if err != nil {
		return nil, apierr.Internalf("list api keys: %w", err)
	}
	return keys, nil
}

// ErrAPIKeyNotFound is the answer for a key that does not exist or is not the caller's.
var ErrAPIKeyNotFound = apierr.New(apierr.NotFound, "API key not found")

// RevokeAPIKey revokes one of userID's keys. It reports whether this call revoked it.
func (s *Service) RevokeAPIKey(ctx context.Context, userID, id string) (bool, error) {
	k, err := s.store.GetAPIKey(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && k.UserID != userID) {
		return false, ErrAPIKeyNotFound
	}
	if err != nil {
		return false, apierr.Internalf("get api key: %w", err)
	}
	done, err := s.store.RevokeAPIKey(ctx, id, s.cfg.Now())
	if err != nil {
		return false, apierr.Internalf("revoke api key: %w", err)
	}
	s.keyCache.drop(id)
	// Instances holding the key's record in their cache learn of the revocation at once.
	if err := s.revoked.Revoke(ctx, revocationID(id), apiKeyCacheTTL+token.ClockSkew); err != nil {
		return done, apierr.New(apierr.Internal, "key revoked, but the revocation could not be shared with other instances").Wrap(err)
	}
	s.log.InfoContext(ctx, "api key revoked", "user_id", userID, "key_id", id)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.APIKeyRevoked, Subject: userID, OrgID: k.OrgID, Details: map[string]any{"key_id": id}}); err != nil {
		return done, apierr.Internalf("audit api key revocation: %w", err)
	}
	return done, nil
}

// RevokeAPIKeysOf revokes every active API key of userID and returns how many it revoked. It
// goes on past a failure and returns the first error.
func (s *Service) RevokeAPIKeysOf(ctx context.Context, userID string) (int, error) {
	all, err := s.store.ListAPIKeys(ctx, userID)
	if err != nil {
		return 0, apierr.Internalf("list api keys: %w", err)
	}
	now := s.cfg.Now()
	count := 0
	var first error
	for _, k := range all {
		if !k.Active(now) {
			continue
		}
		done, err := s.RevokeAPIKey(ctx, userID, k.ID)
		if err != nil && first == nil {
			first = err
		}
		if done {
			count++
		}
	}
	return count, first
}

// apiKeyCacheTTL is how long a looked-up key record is reused. Revocation does not wait for it:
// a revoked key is also entered in the revocation set (shared through Redis), which every use
// consults.
const apiKeyCacheTTL = 30 * time.Second

type cachedKey struct {
	key     APIKey
	fetched time.Time
}

// keyCache holds key records by id, so a key's every call is not a store read.
type keyCache struct {
	mu   sync.RWMutex
	keys map[string]cachedKey
}

func (c *keyCache) get(id string, now time.Time) (APIKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.keys[id]
	if !ok || now.Sub(e.fetched) >= apiKeyCacheTTL {
		return APIKey{}, false
	}
	return e.key, true
}

func (c *keyCache) put(k APIKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= 100_000 {
		c.keys = map[string]cachedKey{}
	}
	c.keys[k.ID] = cachedKey{key: k, fetched: now}
}

func (c *keyCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, id)
}

// revocationID names an API key in the revocation set (beside session ids).
func revocationID(keyID string) string { return "apikey:" + keyID }

// lastUseInterval coalesces last-used writes: at most one per key per interval.
const lastUseInterval = time.Minute

type lastUse struct {
	mu      sync.Mutex
	written map[string]time.Time
}

func (l *lastUse) due(id string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == nil {
		l.written = map[string]time.Time{}
	}
	if last, ok := l.written[id]; ok && now.Sub(last) < lastUseInterval {
		return false
	}
	if len(l.written) > 100_000 { // bounded: forgetting only means one extra write
		clear(l.written)
	}
	l.written[id] = now
	return true
}

var errKeyInvalid = token.ErrInvalid.With("reason", "API key is invalid, expired or revoked")

// lookUpAPIKey checks a key: shape and checksum first (no I/O), then the stored hash in constant
// time, expiry and revocation. Every failure is the same TOKEN_INVALID.
func (s *Service) lookUpAPIKey(ctx context.Context, key string) (APIKey, error) {
	id, secret, ok := ParseAPIKey(key)
	if !ok {
		return APIKey{}, token.ErrInvalid.With("reason", "malformed API key")
	}
	now := s.cfg.Now()
	k, cached := s.keyCache.get(id, now)
	if !cached {
		var err error
		k, err = s.store.GetAPIKey(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return APIKey{}, errKeyInvalid
		}
		if err != nil {
			return APIKey{}, apierr.Internalf("get api key: %w", err)
		}
		s.keyCache.put(k, now)
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(k.SecretHash)) != 1 {
		return APIKey{}, errKeyInvalid
	}
	if !k.Active(now) {
		return APIKey{}, errKeyInvalid
	}
	if cached {
		revoked, err := s.revoked.IsRevoked(ctx, revocationID(k.ID))
		if err != nil {
			return APIKey{}, apierr.New(apierr.Internal, "revocation list unavailable; refusing the key").Wrap(err)
		}
		if revoked {
			s.keyCache.drop(k.ID)
			return APIKey{}, errKeyInvalid
		}
	}
	return k, nil
}

// validateAPIKey authenticates with a key, rate-limiting the failures of each client address.
func (s *Service) validateAPIKey(ctx context.Context, key string) (APIKey, token.Claims, error) {
	// A key whose checksum does not hold is a typo or garbage, never a guess at a real key's
	// secret: refused before any look-up, always as TOKEN_INVALID, and it does not count against
	// the address's guesses. Its record does: anyone can send garbage, so an address's
	// malformed keys are recorded only within the failure limit, in a bucket of their own
	// (past it the limiter counts the refusal in its metric; if the limiter fails, the event is
	// recorded).
	if _, _, ok := ParseAPIKey(key); !ok {
		if err := s.allow(ctx, "apikey_malformed:addr:"+limitAddr(ctx), s.cfg.Limits.APIKeyFailures); apierr.CodeOf(err) != apierr.RateLimited {
			s.record(ctx, audit.Event{Type: audit.APIKeyUsedFailed, Severity: audit.Warning, Details: map[string]any{"reason": "malformed"}})
		}
		return APIKey{}, token.Claims{}, token.ErrInvalid.With("reason", "malformed API key")
	}
	// An address that keeps presenting bad keys is refused before any look-up.
	failKey := "apikey_fail:addr:" + limitAddr(ctx)
	d, err := s.cfg.Limiter.Check(ctx, failKey, s.cfg.Limits.APIKeyFailures)
	if err != nil {
		return APIKey{}, token.Claims{}, limiterDown(s.cfg.Limiter.Name(), err)
	}
	if !d.Allowed {
		return APIKey{}, token.Claims{}, RateLimited(d.RetryAfter)
	}
	k, err := s.lookUpAPIKey(ctx, key)
	if err != nil {
		if apierr.CodeOf(err) == apierr.TokenInvalid {
			keyID, _, _ := ParseAPIKey(key) // the id only, never the secret
			s.record(ctx, audit.Event{Type: audit.APIKeyUsedFailed, Severity: audit.Warning, Details: map[string]any{"key_id": keyID}})
			if _, lerr := s.cfg.Limiter.Allow(ctx, failKey, s.cfg.Limits.APIKeyFailures); lerr != nil {
				return APIKey{}, token.Claims{}, limiterDown(s.cfg.Limiter.Name(), lerr)
			}
		}
		return APIKey{}, token.Claims{}, err
	}
	now := s.cfg.Now()
	if s.lastUse.due(k.ID, now) {
		if err := s.store.TouchAPIKey(ctx, k.ID, now); err != nil {
			s.log.WarnContext(ctx, "could not record api key use", "key_id", k.ID, "error", err)
		}
	}
	c := token.Claims{Subject: k.UserID, OrgID: k.OrgID, Scopes: k.Permissions, TokenID: k.ID, APIKeyID: k.ID,
		IssuedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}
	return k, c, nil
}

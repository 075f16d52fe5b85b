// Package apikey is mcpauth's API keys: their format (a prefix scanners know, an id, a secret of
// which only a hash is stored, a checksum that refuses typos without a look-up), their records
// and store, and Keys, which creates, lists, revokes and checks them with a short-lived cache
// whose revocations are shared through the revocation set.
//
// What a key may do (its permissions within its creator's) is rbac's rule; the rate limits on
// failed keys and the audit trail are the auth service's, which calls Keys.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"time"
)

// Keys look like mcpk_<id>_<secret><checksum>: a fixed prefix secret scanners know, a
// 16-character id (80 bits) to look the key up by, a 52-character secret (256 bits) of which only
// a SHA-256 hash is stored, and a 7-character CRC-32 of everything before it, so a mistyped or
// truncated key is refused without a database look-up.
const (
	Prefix     = "mcpk_"
	idLen      = 16
	secretLen  = 52
	checksumLn = 7
	keyLen     = len(Prefix) + idLen + 1 + secretLen + checksumLn
)

// Limits on API keys.
const (
	MaxName        = 100 // characters (code points, as JSON Schema's maxLength counts)
	MaxPermissions = 64
	MaxPerUser     = 100
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Key is a stored API key. SecretHash is the SHA-256 of the secret part; the key itself is
// shown once, at creation, and never stored.
type Key struct {
	ID          string    `bson:"_id"`
	UserID      string    `bson:"user_id"`
	OrgID       string    `bson:"org_id"`
	Name        string    `bson:"name"`
	SecretHash  string    `bson:"secret_hash"`
	Permissions []string  `bson:"permissions"`
	CreatedAt   time.Time `bson:"created_at"`
	ExpiresAt   time.Time `bson:"expires_at,omitempty"`
	LastUsedAt  time.Time `bson:"last_used_at,omitempty"`
	// Revoked and RevokedAt come from the key's revocation record (see Store).
	Revoked   bool      `bson:"-"`
	RevokedAt time.Time `bson:"-"`
}

// Active reports whether the key can authenticate at now.
func (k Key) Active(now time.Time) bool {
	return !k.Revoked && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// View is an API key as its owner sees it: never the secret or its hash.
type View struct {
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
func (k Key) View(now time.Time) View {
	v := View{ID: k.ID, Name: k.Name, OrgID: k.OrgID, Permissions: k.Permissions, CreatedAt: k.CreatedAt,
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

func checksum(body string) string {
	var b [4]byte
	c := crc32.ChecksumIEEE([]byte(body))
	b[0], b[1], b[2], b[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return encoding.EncodeToString(b[:])
}

// generate returns a fresh key string, its id and the hash of its secret.
func generate() (key, id, secretHash string) {
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 32)
	_, _ = rand.Read(idBytes)
	_, _ = rand.Read(secretBytes)
	id = encoding.EncodeToString(idBytes)
	secret := encoding.EncodeToString(secretBytes)
	body := Prefix + id + "_" + secret
	return body + checksum(body), id, hashSecret(secret)
}

// WellFormed returns a key whose shape and checksum hold but which was never issued: a guess,
// as opposed to a typo (for tests).
func WellFormed() string {
	key, _, _ := generate()
	return key
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Parse splits a key into its id and secret after checking its shape and checksum. It does no
// I/O: a malformed key costs nothing.
func Parse(key string) (id, secret string, ok bool) {
	if len(key) != keyLen || !strings.HasPrefix(key, Prefix) {
		return "", "", false
	}
	body, sum := key[:len(key)-checksumLn], key[len(key)-checksumLn:]
	if subtle.ConstantTimeCompare([]byte(checksum(body)), []byte(sum)) != 1 {
		return "", "", false
	}
	rest := body[len(Prefix):]
	if rest[idLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:idLen], rest[idLen+1:]
	for _, part := range []string{id, secret} {
		if _, err := encoding.DecodeString(part); err != nil {
			return "", "", false
		}
	}
	return id, secret, true
}

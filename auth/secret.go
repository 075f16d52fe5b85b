package auth

import (
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"strings"
)

// Secret is a password, token or key in transit. It redacts itself in fmt and slog, so a
// secret can only reach a log by an explicit Reveal.
type Secret string

const redacted = "[REDACTED]"

// String redacts.
func (Secret) String() string { return redacted }

// GoString redacts (%#v).
func (Secret) GoString() string { return redacted }

// LogValue redacts in slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts, so a Secret inside a struct cannot leak through JSON or BSON either.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the secret itself. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix_ followed by 128 random bits in lower-case base32.
func newID(prefix string) string {
	return prefix + "_" + randomString(16)
}

func randomString(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	return strings.ToLower(idEncoding.EncodeToString(b))
}

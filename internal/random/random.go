// Package random makes the random identifiers and secrets of mcpauth's records: 128 bits and
// more from crypto/rand, in lower-case base32 (no padding, nothing to escape in a URL or a
// shell).
package random

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ID returns prefix_ followed by 128 random bits.
func ID(prefix string) string { return prefix + "_" + String(16) }

// String returns nbytes random bytes in lower-case base32.
func String(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	return strings.ToLower(encoding.EncodeToString(b))
}

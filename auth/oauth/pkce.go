package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// ValidChallenge reports whether ch can be an S256 code_challenge (RFC 7636 §4.2): the
// unpadded base64url encoding of a SHA-256 digest. Strict decoding also refuses the encodings
// whose last character carries stray bits, since no verifier could ever hash to them.
func ValidChallenge(ch string) bool {
	if len(ch) != 43 || !base64URLChars(ch) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(ch)
	return err == nil && len(b) == sha256.Size
}

// ValidVerifier reports whether v is a code_verifier RFC 7636 §4.1 allows: 43 to 128
// unreserved characters.
func ValidVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// VerifyS256 reports whether verifier is the one challenge was derived from (RFC 7636 §4.6).
// A verifier RFC 7636 does not allow never verifies, even when it hashes right: the check
// then holds wherever this is called, whether or not the caller ran ValidVerifier first.
func VerifyS256(verifier, challenge string) bool {
	if !ValidVerifier(verifier) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(challengeOf(verifier)), []byte(challenge)) == 1
}

// challengeOf is the S256 code_challenge of verifier.
func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// base64URLChars reports whether s holds only base64url characters; Go's decoder would
// otherwise skip CR and LF.
func base64URLChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

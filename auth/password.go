package auth

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/bduf/mcpauth/apierr"
)

// Password rules, NIST SP 800-63B: a minimum length in code points, no composition rules, a
// block list of common passwords. bcrypt reads at most 72 bytes; we reject longer passwords
// instead of letting bcrypt silently ignore the tail.
const (
	MinPasswordRunes = 8
	MaxPasswordBytes = 72
	// maxPasswordInput bounds what we even look at, so a 1 MiB "password" costs nothing.
	maxPasswordInput  = 4096
	DefaultBcryptCost = 10
)

// commonPasswords is the 30,000 most common passwords of the xato corpus, most common first,
// as shipped by zxcvbn (MIT, see common-passwords.LICENSE). Matching is case-insensitive.
//
//go:embed common-passwords.txt
var commonPasswordsFile []byte

var commonPasswords = func() map[string]struct{} {
	set := make(map[string]struct{}, 30000)
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordsFile))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			set[w] = struct{}{}
		}
	}
	return set
}()

// CommonPasswordCount is the size of the block list (exported for tests and docs).
func CommonPasswordCount() int { return len(commonPasswords) }

// normalizePassword applies NFKC (SP 800-63B 5.1.1.2) so the same password typed on two
// keyboards hashes the same.
func normalizePassword(p string) string { return norm.NFKC.String(p) }

// CheckPasswordPolicy says why a new password is unacceptable, as INVALID_ARGUMENT naming the
// field, or nil. It never echoes the password.
func CheckPasswordPolicy(field string, password Secret) error {
	p := password.Reveal()
	if len(p) > maxPasswordInput {
		return apierr.Field(field, "must be at most %d bytes", MaxPasswordBytes)
	}
	if !utf8.ValidString(p) {
		return apierr.Field(field, "must be valid UTF-8")
	}
	p = normalizePassword(p)
	if n := utf8.RuneCountInString(p); n < MinPasswordRunes {
		return apierr.Field(field, "must be at least %d characters", MinPasswordRunes)
	}
	if len(p) > MaxPasswordBytes {
		return apierr.Field(field, "must be at most %d bytes (bcrypt's limit); it is never truncated", MaxPasswordBytes)
	}
	if _, common := commonPasswords[strings.ToLower(p)]; common {
		return apierr.Field(field, "is too common; choose a password that is not on lists of common passwords")
	}
	return nil
}

// checkLoginPassword bounds a presented password before any work is done on it.
func checkLoginPassword(password Secret) error {
	p := password.Reveal()
	if p == "" {
		return apierr.Field("password", "is required")
	}
	if len(p) > maxPasswordInput || len(normalizePassword(p)) > MaxPasswordBytes {
		return apierr.Field("password", "must be at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

// hashPassword bcrypts a password that passed CheckPasswordPolicy.
func hashPassword(password Secret, cost int) ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(normalizePassword(password.Reveal())), cost)
	if err != nil {
		return nil, fmt.Errorf("bcrypt: %w", err)
	}
	return h, nil
}

// passwordMatches compares in bcrypt's constant time. Any error other than a mismatch (a
// corrupt hash) is returned, so the caller fails closed.
func passwordMatches(hash []byte, password Secret) (bool, error) {
	err := bcrypt.CompareHashAndPassword(hash, []byte(normalizePassword(password.Reveal())))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("bcrypt compare: %w", err)
	}
}

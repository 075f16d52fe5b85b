// Package password holds the rules for passwords and the hashing of them: NIST SP 800-63B's
// length rule and block list, bcrypt, a bounded pool of hashing workers and the dummy compare
// that makes an unknown account cost what a known one does.
//
// Passwords arrive here revealed (plain strings): the auth package carries them as auth.Secret
// and reveals them only at these calls. Nothing here logs, returns or stores a password.
package password

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
// block list of common passwords. bcrypt reads at most 72 bytes; longer passwords are refused
// instead of letting bcrypt silently ignore the tail.
const (
	MinRunes = 8
	MaxBytes = 72
	// maxInput bounds what is even looked at, so a 1 MiB "password" costs nothing.
	maxInput    = 4096
	DefaultCost = 10
)

// common is the 30,000 most common passwords of the xato corpus, most common first, as
// shipped by zxcvbn (MIT, see common-passwords.LICENSE). Matching is case-insensitive.
//
//go:embed common-passwords.txt
var commonFile []byte

var common = func() map[string]struct{} {
	set := make(map[string]struct{}, 30000)
	sc := bufio.NewScanner(bytes.NewReader(commonFile))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			set[w] = struct{}{}
		}
	}
	return set
}()

// CommonCount is the size of the block list (for tests and docs).
func CommonCount() int { return len(common) }

// normalize applies NFKC (SP 800-63B 5.1.1.2) so the same password typed on two keyboards
// hashes the same.
func normalize(p string) string { return norm.NFKC.String(p) }

// CheckPolicy says why a new password is unacceptable, as INVALID_ARGUMENT naming the field,
// or nil. It never echoes the password.
func CheckPolicy(field, p string) error {
	if len(p) > maxInput {
		return apierr.Field(field, "must be at most %d bytes", MaxBytes)
	}
	if !utf8.ValidString(p) {
		return apierr.Field(field, "must be valid UTF-8")
	}
	p = normalize(p)
	if n := utf8.RuneCountInString(p); n < MinRunes {
		return apierr.Field(field, "must be at least %d characters", MinRunes)
	}
	if len(p) > MaxBytes {
		return apierr.Field(field, "must be at most %d bytes (bcrypt's limit); it is never truncated", MaxBytes)
	}
	if _, isCommon := common[strings.ToLower(p)]; isCommon {
		return apierr.Field(field, "is too common; choose a password that is not on lists of common passwords")
	}
	return nil
}

// CheckPresented bounds a password presented to be checked (a login, a current password)
// before any work is done on it: present, and not longer than any password can be.
func CheckPresented(field, p string) error {
	if p == "" {
		return apierr.Field(field, "is required")
	}
	if len(p) > maxInput || len(normalize(p)) > MaxBytes {
		return apierr.Field(field, "must be at most %d bytes", MaxBytes)
	}
	return nil
}

// hash bcrypts a password that passed CheckPolicy.
func hash(p string, cost int) ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(normalize(p)), cost)
	if err != nil {
		return nil, fmt.Errorf("bcrypt: %w", err)
	}
	return h, nil
}

// Matches compares in bcrypt's constant time. Any error other than a mismatch (a corrupt
// hash) is returned, so the caller fails closed.
func Matches(hash []byte, p string) (bool, error) {
	err := bcrypt.CompareHashAndPassword(hash, []byte(normalize(p)))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("bcrypt compare: %w", err)
	}
}

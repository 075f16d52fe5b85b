package auth

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
)

// DefaultOrgID is the organization the bootstrap creates; users without one belong to it.
const DefaultOrgID = "default"

// User is an account. PasswordHash never leaves this package in a result: tools render
// UserView instead.
type User struct {
	ID           string    `bson:"_id"`
	Email        string    `bson:"email"`
	Username     string    `bson:"username,omitempty"`
	PasswordHash []byte    `bson:"password_hash"`
	OrgID        string    `bson:"org_id"`
	Disabled     bool      `bson:"disabled"`
	CreatedAt    time.Time `bson:"created_at"`
	UpdatedAt    time.Time `bson:"updated_at"`
	// DirChunk is the chunk of the organization's directory that holds the user's entry
	// (directory.go); 0 for a user from a store made before the directory.
	DirChunk int64 `bson:"dir_chunk,omitempty"`
}

// UserView is the public face of a user: what tools return. Roles are filled in by the caller
// from rbac (auth does not own role assignments).
type UserView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Username  string    `json:"username,omitempty"`
	OrgID     string    `json:"org_id"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// View drops the credential fields.
func (u User) View(roles []string) UserView {
	if roles == nil {
		roles = []string{}
	}
	return UserView{ID: u.ID, Email: u.Email, Username: u.Username, OrgID: u.OrgID, Roles: roles,
		Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

const (
	MaxEmailLen    = 254 // RFC 5321 path limit
	MaxUsernameLen = 64
	MaxOrgIDLen    = 64
)

// Usernames are lower-case, start with a letter or digit, and never contain '@', so a login
// identifier is unambiguously an email or a username.
var usernamePattern = regexp.MustCompile(fmt.Sprintf(`^[a-z0-9][a-z0-9._-]{2,%d}$`, MaxUsernameLen-1))

var orgIDPattern = regexp.MustCompile(fmt.Sprintf(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,%d}$`, MaxOrgIDLen-1))

// NormalizeEmail validates an address and returns its canonical (trimmed, lower-case) form.
func NormalizeEmail(field, email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		return "", apierr.Field(field, "is required")
	}
	if len(e) > MaxEmailLen {
		return "", apierr.Field(field, "must be at most %d characters", MaxEmailLen)
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" || !strings.Contains(e, "@") {
		return "", apierr.Field(field, "is not a valid email address")
	}
	return e, nil
}

// NormalizeUsername validates a username and returns its lower-case form.
func NormalizeUsername(field, username string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(username))
	if !usernamePattern.MatchString(u) {
		return "", apierr.Field(field, "must be 3-%d characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", MaxUsernameLen)
	}
	return u, nil
}

// ValidateOrgID checks an organization id's shape.
func ValidateOrgID(field, org string) error {
	if len(org) > MaxOrgIDLen || !orgIDPattern.MatchString(org) {
		return apierr.Field(field, "must be 1-%d characters of letters, digits, '.', '_' or '-'", MaxOrgIDLen)
	}
	return nil
}

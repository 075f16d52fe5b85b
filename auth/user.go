package auth

import (
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
	maxEmailLen = 254 // RFC 5321 path limit
	maxOrgIDLen = 64
)

// Usernames are lower-case, start with a letter or digit, and never contain '@', so a login
// identifier is unambiguously an email or a username.
var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)

var orgIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// NormalizeEmail validates an address and returns its canonical (trimmed, lower-case) form.
func NormalizeEmail(field, email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		return "", apierr.Field(field, "is required")
	}
	if len(e) > maxEmailLen {
		return "", apierr.Field(field, "must be at most %d characters", maxEmailLen)
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
		return "", apierr.Field(field, "must be 3-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")
	}
	return u, nil
}

// ValidateOrgID checks an organization id's shape.
func ValidateOrgID(field, org string) error {
	if len(org) > maxOrgIDLen || !orgIDPattern.MatchString(org) {
		return apierr.Field(field, "must be 1-64 characters of letters, digits, '.', '_' or '-'")
	}
	return nil
}

package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/internal/random"
)

// NewUser is a request to create an account.
type NewUser struct {
	Email    string
	Username string
	Password Secret
	// NoPassword makes an account without a password (single sign-on: package federation):
	// password login is impossible until an administrator sets one. Password is then ignored.
	NoPassword bool
	// ID, when set, is the new user's id (federation links an identity to it before the
	// account exists); it must look like the ids this package makes.
	ID    string
	OrgID string
	// Provision, if set, runs once the user is stored (e.g. to assign roles in rbac). If it
	// fails, the user is deleted again and its error returned: with no transactions, this is
	// how a user never exists half-made.
	Provision func(ctx context.Context, u User) error
}

// userIDPattern is the form of the ids random.ID("usr") makes.
var userIDPattern = regexp.MustCompile(`^usr_[a-z2-7]{26}$`)

// CreateUser validates and creates an account. Nothing is written unless every field is valid.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	email, err := NormalizeEmail("email", nu.Email)
	if err != nil {
		return User{}, err
	}
	var username string
	if nu.Username != "" {
		if username, err = NormalizeUsername("username", nu.Username); err != nil {
			return User{}, err
		}
	}
	org := nu.OrgID
	if org == "" {
		org = DefaultOrgID
	}
	if err := ValidateOrgID("org_id", org); err != nil {
		return User{}, err
	}
	id := nu.ID
	if id == "" {
		id = random.ID("usr")
	} else if !userIDPattern.MatchString(id) {
		return User{}, apierr.Field("id", "must be a user id (usr_ followed by 26 lower-case letters and digits)")
	}
	var hash []byte
	if !nu.NoPassword {
		if err := password.CheckPolicy("password", nu.Password.Reveal()); err != nil {
			return User{}, err
		}
		if hash, err = s.hash(ctx, nu.Password); err != nil {
			return User{}, err
		}
	}
	now := s.cfg.Now()
	u := User{ID: id, Email: email, Username: username, PasswordHash: hash, OrgID: org,
		CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			return User{}, ErrUserTaken
		}
		return User{}, apierr.Internalf("create user: %w", err)
	}
	// Provisioning (roles) and the durable audit record are part of creating the user: if
	// either fails, the user is deleted again.
	finish := func() error {
		if nu.Provision != nil {
			if err := nu.Provision(ctx, u); err != nil {
				return err
			}
		}
		if err := s.recordDurable(ctx, audit.Event{Type: audit.UserCreated, Subject: u.ID, OrgID: org,
			Details: map[string]any{"email": u.Email}}); err != nil {
			return apierr.Internalf("audit user creation: %w", err)
		}
		return nil
	}
	if err := finish(); err != nil {
		s.deleteHalfMade(ctx, u.ID)
		return User{}, err
	}
	s.log.InfoContext(ctx, "user created", "user_id", u.ID, "org_id", org)
	return u, nil
}

// undoTimeout bounds how long a failed creation keeps trying to delete the user it half made
// (or may have made: a lost reply): what failed is usually the store itself, so the delete is
// retried until the store is back.
const undoTimeout = 30 * time.Second

// deleteHalfMade deletes a user whose creation failed after it was stored, retrying (with the
// caller waiting: its answer must not come before the user is gone) until the store takes the
// delete or undoTimeout passes.
func (s *Service) deleteHalfMade(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		err := s.store.DeleteUser(ctx, id)
		if err == nil || errors.Is(err, ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			s.log.ErrorContext(ctx, "could not delete a half-made user: delete it by hand (user_delete)", "user_id", id, "error", err)
			s.forgetUser(ctx, id)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
	s.forgetUser(ctx, id)
}

// GetUser returns a user by id, NOT_FOUND if there is none.
func (s *Service) GetUser(ctx context.Context, id string) (User, error) {
	if id == "" || len(id) > 64 {
		return User{}, apierr.Field("id", "must be a user id")
	}
	u, err := s.store.GetUser(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	if err != nil {
		return User{}, apierr.Internalf("get user: %w", err)
	}
	return u, nil
}

// FindUser returns the user with email (normalized as at login), or with id when email is
// empty: NOT_FOUND if there is none. For the operator's CLI.
func (s *Service) FindUser(ctx context.Context, email, id string) (User, error) {
	if email == "" {
		return s.GetUser(ctx, id)
	}
	e, err := NormalizeEmail("email", email)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.GetUserByEmail(ctx, e)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	if err != nil {
		return User{}, apierr.Internalf("get user: %w", err)
	}
	return u, nil
}

// Paging bounds for ListUsers.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

var errBadUserCursor = apierr.Field("cursor", "is not a cursor returned by user_list")

// ListUsers pages through the users of an organization, in order of creation. The cursor is
// opaque to callers; a page may hold fewer than limit users and still have a next one (a
// filtered listing reads a bounded part of the directory per call: see directory.go).
func (s *Service) ListUsers(ctx context.Context, filter, orgID string, limit int, cursor string) ([]User, string, error) {
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return nil, "", apierr.Field("limit", "must be between 1 and %d", MaxPageSize)
	}
	if len(filter) > MaxEmailLen {
		return nil, "", apierr.Field("filter", "must be at most %d characters", MaxEmailLen)
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) > 64 {
			return nil, "", errBadUserCursor
		}
		after = string(b)
	}
	users, next, err := s.store.ListUsers(ctx, UserQuery{Prefix: strings.ToLower(filter), OrgID: orgID, After: after, Limit: limit})
	if errors.Is(err, ErrInvalidCursor) {
		return nil, "", errBadUserCursor
	}
	if err != nil {
		return nil, "", apierr.Internalf("list users: %w", err)
	}
	if next != "" {
		next = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	return users, next, nil
}

// BootstrapAdminEmail is the owner created on first start when no email is configured.
const BootstrapAdminEmail = "admin@localhost"

// NoUsers reports whether the store has no user yet (Bootstrap would create the first).
func (s *Service) NoUsers(ctx context.Context) (bool, error) {
	any, err := s.store.AnyUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("look for users: %w", err)
	}
	return !any, nil
}

// Bootstrap creates the first user when the store has no users; provision makes it the owner.
// With an empty password it generates one and returns it (to be shown once). It never touches
// an existing user.
func (s *Service) Bootstrap(ctx context.Context, email string, password Secret, provision func(context.Context, User) error) (created bool, generated Secret, err error) {
	if none, err := s.NoUsers(ctx); err != nil || !none {
		return false, "", err
	}
	if email == "" {
		email = BootstrapAdminEmail
	}
	if password == "" {
		generated = Secret(random.String(20)) // 160 bits
		password = generated
	}
	_, err = s.CreateUser(ctx, NewUser{Email: email, Password: password, OrgID: DefaultOrgID, Provision: provision})
	if errors.Is(err, ErrUserTaken) { // another instance bootstrapped first
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("bootstrap admin: %w", err)
	}
	return true, generated, nil
}

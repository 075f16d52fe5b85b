package tools

import (
	"context"
	"log/slog"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
)

// Set is mcpauth's tool set, bound to its services.
type Set struct {
	auth *auth.Service
	log  *slog.Logger
	bind *bindings
}

// New returns the tool set over the auth service.
func New(a *auth.Service, logger *slog.Logger) *Set {
	if logger == nil {
		logger = slog.Default()
	}
	return &Set{auth: a, log: logger, bind: &bindings{tokens: map[string]auth.Secret{}}}
}

// Argument bounds. Generous for real values, tight enough that junk is refused before work.
const (
	maxIdentifier = 254
	maxSecretArg  = 4096
	maxTokenArg   = 8192
	maxIDArg      = 64
	maxMFACode    = 64
)

// Tools returns every tool with its handler, for server.AddTools.
func (s *Set) Tools() []server.ServerTool {
	str := func(name, desc string, opts ...mcp.PropertyOption) mcp.ToolOption {
		return mcp.WithString(name, append([]mcp.PropertyOption{mcp.Description(desc)}, opts...)...)
	}
	strict := mcp.WithSchemaAdditionalProperties(false)
	return []server.ServerTool{
		{Tool: mcp.NewTool("auth_login",
			mcp.WithDescription("Log in with a password. Give email or username. Returns an access token (JWT, send as 'Authorization: Bearer'), a refresh token for auth_refresh, and the user. Over stdio the session stays logged in for later calls."),
			str("email", "Account email (or give username).", mcp.MaxLength(maxIdentifier)),
			str("username", "Account username (or give email).", mcp.MaxLength(maxIdentifier)),
			str("password", "Account password.", mcp.Required(), mcp.MaxLength(auth.MaxPasswordBytes)),
			str("mfa_code", "TOTP code or recovery code, for accounts with MFA.", mcp.MaxLength(maxMFACode)),
			mcp.WithBoolean("remember_me", mcp.Description("Keep the session for the full refresh lifetime (default: at most 24 hours).")),
			strict, mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_login", s.login)},
		{Tool: mcp.NewTool("auth_refresh",
			mcp.WithDescription("Exchange a refresh token for a new access token and a new refresh token. The old refresh token is spent: presenting it again revokes the whole session."),
			str("refresh_token", "The refresh token from auth_login or the last auth_refresh.", mcp.Required(), mcp.MaxLength(maxTokenArg)),
			strict, mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_refresh", s.refresh)},
		{Tool: mcp.NewTool("auth_logout",
			mcp.WithDescription("End sessions: the session of refresh_token if given, every session of the caller with all_sessions, otherwise the caller's current session."),
			str("refresh_token", "A refresh token whose session to end.", mcp.MaxLength(maxTokenArg)),
			mcp.WithBoolean("all_sessions", mcp.Description("End every session of the caller.")),
			strict, mcp.WithDestructiveHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_logout", s.logout)},
		{Tool: mcp.NewTool("auth_revoke",
			mcp.WithDescription("Revoke an access token or refresh token (RFC 7009). The session it belongs to ends: its access tokens fail validation at once and its refresh tokens stop working."),
			str("token", "The access token or refresh token to revoke.", mcp.Required(), mcp.MaxLength(maxTokenArg)),
			strict, mcp.WithDestructiveHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_revoke", s.revoke)},
		{Tool: mcp.NewTool("auth_validate",
			mcp.WithDescription("Check an access token: signature, issuer, audience, expiry and revocation. Returns its claims, or TOKEN_INVALID / TOKEN_EXPIRED / TOKEN_REVOKED."),
			str("token", "The access token to check.", mcp.Required(), mcp.MaxLength(maxTokenArg)),
			strict, mcp.WithReadOnlyHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_validate", s.validate)},
		{Tool: mcp.NewTool("auth_whoami",
			mcp.WithDescription("Who the caller is: user, organization, scopes and how the call was authenticated."),
			strict, mcp.WithReadOnlyHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_whoami", s.whoami)},
		{Tool: mcp.NewTool("auth_sessions",
			mcp.WithDescription("The caller's active sessions (logins), the current one marked."),
			strict, mcp.WithReadOnlyHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "auth_sessions", s.sessions)},
		{Tool: mcp.NewTool("user_create",
			mcp.WithDescription("Create a user in the caller's organization. Needs the owner role. The password must be at least 8 characters, at most 72 bytes, and not a common password."),
			str("email", "Email address (unique, case-insensitive).", mcp.Required(), mcp.MaxLength(maxIdentifier)),
			str("username", "Optional username: 3-64 of a-z 0-9 . _ - (unique).", mcp.MaxLength(64)),
			str("password", "Initial password.", mcp.Required(), mcp.MaxLength(auth.MaxPasswordBytes)),
			str("org_id", "Organization; defaults to the caller's.", mcp.MaxLength(maxIDArg)),
			mcp.WithArray("roles", mcp.Description("Roles in the organization: owner, admin, contributor, viewer."),
				mcp.WithStringEnumItems([]string{"owner", "admin", "contributor", "viewer"}), mcp.MaxItems(32)),
			strict, mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "user_create", s.userCreate)},
		{Tool: mcp.NewTool("user_get",
			mcp.WithDescription("Get a user of the caller's organization by id. Needs the owner role."),
			str("id", "User id (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			strict, mcp.WithReadOnlyHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "user_get", s.userGet)},
		{Tool: mcp.NewTool("user_list",
			mcp.WithDescription("List users of the caller's organization, in pages. Needs the owner role."),
			str("filter", "Only users whose email or username starts with this.", mcp.MaxLength(maxIdentifier)),
			mcp.WithNumber("limit", mcp.Description("Page size, 1-200 (default 50)."), mcp.Min(1), mcp.Max(auth.MaxPageSize)),
			str("cursor", "next_cursor from the previous page.", mcp.MaxLength(128)),
			strict, mcp.WithReadOnlyHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false),
		), Handler: handler(s, "user_list", s.userList)},
	}
}

// caller resolves and validates the credential of a call.
func (s *Set) caller(ctx context.Context) (auth.User, auth.Claims, string, error) {
	token, method := s.bind.credential(ctx)
	if token == "" {
		return auth.User{}, auth.Claims{}, "", auth.ErrUnauthenticated
	}
	u, c, err := s.auth.Caller(ctx, token)
	return u, c, method, err
}

// requireOwner is the interim policy for user_* tools until rbac lands: the caller must hold
// the owner role in their organization.
func (s *Set) requireOwner(ctx context.Context) (auth.User, error) {
	u, _, _, err := s.caller(ctx)
	if err != nil {
		return auth.User{}, err
	}
	if !u.HasRole("owner") {
		return auth.User{}, apierr.New(apierr.PermissionDenied, "this tool needs the owner role").
			With("required_permissions", []string{"role:owner"})
	}
	return u, nil
}

type loginArgs struct {
	Email      string `json:"email"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	MFACode    string `json:"mfa_code"`
	RememberMe bool   `json:"remember_me"`
}

type loginResult struct {
	auth.Tokens
	User auth.UserView `json:"user"`
}

func (s *Set) login(ctx context.Context, a loginArgs) (any, error) {
	// The argument given decides how the account is looked up: an email must look like one, a
	// username must not.
	identifier := a.Email
	switch {
	case a.Email != "" && a.Username != "":
		return nil, apierr.Field("email", "give email or username, not both")
	case a.Email == "" && a.Username == "":
		return nil, apierr.Field("email", "email or username is required")
	case a.Email != "":
		if _, err := auth.NormalizeEmail("email", a.Email); err != nil {
			return nil, err
		}
	default:
		if _, err := auth.NormalizeUsername("username", a.Username); err != nil {
			return nil, err
		}
		identifier = a.Username
	}
	if err := requireString("password", a.Password, maxSecretArg); err != nil {
		return nil, err
	}
	if err := maxString("mfa_code", a.MFACode, maxMFACode); err != nil {
		return nil, err
	}
	tokens, u, err := s.auth.Login(ctx, auth.LoginRequest{
		Identifier: identifier, Password: auth.Secret(a.Password), RememberMe: a.RememberMe,
		Client: clientName(ctx),
	})
	if err != nil {
		return nil, err
	}
	s.bind.bind(ctx, tokens.AccessToken)
	return loginResult{Tokens: tokens, User: u.View()}, nil
}

func clientName(ctx context.Context) string {
	name := requestInfo(ctx).Transport
	if cs, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo); ok {
		if ci := cs.GetClientInfo(); ci.Name != "" {
			name = truncate(ci.Name+" "+ci.Version, 128) + " via " + name
		}
	}
	return name
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

type refreshArgs struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Set) refresh(ctx context.Context, a refreshArgs) (any, error) {
	if err := requireString("refresh_token", a.RefreshToken, maxTokenArg); err != nil {
		return nil, err
	}
	tokens, err := s.auth.Refresh(ctx, auth.Secret(a.RefreshToken))
	if err != nil {
		return nil, err
	}
	s.bind.bind(ctx, tokens.AccessToken)
	return tokens, nil
}

type logoutArgs struct {
	RefreshToken string `json:"refresh_token"`
	AllSessions  bool   `json:"all_sessions"`
}

func (s *Set) logout(ctx context.Context, a logoutArgs) (any, error) {
	if err := maxString("refresh_token", a.RefreshToken, maxTokenArg); err != nil {
		return nil, err
	}
	var caller *auth.Claims
	if a.RefreshToken == "" || a.AllSessions {
		_, c, _, err := s.caller(ctx)
		if err != nil {
			return nil, err
		}
		caller = &c
	}
	n, err := s.auth.Logout(ctx, caller, auth.Secret(a.RefreshToken), a.AllSessions)
	if err != nil {
		return nil, err
	}
	if caller != nil {
		s.bind.unbind(ctx)
	}
	return map[string]any{"revoked": n}, nil
}

type tokenArgs struct {
	Token string `json:"token"`
}

func (s *Set) revoke(ctx context.Context, a tokenArgs) (any, error) {
	if err := requireString("token", a.Token, maxTokenArg); err != nil {
		return nil, err
	}
	done, err := s.auth.Revoke(ctx, auth.Secret(a.Token))
	if err != nil {
		return nil, err
	}
	return map[string]any{"revoked": done}, nil
}

type validateResult struct {
	Valid bool `json:"valid"`
	auth.Claims
}

func (s *Set) validate(ctx context.Context, a tokenArgs) (any, error) {
	if err := requireString("token", a.Token, maxTokenArg); err != nil {
		return nil, err
	}
	c, err := s.auth.Validate(ctx, auth.Secret(a.Token))
	if err != nil {
		return nil, err
	}
	return validateResult{Valid: true, Claims: c}, nil
}

type noArgs struct{}

type whoamiResult struct {
	User       auth.UserView `json:"user"`
	OrgID      string        `json:"org_id"`
	Scopes     []string      `json:"scopes"`
	AuthMethod string        `json:"auth_method"`
	SessionID  string        `json:"session_id,omitempty"`
	ExpiresAt  time.Time     `json:"expires_at"`
}

func (s *Set) whoami(ctx context.Context, _ noArgs) (any, error) {
	u, c, method, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	return whoamiResult{User: u.View(), OrgID: c.OrgID, Scopes: c.Scopes, AuthMethod: method,
		SessionID: c.SessionID, ExpiresAt: c.ExpiresAt}, nil
}

func (s *Set) sessions(ctx context.Context, _ noArgs) (any, error) {
	_, c, _, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.auth.Sessions(ctx, c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"sessions": list}, nil
}

type userCreateArgs struct {
	Email    string   `json:"email"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	OrgID    string   `json:"org_id"`
	Roles    []string `json:"roles"`
}

func (s *Set) userCreate(ctx context.Context, a userCreateArgs) (any, error) {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"email", a.Email, maxIdentifier}, {"password", a.Password, maxSecretArg}} {
		if err := requireString(f.name, f.v, f.max); err != nil {
			return nil, err
		}
	}
	if err := maxString("username", a.Username, maxIdentifier); err != nil {
		return nil, err
	}
	if err := maxString("org_id", a.OrgID, maxIDArg); err != nil {
		return nil, err
	}
	owner, err := s.requireOwner(ctx)
	if err != nil {
		return nil, err
	}
	if a.OrgID != "" && a.OrgID != owner.OrgID {
		return nil, apierr.New(apierr.PermissionDenied, "users can only be created in your own organization").
			With("required_permissions", []string{"role:owner@" + truncate(a.OrgID, maxIDArg)})
	}
	u, err := s.auth.CreateUser(ctx, auth.NewUser{Email: a.Email, Username: a.Username,
		Password: auth.Secret(a.Password), OrgID: owner.OrgID, Roles: a.Roles})
	if err != nil {
		return nil, err
	}
	return map[string]any{"user": u.View()}, nil
}

type idArgs struct {
	ID string `json:"id"`
}

func (s *Set) userGet(ctx context.Context, a idArgs) (any, error) {
	if err := requireString("id", a.ID, maxIDArg); err != nil {
		return nil, err
	}
	owner, err := s.requireOwner(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.auth.GetUser(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	if u.OrgID != owner.OrgID { // other organizations' users do not exist for this caller
		return nil, auth.ErrUserNotFound
	}
	return map[string]any{"user": u.View()}, nil
}

type userListArgs struct {
	Filter string `json:"filter"`
	Limit  *int   `json:"limit"`
	Cursor string `json:"cursor"`
}

func (s *Set) userList(ctx context.Context, a userListArgs) (any, error) {
	if err := maxString("cursor", a.Cursor, 128); err != nil {
		return nil, err
	}
	limit := 0
	if a.Limit != nil {
		if *a.Limit < 1 || *a.Limit > auth.MaxPageSize {
			return nil, apierr.Field("limit", "must be between 1 and %d", auth.MaxPageSize)
		}
		limit = *a.Limit
	}
	owner, err := s.requireOwner(ctx)
	if err != nil {
		return nil, err
	}
	users, next, err := s.auth.ListUsers(ctx, a.Filter, owner.OrgID, limit, a.Cursor)
	if err != nil {
		return nil, err
	}
	views := make([]auth.UserView, len(users))
	for i, u := range users {
		views[i] = u.View()
	}
	return map[string]any{"users": views, "next_cursor": next}, nil
}

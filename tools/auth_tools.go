package tools

import (
	"context"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/call"
	mcpauth "github.com/bduf/mcpauth/mcp"
)

func authTools() []tool {
	return []tool{
		declare(tool{Name: "auth_login", Rule: mcpauth.Public(),
			Description: "Log in with a password. Give email or username. Returns an access token (JWT, send as 'Authorization: Bearer'), a refresh token for auth_refresh, and the user. Over stdio the session stays logged in for later calls."},
			(*Set).login),
		declare(tool{Name: "auth_refresh", Rule: mcpauth.Credential(),
			Description: "Exchange a refresh token for a new access token and a new refresh token. The old refresh token is spent: presenting it again revokes the whole session."},
			(*Set).refresh),
		declare(tool{Name: "auth_logout", Rule: mcpauth.Credential(), // with a refresh token on its own; otherwise it needs a caller
			Description: "End sessions: the session of refresh_token if given, every session of the caller with all_sessions, otherwise the caller's current session.",
			Destructive: true},
			(*Set).logout),
		declare(tool{Name: "auth_revoke", Rule: mcpauth.Credential(),
			Description: "Revoke an access token or refresh token (RFC 7009). The session it belongs to ends: its access tokens fail validation at once and its refresh tokens stop working.",
			Destructive: true},
			(*Set).revoke),
		declare(tool{Name: "auth_validate", Rule: mcpauth.Public(),
			Description: "Check an access token: signature, issuer, audience, expiry and revocation. Returns its claims, or TOKEN_INVALID / TOKEN_EXPIRED / TOKEN_REVOKED.",
			ReadOnly:    true},
			(*Set).validate),
		declare(tool{Name: "auth_whoami", Rule: mcpauth.Authenticated(),
			Description: "Who the caller is: user, organization, scopes and how the call was authenticated.",
			ReadOnly:    true},
			(*Set).whoami),
		declare(tool{Name: "auth_sessions", Rule: mcpauth.Authenticated(),
			Description: "The caller's active sessions (logins), the current one marked.",
			ReadOnly:    true},
			(*Set).sessions),
	}
}

type loginArgs struct {
	Email      string `json:"email" desc:"Account email (or give username)." max:"identifier"`
	Username   string `json:"username" desc:"Account username (or give email)." max:"identifier"`
	Password   string `json:"password" desc:"Account password." required:"true" max:"password"`
	MFACode    string `json:"mfa_code" desc:"TOTP code or recovery code, for accounts with MFA." max:"mfa_code"`
	RememberMe bool   `json:"remember_me" desc:"Keep the session for the full refresh lifetime (default: at most 24 hours)."`
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
	tokens, u, err := s.auth.Login(ctx, auth.LoginRequest{
		Identifier: identifier, Password: auth.Secret(a.Password), MFACode: auth.Secret(a.MFACode), RememberMe: a.RememberMe,
		Client: clientName(ctx),
	})
	if err != nil {
		return nil, err
	}
	s.bind.bind(ctx, tokens.AccessToken)
	view, err := s.view(ctx, u)
	if err != nil {
		return nil, err
	}
	return loginResult{Tokens: tokens, User: view}, nil
}

func clientName(ctx context.Context) string {
	var name string
	if r := call.From(ctx); r != nil {
		name = r.Transport
	}
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
	RefreshToken string `json:"refresh_token" desc:"The refresh token from auth_login or the last auth_refresh." required:"true" max:"token"`
}

func (s *Set) refresh(ctx context.Context, a refreshArgs) (any, error) {
	tokens, err := s.auth.Refresh(ctx, auth.Secret(a.RefreshToken))
	if err != nil {
		return nil, err
	}
	s.bind.bind(ctx, tokens.AccessToken)
	return tokens, nil
}

type logoutArgs struct {
	RefreshToken  string `json:"refresh_token" desc:"A refresh token whose session to end." max:"token"`
	AllSessions   bool   `json:"all_sessions" desc:"End every session of the caller."`
	RevokeAPIKeys bool   `json:"revoke_api_keys" desc:"With all_sessions: also revoke every API key of the caller."`
}

func (s *Set) logout(ctx context.Context, a logoutArgs) (any, error) {
	if a.RevokeAPIKeys && !a.AllSessions {
		return nil, apierr.Field("revoke_api_keys", "goes with all_sessions: logging out everywhere")
	}
	var caller *token.Claims
	if a.RefreshToken == "" || a.AllSessions { // holding the refresh token is enough on its own
		c, err := callerFrom(ctx)
		if err != nil {
			return nil, err
		}
		caller = &c.Claims
	}
	n, err := s.auth.Logout(ctx, caller, auth.Secret(a.RefreshToken), a.AllSessions)
	if err != nil {
		return nil, err
	}
	if caller != nil {
		s.bind.unbind(ctx)
	}
	out := map[string]any{"revoked": n}
	if a.RevokeAPIKeys {
		keys, err := s.auth.RevokeAPIKeysOf(ctx, caller.Subject)
		if err != nil {
			return nil, err
		}
		out["api_keys_revoked"] = keys
	}
	return out, nil
}

type revokeArgs struct {
	Token string `json:"token" desc:"The access token or refresh token to revoke." required:"true" max:"token"`
}

func (s *Set) revoke(ctx context.Context, a revokeArgs) (any, error) {
	done, err := s.auth.Revoke(ctx, auth.Secret(a.Token))
	if err != nil {
		return nil, err
	}
	return map[string]any{"revoked": done}, nil
}

type validateResult struct {
	Valid bool `json:"valid"`
	token.Claims
}

type validateArgs struct {
	Token string `json:"token" desc:"The access token to check." required:"true" max:"token"`
}

func (s *Set) validate(ctx context.Context, a validateArgs) (any, error) {
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
	ExpiresAt  *time.Time    `json:"expires_at,omitempty"` // absent for an API key that never expires
}

func (s *Set) whoami(ctx context.Context, _ noArgs) (any, error) {
	c, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	view, err := s.view(ctx, c.User)
	if err != nil {
		return nil, err
	}
	r := whoamiResult{User: view, OrgID: c.Claims.OrgID, Scopes: c.Claims.Scopes, AuthMethod: c.AuthMethod,
		SessionID: c.Claims.SessionID}
	if !c.Claims.ExpiresAt.IsZero() {
		r.ExpiresAt = &c.Claims.ExpiresAt
	}
	return r, nil
}

func (s *Set) sessions(ctx context.Context, _ noArgs) (any, error) {
	c, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.auth.Sessions(ctx, c.Claims)
	if err != nil {
		return nil, err
	}
	return map[string]any{"sessions": list}, nil
}

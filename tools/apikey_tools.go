package tools

import (
	"context"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/rbac"
)

func (s *Set) apiKeyTools() []server.ServerTool {
	return []server.ServerTool{
		{Tool: mcp.NewTool("apikey_create",
			mcp.WithDescription("Create an API key for yourself. The key is shown only in this result: store it now. It carries the permissions you give it (a subset of yours) and, on every call, is also held to your own live permissions. Send it as 'Authorization: Bearer mcpk_...' or MCPAUTH_API_KEY. "+
				"A key is a lasting credential: unless you logged in within the last few minutes, pass your password (and mfa_code if MFA is on)."),
			str("name", "What the key is for.", mcp.Required(), mcp.MaxLength(apikey.MaxName)),
			mcp.WithArray("permissions", mcp.Required(), mcp.Description("Permission patterns (resource:action), each within your own permissions."),
				mcp.WithStringItems(mcp.MaxLength(128)), mcp.MinItems(1), mcp.MaxItems(apikey.MaxPermissions)),
			str("expires_at", `When the key stops working (RFC 3339), or "never"; default: 90 days from now (the server's --apikey-ttl).`, mcp.MaxLength(64)),
			stepUpPassword, stepUpMFACode,
			strict, closed,
		), Handler: handler(s, "apikey_create", s.apiKeyCreate)},
		{Tool: mcp.NewTool("apikey_list",
			mcp.WithDescription("Your API keys (never their secrets), with last use, expiry and whether revoked."),
			strict, readOnly, closed,
		), Handler: handler(s, "apikey_list", s.apiKeyList)},
		{Tool: mcp.NewTool("apikey_revoke",
			mcp.WithDescription("Revoke one of your API keys: it stops working at once."),
			str("id", "The key's id (from apikey_create or apikey_list).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			strict, mcp.WithDestructiveHintAnnotation(true), closed,
		), Handler: handler(s, "apikey_revoke", s.apiKeyRevoke)},
	}
}

// userCaller is the caller of a key-management tool: it must be a user's session, not a key
// (else a narrow key could mint a broader one).
func userCaller(ctx context.Context) (Caller, error) {
	c, err := callerFrom(ctx)
	if err != nil {
		return Caller{}, err
	}
	if c.Claims.APIKeyID != "" {
		return Caller{}, apierr.New(apierr.PermissionDenied, "API keys are managed from a user's session, not with an API key")
	}
	return c, nil
}

type apiKeyCreateArgs struct {
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
	ExpiresAt   string   `json:"expires_at"`
	stepUpArgs
}

type apiKeyCreated struct {
	apikey.View
	Key string `json:"key"`
}

func (s *Set) apiKeyCreate(ctx context.Context, a apiKeyCreateArgs) (any, error) {
	if err := requireString("name", a.Name, apikey.MaxName); err != nil {
		return nil, err
	}
	if len(a.Permissions) == 0 || len(a.Permissions) > apikey.MaxPermissions {
		return nil, apierr.Field("permissions", "give 1 to %d permissions", apikey.MaxPermissions)
	}
	for _, p := range a.Permissions {
		if err := rbac.ValidatePattern(p); err != nil {
			return nil, err
		}
	}
	if err := a.stepUpArgs.check(); err != nil {
		return nil, err
	}
	var expires time.Time
	never := a.ExpiresAt == "never"
	if a.ExpiresAt != "" && !never {
		t, err := time.Parse(time.RFC3339, a.ExpiresAt)
		if err != nil {
			return nil, apierr.Field("expires_at", `must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z, or "never"`)
		}
		expires = t
	}
	caller, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	org, _ := callerOrg(caller, "")
	if err := s.noEscalation(ctx, caller, org, a.Permissions); err != nil {
		return nil, err
	}
	if err := s.stepUp(ctx, caller, a.stepUpArgs, "apikey_create"); err != nil {
		return nil, err
	}
	k, key, err := s.auth.CreateAPIKey(ctx, apikey.Request{UserID: caller.User.ID, OrgID: org, Name: a.Name,
		Permissions: a.Permissions, ExpiresAt: expires, NoExpiry: never})
	if err != nil {
		return nil, err
	}
	// The one result that shows the key.
	return apiKeyCreated{View: k.View(k.CreatedAt), Key: key.Reveal()}, nil
}

func (s *Set) apiKeyList(ctx context.Context, _ noArgs) (any, error) {
	caller, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := s.auth.ListAPIKeys(ctx, caller.User.ID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	views := make([]apikey.View, len(keys))
	for i, k := range keys {
		views[i] = k.View(now)
	}
	return map[string]any{"keys": views}, nil
}

func (s *Set) apiKeyRevoke(ctx context.Context, a idArgs) (any, error) {
	if err := requireString("id", a.ID, maxIDArg); err != nil {
		return nil, err
	}
	caller, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	done, err := s.auth.RevokeAPIKey(ctx, caller.User.ID, a.ID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"revoked": done}, nil
}

// stepUpArgs are the optional proof of the user that a credential change takes when the
// caller's login is not recent (auth.Service.StepUp).
type stepUpArgs struct {
	Password string `json:"password"`
	MFACode  string `json:"mfa_code"`
}

var (
	stepUpPassword = str("password", "Your current password: needed unless you logged in within the last few minutes.",
		mcp.MaxLength(password.MaxBytes))
	stepUpMFACode = str("mfa_code", "With password, when MFA is on: a TOTP code or a recovery code.", mcp.MaxLength(maxMFACode))
)

func (a stepUpArgs) check() error {
	if err := maxString("password", a.Password, maxSecretArg); err != nil {
		return err
	}
	if err := maxString("mfa_code", a.MFACode, maxMFACode); err != nil {
		return err
	}
	if a.MFACode != "" && a.Password == "" {
		return apierr.Field("password", "is required with mfa_code")
	}
	return nil
}

// stepUp asks auth for a fresh proof of the caller before a credential change.
func (s *Set) stepUp(ctx context.Context, c Caller, a stepUpArgs, during string) error {
	return s.auth.StepUp(ctx, c.User, c.Claims, auth.Proof{Password: auth.Secret(a.Password), MFACode: auth.Secret(a.MFACode)}, during, false)
}

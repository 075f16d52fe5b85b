package tools

import (
	"context"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	mcpauth "github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

func apiKeyTools() []tool {
	return []tool{
		declare(tool{Name: "apikey_create", Rule: mcpauth.Authenticated(), // own keys, within the caller's permissions
			Description: "Create an API key for yourself. The key is shown only in this result: store it now. It carries the permissions you give it (a subset of yours) and, on every call, is also held to your own live permissions. Send it as 'Authorization: Bearer mcpk_...' or MCPAUTH_API_KEY. " +
				"A key is a lasting credential: unless you logged in within the last few minutes, pass your password (and mfa_code if MFA is on)."},
			(*Set).apiKeyCreate),
		declare(tool{Name: "apikey_list", Rule: mcpauth.Authenticated(),
			Description: "Your API keys (never their secrets), oldest first, with last use, expiry and whether revoked. " +
				"Revoked and expired keys stay listed until you have more than 200 keys; then the oldest of them drop off the list.",
			ReadOnly: true},
			(*Set).apiKeyList),
		declare(tool{Name: "apikey_revoke", Rule: mcpauth.Authenticated(),
			Description: "Revoke one of your API keys: it stops working at once.",
			Destructive: true},
			(*Set).apiKeyRevoke),
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
	Name        string   `json:"name" desc:"What the key is for." required:"true" max:"apikey_name"`
	Permissions []string `json:"permissions" desc:"Permission patterns (resource:action), each within your own permissions." required:"true" min:"1" max:"apikey_permissions" itemmax:"permission"`
	ExpiresAt   string   `json:"expires_at" desc:"When the key stops working (RFC 3339), or \"never\"; default: 90 days from now (the server's --apikey-ttl)." max:"time"`
	stepUpArgs
}

type apiKeyCreated struct {
	apikey.View
	Key string `json:"key"`
}

func (s *Set) apiKeyCreate(ctx context.Context, a apiKeyCreateArgs) (any, error) {
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

type apiKeyRevokeArgs struct {
	ID string `json:"id" desc:"The key's id (from apikey_create or apikey_list)." required:"true" max:"id"`
}

func (s *Set) apiKeyRevoke(ctx context.Context, a apiKeyRevokeArgs) (any, error) {
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
	stepUpPassword
	stepUpMFACode
}

// stepUpPassword is the password of a step-up (mfa_enroll and mfa_confirm take it alone).
type stepUpPassword struct {
	Password string `json:"password" desc:"Your current password: needed unless you logged in within the last few minutes." max:"password"`
}

// stepUpMFACode is the second factor of a step-up, with the password.
type stepUpMFACode struct {
	MFACode string `json:"mfa_code" desc:"With password, when MFA is on: a TOTP code or a recovery code." max:"mfa_code"`
}

func (a stepUpArgs) check() error {
	if a.MFACode != "" && a.Password == "" {
		return apierr.Field("password", "is required with mfa_code")
	}
	return nil
}

// stepUp asks auth for a fresh proof of the caller before a credential change.
func (s *Set) stepUp(ctx context.Context, c Caller, a stepUpArgs, during string) error {
	return s.auth.StepUp(ctx, c.User, c.Claims, auth.Proof{Password: auth.Secret(a.Password), MFACode: auth.Secret(a.MFACode)}, during, false)
}

package tools

import (
	"context"
	"errors"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/rbac"
)

func (s *Set) userTools() []server.ServerTool {
	return []server.ServerTool{
		{Tool: mcp.NewTool("user_create",
			mcp.WithDescription("Create a user in the caller's organization, with roles the caller may grant (no role can carry a permission the caller lacks). The password must be at least 8 characters, at most 72 bytes, and not a common password."),
			str("email", "Email address (unique, case-insensitive).", mcp.Required(), mcp.MaxLength(maxIdentifier)),
			str("username", "Optional username: 3-64 of a-z 0-9 . _ - (unique).", mcp.MaxLength(64)),
			str("password", "Initial password.", mcp.Required(), mcp.MaxLength(password.MaxBytes)),
			str("org_id", "Organization; defaults to the caller's.", mcp.MaxLength(maxIDArg)),
			mcp.WithArray("roles", mcp.Description("Roles in the organization: owner, admin, contributor, viewer, or a custom role."),
				mcp.WithStringItems(mcp.MaxLength(maxIDArg)), mcp.MaxItems(maxListArg)),
			strict, closed,
		), Handler: handler(s, "user_create", s.userCreate)},
		{Tool: mcp.NewTool("user_get",
			mcp.WithDescription("Get a user of the caller's organization by id."),
			str("id", "User id (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			strict, readOnly, closed,
		), Handler: handler(s, "user_get", s.userGet)},
		{Tool: mcp.NewTool("user_list",
			mcp.WithDescription("List users of the caller's organization, in pages."),
			str("filter", "Only users whose email or username starts with this.", mcp.MaxLength(maxIdentifier)),
			mcp.WithNumber("limit", mcp.Description("Page size, 1-200 (default 50)."), mcp.Min(1), mcp.Max(auth.MaxPageSize)),
			str("cursor", "next_cursor from the previous page.", mcp.MaxLength(128)),
			strict, readOnly, closed,
		), Handler: handler(s, "user_list", s.userList)},
		{Tool: mcp.NewTool("user_unlock",
			mcp.WithDescription("Clear a user's login lockout, including the permanent lock after 100 consecutive failures."),
			str("id", "User id (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			strict, closed,
		), Handler: handler(s, "user_unlock", s.userUnlock)},
		{Tool: mcp.NewTool("user_update",
			mcp.WithDescription("Change a user of the caller's organization: its email, username, or whether it is disabled. "+
				"Disabling (needs users:admin) revokes all of the user's sessions and API keys at once; re-enabling lets it log in again. "+
				"Only a user whose permissions the caller holds itself can be changed, and nobody can disable itself."),
			str("id", "User id (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			mcp.WithObject("fields", mcp.Required(),
				mcp.Description("The fields to change, at least one: email, username, disabled."),
				mcp.Properties(map[string]any{
					"email":    map[string]any{"type": "string", "maxLength": maxIdentifier, "description": "New email address (unique, case-insensitive)."},
					"username": map[string]any{"type": "string", "maxLength": 64, "description": "New username: 3-64 of a-z 0-9 . _ - (unique)."},
					"disabled": map[string]any{"type": "boolean", "description": "true disables the account (needs users:admin), false enables it again."},
				}),
				mcp.AdditionalProperties(false), mcp.MinProperties(1)),
			str("password", "Changing your own email: your current password, unless you logged in within the last few minutes.",
				mcp.MaxLength(password.MaxBytes)),
			stepUpMFACode,
			strict, closed,
		), Handler: handler(s, "user_update", s.userUpdate)},
		{Tool: mcp.NewTool("user_delete",
			mcp.WithDescription("Delete a user of the caller's organization: its sessions and API keys are revoked, its second factor and role assignments removed, "+
				"and the account is gone (its email can be used again). With erase, every other stored record of the user goes too; the audit trail stays. "+
				"Only a user whose permissions the caller holds itself can be deleted, and nobody can delete itself."),
			str("id", "User id (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			mcp.WithBoolean("erase", mcp.Description("Also remove every stored record of the user (sessions, refresh tokens, API key records, second factor).")),
			strict, closed,
		), Handler: handler(s, "user_delete", s.userDelete)},
		{Tool: mcp.NewTool("user_set_password",
			mcp.WithDescription("Change the caller's own password (current_password and new_password; the caller's other sessions are revoked), "+
				"or, with users:admin, set another user's (id and new_password; all of its sessions are revoked). "+
				"The new password must be at least 8 characters, at most 72 bytes, and not a common password."),
			str("current_password", "The caller's current password (to change its own).", mcp.MaxLength(password.MaxBytes)),
			str("new_password", "The new password.", mcp.Required(), mcp.MaxLength(password.MaxBytes)),
			str("mfa_code", "Changing your own password with MFA on: a TOTP code or a recovery code.", mcp.MaxLength(maxMFACode)),
			str("id", "Another user's id (usr_...), for an administrator's reset.", mcp.MaxLength(maxIDArg)),
			mcp.WithBoolean("revoke_api_keys", mcp.Description("Also revoke every API key of the user whose password is set.")),
			strict, closed,
		), Handler: handler(s, "user_set_password", s.userSetPassword)},
	}
}

func (s *Set) userUnlock(ctx context.Context, a idArgs) (any, error) {
	u, err := s.callersOrgUser(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	if err := s.auth.Unlock(ctx, u.ID); err != nil {
		return nil, err
	}
	return map[string]any{"unlocked": true}, nil
}

// callersOrgUser checks a user-id argument and returns that user of the caller's organization.
func (s *Set) callersOrgUser(ctx context.Context, id string) (auth.User, error) {
	if err := requireString("id", id, maxIDArg); err != nil {
		return auth.User{}, err
	}
	caller, err := callerFrom(ctx)
	if err != nil {
		return auth.User{}, err
	}
	org, _ := callerOrg(caller, "")
	return s.orgUser(ctx, org, id)
}

// orgUser returns the user id of organization org: other organizations' users do not exist
// for a caller (NOT_FOUND, as an unknown id).
func (s *Set) orgUser(ctx context.Context, org, id string) (auth.User, error) {
	u, err := s.auth.GetUser(ctx, id)
	if err != nil {
		return auth.User{}, err
	}
	if u.OrgID != org {
		return auth.User{}, auth.ErrUserNotFound
	}
	return u, nil
}

// view renders a user with their roles in their organization.
func (s *Set) view(ctx context.Context, u auth.User) (auth.UserView, error) {
	as, err := s.authz.Assignments(ctx, u.ID, u.OrgID)
	if err != nil {
		return auth.UserView{}, err
	}
	roles := []string{}
	for _, a := range as {
		if !slices.Contains(roles, a.Role) {
			roles = append(roles, a.Role)
		}
	}
	return u.View(roles), nil
}

// callerOrg resolves an optional org_id argument: empty means the caller's organization, and
// for now a caller acts only in its own.
func callerOrg(c Caller, orgID string) (string, error) {
	org := c.Claims.OrgID
	if org == "" {
		org = c.User.OrgID
	}
	if orgID != "" && orgID != org {
		return "", apierr.New(apierr.PermissionDenied, "you can only act in your own organization").
			With("org_id", truncate(orgID, maxIDArg))
	}
	return org, nil
}

// rolePermissions returns the union of the permissions of roles in org; an unknown role is
// INVALID_ARGUMENT naming it.
func (s *Set) rolePermissions(ctx context.Context, org, field string, roles []string) ([]string, error) {
	var perms []string
	for _, name := range roles {
		r, err := s.authz.GetRole(ctx, org, name)
		if apierr.CodeOf(err) == apierr.NotFound || errors.Is(err, rbac.ErrNotFound) {
			return nil, apierr.Field(field, "unknown role %q", truncate(name, maxIDArg))
		}
		if err != nil {
			return nil, err
		}
		perms = append(perms, r.Permissions...)
	}
	return perms, nil
}

// noEscalation refuses to hand out (or take back) permissions the caller's credential does not
// hold: unconditionally, org-wide, within its scopes (rbac's rule).
func (s *Set) noEscalation(ctx context.Context, caller Caller, org string, perms []string) error {
	excess, err := s.authz.Excess(ctx, caller.Credential(), org, perms)
	if err != nil {
		return err
	}
	if len(excess) > 0 {
		return apierr.New(apierr.PermissionDenied, "you cannot grant permissions you do not hold").
			With("excess_permissions", excess).With("required_permissions", excess)
	}
	return nil
}

type userCreateArgs struct {
	Email    string   `json:"email"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	OrgID    string   `json:"org_id"`
	Roles    []string `json:"roles"`
}

func (s *Set) userCreate(ctx context.Context, a userCreateArgs) (any, error) {
	if err := requireString("email", a.Email, maxIdentifier); err != nil {
		return nil, err
	}
	if err := requireString("password", a.Password, maxSecretArg); err != nil {
		return nil, err
	}
	if err := maxString("username", a.Username, maxIdentifier); err != nil {
		return nil, err
	}
	if err := maxString("org_id", a.OrgID, maxIDArg); err != nil {
		return nil, err
	}
	if len(a.Roles) > maxListArg {
		return nil, apierr.Field("roles", "at most %d roles", maxListArg)
	}
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, err := callerOrg(caller, a.OrgID)
	if err != nil {
		return nil, err
	}
	perms, err := s.rolePermissions(ctx, org, "roles", a.Roles)
	if err != nil {
		return nil, err
	}
	if err := s.noEscalation(ctx, caller, org, perms); err != nil {
		return nil, err
	}
	u, err := s.auth.CreateUser(ctx, auth.NewUser{Email: a.Email, Username: a.Username,
		Password: auth.Secret(a.Password), OrgID: org, Provision: AssignRoles(s.authz, a.Roles)})
	if err != nil {
		return nil, err
	}
	view, err := s.view(ctx, u)
	if err != nil {
		return nil, err
	}
	return map[string]any{"user": view}, nil
}

// AssignRoles returns a provisioning step that gives a new user roles in its organization (for
// auth.NewUser.Provision; the CLI and the bootstrap use it too).
func AssignRoles(z interface {
	Assign(ctx context.Context, a rbac.Assignment) error
}, roles []string) func(context.Context, auth.User) error {
	return func(ctx context.Context, u auth.User) error {
		for _, r := range roles {
			err := z.Assign(ctx, rbac.Assignment{UserID: u.ID, OrgID: u.OrgID, Role: r})
			if err != nil && apierr.CodeOf(err) != apierr.Conflict { // asked twice: once is enough
				return err
			}
		}
		return nil
	}
}

type idArgs struct {
	ID string `json:"id"`
}

func (s *Set) userGet(ctx context.Context, a idArgs) (any, error) {
	u, err := s.callersOrgUser(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	view, err := s.view(ctx, u)
	if err != nil {
		return nil, err
	}
	return map[string]any{"user": view}, nil
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
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, _ := callerOrg(caller, "")
	users, next, err := s.auth.ListUsers(ctx, a.Filter, org, limit, a.Cursor)
	if err != nil {
		return nil, err
	}
	views := make([]auth.UserView, len(users))
	for i, u := range users {
		if views[i], err = s.view(ctx, u); err != nil {
			return nil, err
		}
	}
	return map[string]any{"users": views, "next_cursor": next}, nil
}

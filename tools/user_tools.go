package tools

import (
	"context"
	"errors"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	mcpauth "github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

func userTools() []tool {
	return []tool{
		declare(tool{Name: "user_create", Rule: mcpauth.Require("users:write"),
			Description: "Create a user in the caller's organization, with roles the caller may grant (no role can carry a permission the caller lacks). The password must be at least 8 characters, at most 72 bytes, and not a common password."},
			(*Set).userCreate),
		declare(tool{Name: "user_get", Rule: mcpauth.Require("users:read"),
			Description: "Get a user of the caller's organization by id.",
			ReadOnly:    true},
			(*Set).userGet),
		declare(tool{Name: "user_list", Rule: mcpauth.Require("users:read"),
			Description: "List users of the caller's organization, in pages, in order of creation. " +
				"Follow next_cursor until it is empty: with a filter, a page may hold fewer users than limit (each call reads a bounded part of the directory) and still have a next one.",
			ReadOnly: true},
			(*Set).userList),
		declare(tool{Name: "user_unlock", Rule: mcpauth.Require("users:admin"),
			Description: "Clear a user's login lockout, including the permanent lock after 100 consecutive failures."},
			(*Set).userUnlock),
		declare(tool{Name: "user_update", Rule: mcpauth.Require("users:write"), // disabling needs users:admin, checked by the tool
			Description: "Change a user of the caller's organization: its email, username, or whether it is disabled. " +
				"Disabling (needs users:admin) revokes all of the user's sessions and API keys at once; re-enabling lets it log in again. " +
				"Only a user whose permissions the caller holds itself can be changed, and nobody can disable itself."},
			(*Set).userUpdate),
		declare(tool{Name: "user_delete", Rule: mcpauth.Require("users:admin"),
			Description: "Delete a user of the caller's organization: its sessions and API keys are revoked, its second factor and role assignments removed, " +
				"and the account is gone (its email can be used again). With erase, every other stored record of the user goes too; the audit trail stays. " +
				"Only a user whose permissions the caller holds itself can be deleted, and nobody can delete itself."},
			(*Set).userDelete),
		// One's own password (with the current one); another user's needs users:admin, checked
		// by the tool.
		declare(tool{Name: "user_set_password", Rule: mcpauth.Authenticated(),
			Description: "Change the caller's own password (current_password and new_password; the caller's other sessions are revoked), " +
				"or, with users:admin, set another user's (id and new_password; all of its sessions are revoked). " +
				"The new password must be at least 8 characters, at most 72 bytes, and not a common password."},
			(*Set).userSetPassword),
	}
}

func (s *Set) userUnlock(ctx context.Context, a userIDArgs) (any, error) {
	u, err := s.callersOrgUser(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	if err := s.auth.Unlock(ctx, u.ID); err != nil {
		return nil, err
	}
	return map[string]any{"unlocked": true}, nil
}

// callersOrgUser returns user id of the caller's organization.
func (s *Set) callersOrgUser(ctx context.Context, id string) (auth.User, error) {
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
	Email    string `json:"email" desc:"Email address (unique, case-insensitive)." required:"true" max:"identifier"`
	Username string `json:"username" desc:"Optional username: 3-64 of a-z 0-9 . _ - (unique)." max:"username"`
	Password string `json:"password" desc:"Initial password." required:"true" max:"password"`
	orgArgs
	Roles []string `json:"roles" desc:"Roles in the organization: owner, admin, contributor, viewer, or a custom role." max:"list" itemmax:"id"`
}

func (s *Set) userCreate(ctx context.Context, a userCreateArgs) (any, error) {
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

// userIDArgs name a user of the caller's organization.
type userIDArgs struct {
	ID string `json:"id" desc:"User id (usr_...)." required:"true" max:"id"`
}

func (s *Set) userGet(ctx context.Context, a userIDArgs) (any, error) {
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
	Filter string `json:"filter" desc:"Only users whose email or username starts with this." max:"identifier"`
	Limit  *int   `json:"limit" desc:"Page size, 1-200 (default 50)." min:"1" max:"page_size"`
	Cursor string `json:"cursor" desc:"next_cursor from the previous page." max:"user_cursor"`
}

// viewsInFlight bounds the role reads one user_list page has in flight.
const viewsInFlight = 8

func (s *Set) userList(ctx context.Context, a userListArgs) (any, error) {
	limit := 0
	if a.Limit != nil {
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
	// Each user's roles are their own read (two _id look-ups): a few at a time, so a page of 50
	// costs about what seven users read one after the other do.
	views := make([]auth.UserView, len(users))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(viewsInFlight)
	for i, u := range users {
		g.Go(func() (err error) {
			views[i], err = s.view(gctx, u)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return map[string]any{"users": views, "next_cursor": next}, nil
}

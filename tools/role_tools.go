package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/rbac"
)

func (s *Set) roleTools() []server.ServerTool {
	orgArg := str("org_id", "Organization; defaults to the caller's.", mcp.MaxLength(maxIDArg))
	return []server.ServerTool{
		{Tool: mcp.NewTool("role_create",
			mcp.WithDescription("Create a custom role in the caller's organization: a name and permission patterns (resource:action, '*' as a whole part or trailing, e.g. projects:read, tasks:*). You can only put permissions you hold yourself into a role. Optional conditions restrict every grant of the role."),
			str("name", "Role name: lower-case letters, digits, '_' or '-', 2-64 characters; not a built-in name.", mcp.Required(), mcp.MaxLength(maxIDArg)),
			mcp.WithArray("permissions", mcp.Required(), mcp.Description("Permission patterns the role grants."),
				mcp.WithStringItems(mcp.MaxLength(128)), mcp.MinItems(1), mcp.MaxItems(maxListArg)),
			str("description", "What the role is for.", mcp.MaxLength(256)),
			orgArg,
			mcp.WithObject("conditions", mcp.Description(`Policy conditions, all of which must hold: {"owner_only": true} (the caller owns the resource), {"source_cidrs": ["10.0.0.0/8"]}, {"time_window": {"start": "09:00", "end": "17:00", "weekdays": ["mon","tue"]}} (UTC).`)),
			strict, closed,
		), Handler: handler(s, "role_create", s.roleCreate)},
		{Tool: mcp.NewTool("role_list",
			mcp.WithDescription("List the roles of an organization: the built-in ones (owner, admin, contributor, viewer) and custom ones, with their permissions."),
			orgArg, strict, readOnly, closed,
		), Handler: handler(s, "role_list", s.roleList)},
		{Tool: mcp.NewTool("role_delete",
			mcp.WithDescription("Delete a custom role and every assignment of it. Built-in roles cannot be deleted, and you can only delete roles whose permissions you hold yourself."),
			str("id", "The role's name.", mcp.Required(), mcp.MaxLength(maxIDArg)),
			orgArg, strict, mcp.WithDestructiveHintAnnotation(true), closed,
		), Handler: handler(s, "role_delete", s.roleDelete)},
		{Tool: mcp.NewTool("role_assign",
			mcp.WithDescription("Give a user a role in an organization. You can only assign roles whose permissions you hold yourself."),
			str("user_id", "The user (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			str("role", "The role's name.", mcp.Required(), mcp.MaxLength(maxIDArg)),
			orgArg, strict, closed,
		), Handler: handler(s, "role_assign", s.roleAssign)},
		{Tool: mcp.NewTool("role_revoke",
			mcp.WithDescription("Take a role away from a user. You can only revoke roles whose permissions you hold yourself."),
			str("user_id", "The user (usr_...).", mcp.Required(), mcp.MaxLength(maxIDArg)),
			str("role", "The role's name.", mcp.Required(), mcp.MaxLength(maxIDArg)),
			orgArg, strict, mcp.WithDestructiveHintAnnotation(true), closed,
		), Handler: handler(s, "role_revoke", s.roleRevoke)},
		{Tool: mcp.NewTool("permission_check",
			mcp.WithDescription("Would this user (default: you) be allowed resource:action? Returns the decision with its reason and the permissions involved. Checking another user needs users:read."),
			str("resource", "Resource, e.g. projects.", mcp.Required(), mcp.MaxLength(maxIDArg)),
			str("action", "Action, e.g. delete.", mcp.Required(), mcp.MaxLength(maxIDArg)),
			str("user_id", "The user; defaults to you.", mcp.MaxLength(maxIDArg)),
			orgArg,
			str("project_id", "Project, for project-scoped roles.", mcp.MaxLength(maxIDArg)),
			strict, readOnly, closed,
		), Handler: handler(s, "permission_check", s.permissionCheck)},
		{Tool: mcp.NewTool("permission_list",
			mcp.WithDescription("The permissions a user (default: you) holds in an organization, from roles and direct grants. Listing another user's needs users:read."),
			str("user_id", "The user; defaults to you.", mcp.MaxLength(maxIDArg)),
			orgArg, strict, readOnly, closed,
		), Handler: handler(s, "permission_list", s.permissionList)},
	}
}

type roleCreateArgs struct {
	Name        string           `json:"name"`
	Permissions []string         `json:"permissions"`
	Description string           `json:"description"`
	OrgID       string           `json:"org_id"`
	Conditions  *rbac.Conditions `json:"conditions"`
}

func (s *Set) roleCreate(ctx context.Context, a roleCreateArgs) (any, error) {
	if err := requireString("name", a.Name, maxIDArg); err != nil {
		return nil, err
	}
	if len(a.Permissions) == 0 || len(a.Permissions) > maxListArg {
		return nil, apierr.Field("permissions", "give 1 to %d permissions", maxListArg)
	}
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, err := callerOrg(caller, a.OrgID)
	if err != nil {
		return nil, err
	}
	for _, p := range a.Permissions {
		if err := rbac.ValidatePattern(p); err != nil {
			return nil, err
		}
	}
	if err := s.noEscalation(ctx, caller, org, a.Permissions); err != nil {
		return nil, err
	}
	r := rbac.Role{OrgID: org, Name: a.Name, Description: a.Description, Permissions: a.Permissions}
	if a.Conditions != nil {
		r.Conditions = *a.Conditions
	}
	created, err := s.authz.CreateRole(ctx, r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"role": roleView(created)}, nil
}

// roleView renders a role with its id (its name: roles are named within an organization).
func roleView(r rbac.Role) map[string]any {
	v := map[string]any{"id": r.Name, "name": r.Name, "org_id": r.OrgID, "permissions": r.Permissions,
		"built_in": r.BuiltIn, "description": r.Description}
	if r.Conditions.OwnerOnly || len(r.Conditions.SourceCIDRs) > 0 || r.Conditions.TimeWindow != nil {
		v["conditions"] = r.Conditions
	}
	if !r.CreatedAt.IsZero() {
		v["created_at"] = r.CreatedAt
	}
	return v
}

type orgArgs struct {
	OrgID string `json:"org_id"`
}

func (s *Set) roleList(ctx context.Context, a orgArgs) (any, error) {
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, err := callerOrg(caller, a.OrgID)
	if err != nil {
		return nil, err
	}
	roles, err := s.authz.ListRoles(ctx, org)
	if err != nil {
		return nil, err
	}
	views := make([]map[string]any, len(roles))
	for i, r := range roles {
		views[i] = roleView(r)
	}
	return map[string]any{"roles": views}, nil
}

type roleDeleteArgs struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
}

func (s *Set) roleDelete(ctx context.Context, a roleDeleteArgs) (any, error) {
	if err := requireString("id", a.ID, maxIDArg); err != nil {
		return nil, err
	}
	if rbac.IsBuiltinRole(a.ID) { // rbac names the field "name"; this tool's argument is "id"
		return nil, apierr.Field("id", "the built-in role %q cannot be deleted", a.ID)
	}
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, err := callerOrg(caller, a.OrgID)
	if err != nil {
		return nil, err
	}
	// Deleting a role takes its permissions from everyone who holds it: only a caller that holds
	// them all may (as role_revoke).
	r, err := s.authz.GetRole(ctx, org, a.ID)
	if err != nil {
		return nil, err
	}
	if err := s.noEscalation(ctx, caller, org, r.Permissions); err != nil {
		return nil, err
	}
	if err := s.authz.DeleteRole(ctx, org, a.ID); err != nil {
		return nil, err
	}
	return map[string]any{"deleted": true}, nil
}

type roleAssignArgs struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
	OrgID  string `json:"org_id"`
}

// assignment checks the arguments of role_assign/role_revoke: the user exists in the org, the
// role exists, and the caller holds every permission of the role.
func (s *Set) assignment(ctx context.Context, a roleAssignArgs) (rbac.Assignment, error) {
	if err := requireString("user_id", a.UserID, maxIDArg); err != nil {
		return rbac.Assignment{}, err
	}
	if err := requireString("role", a.Role, maxIDArg); err != nil {
		return rbac.Assignment{}, err
	}
	caller, err := callerFrom(ctx)
	if err != nil {
		return rbac.Assignment{}, err
	}
	org, err := callerOrg(caller, a.OrgID)
	if err != nil {
		return rbac.Assignment{}, err
	}
	u, err := s.orgUser(ctx, org, a.UserID)
	if err != nil {
		return rbac.Assignment{}, err
	}
	perms, err := s.rolePermissions(ctx, org, "role", []string{a.Role})
	if err != nil {
		return rbac.Assignment{}, err
	}
	if err := s.noEscalation(ctx, caller, org, perms); err != nil {
		return rbac.Assignment{}, err
	}
	return rbac.Assignment{UserID: u.ID, OrgID: org, Role: a.Role}, nil
}

func (s *Set) roleAssign(ctx context.Context, a roleAssignArgs) (any, error) {
	as, err := s.assignment(ctx, a)
	if err != nil {
		return nil, err
	}
	if err := s.authz.Assign(ctx, as); err != nil {
		return nil, err
	}
	return map[string]any{"ok": true}, nil
}

func (s *Set) roleRevoke(ctx context.Context, a roleAssignArgs) (any, error) {
	as, err := s.assignment(ctx, a)
	if err != nil {
		return nil, err
	}
	if err := s.authz.Unassign(ctx, as); err != nil {
		return nil, err
	}
	return map[string]any{"ok": true}, nil
}

// subject resolves an optional user_id: the caller by default; anyone else in the caller's
// organization only for a caller allowed users:read.
func (s *Set) subject(ctx context.Context, userID, orgID string) (string, string, error) {
	caller, err := callerFrom(ctx)
	if err != nil {
		return "", "", err
	}
	org, err := callerOrg(caller, orgID)
	if err != nil {
		return "", "", err
	}
	if userID == "" || userID == caller.User.ID {
		return caller.User.ID, org, nil
	}
	if err := s.requirePermission(ctx, caller, org, "users:read", "looking at another user's permissions needs users:read"); err != nil {
		return "", "", err
	}
	u, err := s.orgUser(ctx, org, userID)
	if err != nil {
		return "", "", err
	}
	return u.ID, org, nil
}

type permissionCheckArgs struct {
	Resource  string `json:"resource"`
	Action    string `json:"action"`
	UserID    string `json:"user_id"`
	OrgID     string `json:"org_id"`
	ProjectID string `json:"project_id"`
}

func (s *Set) permissionCheck(ctx context.Context, a permissionCheckArgs) (any, error) {
	if err := requireString("resource", a.Resource, maxIDArg); err != nil {
		return nil, err
	}
	if err := requireString("action", a.Action, maxIDArg); err != nil {
		return nil, err
	}
	if err := maxString("user_id", a.UserID, maxIDArg); err != nil {
		return nil, err
	}
	if err := maxString("project_id", a.ProjectID, maxIDArg); err != nil {
		return nil, err
	}
	if err := rbac.ValidatePattern(a.Resource + ":" + a.Action); err != nil {
		return nil, apierr.Field("resource", "resource and action must be plain names (letters, digits, '.', '_', '-')")
	}
	subject, org, err := s.subject(ctx, a.UserID, a.OrgID)
	if err != nil {
		return nil, err
	}
	r := rbac.Request{Subject: subject, Resource: a.Resource, Action: a.Action, OrgID: org,
		ProjectID: a.ProjectID, Attributes: rbac.Attributes{SourceIP: call.ClientAddr(ctx)}}
	var d rbac.Decision
	if caller, _ := callerFrom(ctx); subject == caller.User.ID {
		d = s.authz.Decide(ctx, caller.Credential(), r) // what this very credential may do
	} else {
		d = s.authz.Authorize(ctx, r) // what that user's roles allow
	}
	granted := d.Granted
	if granted == nil {
		granted = []string{}
	}
	return map[string]any{"allowed": d.Allowed, "reason": d.Reason, "granted_permissions": granted,
		"required_permissions": d.Required, "user_id": subject, "org_id": org}, nil
}

type permissionListArgs struct {
	UserID string `json:"user_id"`
	OrgID  string `json:"org_id"`
}

func (s *Set) permissionList(ctx context.Context, a permissionListArgs) (any, error) {
	if err := maxString("user_id", a.UserID, maxIDArg); err != nil {
		return nil, err
	}
	subject, org, err := s.subject(ctx, a.UserID, a.OrgID)
	if err != nil {
		return nil, err
	}
	perms, err := s.authz.Permissions(ctx, subject, org, "")
	if err != nil {
		return nil, err
	}
	if perms == nil {
		perms = []string{}
	}
	return map[string]any{"permissions": perms, "user_id": subject, "org_id": org}, nil
}

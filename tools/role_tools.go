package tools

import (
	"context"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/call"
	mcpauth "github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

func roleTools() []tool {
	return []tool{
		declare(tool{Name: "role_create", Rule: mcpauth.Require("users:admin", "roles:write"),
			Description: "Create a custom role in the caller's organization: a name and permission patterns (resource:action, '*' as a whole part or trailing, e.g. projects:read, tasks:*). You can only put permissions you hold yourself into a role. Optional conditions restrict every grant of the role."},
			(*Set).roleCreate),
		declare(tool{Name: "role_list", Rule: mcpauth.Require("users:read", "roles:read"),
			Description: "List the roles of an organization: the built-in ones (owner, admin, contributor, viewer) and custom ones, with their permissions.",
			ReadOnly:    true},
			(*Set).roleList),
		declare(tool{Name: "role_delete", Rule: mcpauth.Require("users:admin", "roles:delete"),
			Description: "Delete a custom role and every assignment of it. Built-in roles cannot be deleted, and you can only delete roles whose permissions you hold yourself.",
			Destructive: true},
			(*Set).roleDelete),
		declare(tool{Name: "role_assign", Rule: mcpauth.Require("users:admin", "roles:assign"),
			Description: "Give a user a role in an organization. You can only assign roles whose permissions you hold yourself."},
			(*Set).roleAssign),
		declare(tool{Name: "role_revoke", Rule: mcpauth.Require("users:admin", "roles:assign"),
			Description: "Take a role away from a user. You can only revoke roles whose permissions you hold yourself.",
			Destructive: true},
			(*Set).roleRevoke),
		declare(tool{Name: "permission_check", Rule: mcpauth.Authenticated(), // another user's: users:read, checked by the tool
			Description: "Would this user (default: you) be allowed resource:action? Returns the decision with its reason and the permissions involved. Checking another user needs users:read.",
			ReadOnly:    true},
			(*Set).permissionCheck),
		declare(tool{Name: "permission_list", Rule: mcpauth.Authenticated(), // another user's: users:read, checked by the tool
			Description: "The permissions a user (default: you) holds in an organization, from roles and direct grants. Listing another user's needs users:read.",
			ReadOnly:    true},
			(*Set).permissionList),
	}
}

// orgArgs are the organization a tool acts in.
type orgArgs struct {
	OrgID string `json:"org_id" desc:"Organization; defaults to the caller's." max:"id"`
}

type roleCreateArgs struct {
	Name        string   `json:"name" desc:"Role name: lower-case letters, digits, '_' or '-', 2-64 characters; not a built-in name." required:"true" max:"id"`
	Permissions []string `json:"permissions" desc:"Permission patterns the role grants." required:"true" min:"1" max:"role_permissions" itemmax:"permission"`
	Description string   `json:"description" desc:"What the role is for." max:"role_description"`
	orgArgs
	Conditions *rbac.Conditions `json:"conditions" desc:"Policy conditions, all of which must hold: {\"owner_only\": true} (the caller owns the resource), {\"source_cidrs\": [\"10.0.0.0/8\"]}, {\"time_window\": {\"start\": \"09:00\", \"end\": \"17:00\", \"weekdays\": [\"mon\",\"tue\"]}} (UTC)."`
}

func (s *Set) roleCreate(ctx context.Context, a roleCreateArgs) (any, error) {
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
	ID string `json:"id" desc:"The role's name." required:"true" max:"id"`
	orgArgs
}

func (s *Set) roleDelete(ctx context.Context, a roleDeleteArgs) (any, error) {
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
	UserID string `json:"user_id" desc:"The user (usr_...)." required:"true" max:"id"`
	Role   string `json:"role" desc:"The role's name." required:"true" max:"id"`
	orgArgs
}

// assignment checks the arguments of role_assign/role_revoke: the user exists in the org, the
// role exists, and the caller holds every permission of the role.
func (s *Set) assignment(ctx context.Context, a roleAssignArgs) (rbac.Assignment, error) {
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
	Resource string `json:"resource" desc:"Resource, e.g. projects." required:"true" max:"id"`
	Action   string `json:"action" desc:"Action, e.g. delete." required:"true" max:"id"`
	subjectArgs
	ProjectID string `json:"project_id" desc:"Project, for project-scoped roles." max:"id"`
}

func (s *Set) permissionCheck(ctx context.Context, a permissionCheckArgs) (any, error) {
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

// subjectArgs are whose permissions permission_check and permission_list look at.
type subjectArgs struct {
	UserID string `json:"user_id" desc:"The user; defaults to you." max:"id"`
	orgArgs
}

func (s *Set) permissionList(ctx context.Context, a subjectArgs) (any, error) {
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

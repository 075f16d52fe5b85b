package tools

import (
	"context"
	"log/slog"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/rbac"
)

// Authorizer is what the tools need of rbac. Every check of what the caller may do goes
// through rbac's effective-permission rule (Decide, Excess, ExcessOver) with the caller's
// credential; Authorize answers for another subject's live grants (permission_check).
type Authorizer interface {
	Decide(ctx context.Context, c rbac.Credential, r rbac.Request) rbac.Decision
	Authorize(ctx context.Context, r rbac.Request) rbac.Decision
	Permissions(ctx context.Context, userID, orgID, projectID string) ([]string, error)
	Assignments(ctx context.Context, userID, orgID string) ([]rbac.Assignment, error)
	GetRole(ctx context.Context, orgID, name string) (rbac.Role, error)
	ListRoles(ctx context.Context, orgID string) ([]rbac.Role, error)
	CreateRole(ctx context.Context, r rbac.Role) (rbac.Role, error)
	DeleteRole(ctx context.Context, orgID, name string) error
	Assign(ctx context.Context, a rbac.Assignment) error
	Unassign(ctx context.Context, a rbac.Assignment) error
	EraseUser(ctx context.Context, userID string) error
	Excess(ctx context.Context, c rbac.Credential, orgID string, perms []string) ([]string, error)
	ExcessOver(ctx context.Context, c rbac.Credential, orgID, targetID string) ([]string, error)
}

// Set is mcpauth's tool set, bound to its services.
type Set struct {
	auth  *auth.Service
	authz Authorizer
	log   *slog.Logger
	bind  *bindings
	audit AuditReader
	sso   SSO // nil: single sign-on is not set up
}

// New returns the tool set over the auth service, the authorizer and the audit trail (nil: the
// audit tools answer that there is none).
func New(a *auth.Service, z Authorizer, trail AuditReader, logger *slog.Logger) *Set {
	if logger == nil {
		logger = slog.Default()
	}
	return &Set{auth: a, authz: z, audit: trail, log: logger, bind: &bindings{tokens: map[string]auth.Secret{}}}
}

// Credential is the credential of a call: the stdio session's login first, then the
// transport's bearer token. The guard uses it to see stdio logins.
func (s *Set) Credential(ctx context.Context) (auth.Secret, string) { return s.bind.credential(ctx) }

package tools

import (
	"context"
	"errors"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/call"
	mcpauth "github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

// AuditReader is what the audit tools need of the trail.
type AuditReader interface {
	Query(ctx context.Context, q audit.Query) ([]audit.Event, string, error)
	VerifyOrg(ctx context.Context, since time.Time, orgID string, progress func(checked int64)) (audit.VerifyResult, error)
}

// ReadAllPermission is the deployment-level audit permission: the whole trail, every
// organization's events and those of none (a failed login for an unknown account). No built-in
// role carries it; the bootstrap owner of the default organization holds it as a direct grant.
const ReadAllPermission = "audit:read_all"

// auditScope is the organization whose events the caller may read, or "" for the whole trail
// (a caller whose credential holds audit:read_all).
func (s *Set) auditScope(ctx context.Context) (string, error) {
	caller, err := callerFrom(ctx)
	if err != nil {
		return "", err
	}
	org, _ := callerOrg(caller, "")
	d := s.authz.Decide(ctx, caller.Credential(), rbac.Request{Resource: "audit", Action: "read_all", OrgID: org,
		Attributes: rbac.Attributes{SourceIP: call.ClientAddr(ctx)}})
	if d.Allowed {
		return "", nil
	}
	return org, nil
}

func scopeName(org string) string {
	if org == "" {
		return "deployment"
	}
	return "organization"
}

func auditTools() []tool {
	return []tool{
		declare(tool{Name: "audit_query", Rule: mcpauth.Require("audit:read"),
			Description: "Security events of your organization (of the whole deployment with audit:read_all), newest first, in pages: logins and failures, token and key events, MFA, role changes, authorization decisions.",
			ReadOnly:    true},
			(*Set).auditQuery),
		declare(tool{Name: "audit_verify", Rule: mcpauth.Require("audit:read"),
			Description: "Walk the tamper-evident hash chains of the audit trail and report the first broken link (an edited, deleted or reordered event).",
			ReadOnly:    true},
			(*Set).auditVerify),
	}
}

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, apierr.Field(field, "must be an RFC 3339 time, e.g. 2026-11-30T00:00:00Z")
	}
	return t, nil
}

type auditQueryArgs struct {
	Type   string `json:"type" desc:"Only events of this type, e.g. AUTH_FAILED." max:"id"`
	UserID string `json:"user_id" desc:"Only events about this user." max:"id"`
	Since  string `json:"since" desc:"Only events at or after this time (RFC 3339)." max:"time"`
	Until  string `json:"until" desc:"Only events before this time (RFC 3339)." max:"time"`
	Limit  *int   `json:"limit" desc:"Page size, 1-500 (default 50)." min:"1" max:"audit_page_size"`
	Cursor string `json:"cursor" desc:"next_cursor from the previous page." max:"audit_cursor"`
}

func (s *Set) auditQuery(ctx context.Context, a auditQueryArgs) (any, error) {
	since, err := parseTime("since", a.Since)
	if err != nil {
		return nil, err
	}
	until, err := parseTime("until", a.Until)
	if err != nil {
		return nil, err
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return nil, apierr.Field("until", "must not be before since")
	}
	q := audit.Query{Type: a.Type, Subject: a.UserID, Since: since, Until: until, Cursor: a.Cursor}
	if a.Limit != nil {
		q.Limit = *a.Limit
	}
	// An organization's auditors read its events only; the deployment's (audit:read_all) read
	// everything, events of no organization included.
	org, err := s.auditScope(ctx)
	if err != nil {
		return nil, err
	}
	q.OrgID = org
	if s.audit == nil {
		return nil, apierr.New(apierr.Internal, "the audit trail is not configured")
	}
	events, next, err := s.audit.Query(ctx, q)
	if errors.Is(err, audit.ErrInvalidQuery) { // the arguments are checked above: the cursor is bad
		return nil, apierr.Field("cursor", "is not a next_cursor returned by audit_query")
	}
	if errors.Is(err, audit.ErrSearchTooLong) {
		return nil, apierr.New(apierr.Internal, "the search ran out of time: on the embedded store a search reads every stored event; "+
			"keep fewer (--audit-retention) or store them in MongoDB (MCPAUTH_MONGO_URI)")
	}
	if err != nil {
		return nil, err
	}
	if events == nil {
		events = []audit.Event{}
	}
	return map[string]any{"events": events, "next_cursor": next, "scope": scopeName(org)}, nil
}

type auditVerifyArgs struct {
	Since string `json:"since" desc:"Only check from this time (RFC 3339); default: everything." max:"time"`
}

func (s *Set) auditVerify(ctx context.Context, a auditVerifyArgs) (any, error) {
	since, err := parseTime("since", a.Since)
	if err != nil {
		return nil, err
	}
	org, err := s.auditScope(ctx)
	if err != nil {
		return nil, err
	}
	if s.audit == nil {
		return nil, apierr.New(apierr.Internal, "the audit trail is not configured")
	}
	res, err := s.audit.VerifyOrg(ctx, since, org, nil)
	if err != nil {
		return nil, err
	}
	return struct {
		audit.VerifyResult
		Scope string `json:"scope"`
	}{res, scopeName(org)}, nil
}

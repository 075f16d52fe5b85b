package rbac

// The effective-permission rule, implemented once: what a call may do is the credential's scopes
// (an access token's scope, an API key's permissions) ∩ the subject's live grants in the
// organization and project, with conditions then evaluated for the request. Handing out,
// taking back or administering permissions ("you cannot grant what you do not hold") counts
// only what the subject holds unconditionally, org-wide, within the credential's scopes: a
// grant that holds only from some address or at some hour would otherwise be copied, without
// its conditions, into a role of one's own.

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/bduf/mcpauth/apierr"
)

// Credential is the authority a call acts with: whose it is, and the scopes it was narrowed to.
// The zero value allows nothing.
type Credential struct {
	Subject string
	// Scopes are the credential's permission patterns: an access token's scope claim, or an API
	// key's permissions. A permission no scope covers is not held, whatever the roles say.
	Scopes []string
	// AllScopes is the subject's whole authority: for the operator's CLI and provisioning,
	// never for a request (a request's credential always has its scopes).
	AllScopes bool
}

// ScopesAllow reports whether one of scopes grants the permission resource:action, as Match
// does (it is Match without building the permission string: nothing is allocated for a
// permission without '*', which the guard's per-call path relies on).
func ScopesAllow(scopes []string, resource, action string) bool {
	if resource == "" || action == "" || strings.IndexByte(resource, ':') >= 0 || strings.IndexByte(action, ':') >= 0 {
		return false // not a permission: matches nothing (fail closed, as Match)
	}
	if strings.IndexByte(resource, '*') >= 0 || strings.IndexByte(action, '*') >= 0 {
		perm := resource + ":" + action
		return slices.ContainsFunc(scopes, func(s string) bool { return Covers(s, perm) })
	}
	for _, s := range scopes {
		pr, pa := splitPattern(s)
		if matchPart(pr, resource) && matchPart(pa, action) {
			return true
		}
	}
	return false
}

// Decide applies the effective-permission rule to one request: allowed iff c's scopes include
// r's permission and c.Subject's live grants allow it in r's organization and project, their
// conditions holding for r.Attributes. r.Subject is taken from c. Never an error: anything that
// goes wrong is a deny (see Authorize).
func (a *Authorizer) Decide(ctx context.Context, c Credential, r Request) Decision {
	r.Subject = c.Subject
	if !c.AllScopes && !ScopesAllow(c.Scopes, r.Resource, r.Action) {
		required := r.Resource + ":" + r.Action
		return Decision{Reason: "the credential's scopes do not include " + clip(required),
			Required: []string{required}, Granted: noneGranted}
	}
	return a.Authorize(ctx, r)
}

// Excess returns those of perms that c does not hold, in their order, without duplicates: what
// c may not hand out (to a user, a role, an API key) or take back. A pattern is held when one
// of c's scopes Covers it and one of c.Subject's unconditional patterns in orgID Covers it
// (org-wide: project assignments do not count). An invalid pattern is always excess.
func (a *Authorizer) Excess(ctx context.Context, c Credential, orgID string, perms []string) ([]string, error) {
	if c.Subject == "" {
		return nil, apierr.Field("user_id", "is required")
	}
	gs, err := a.grantSet(ctx, a.stamp(), a.subjectVersion(c.Subject), scopeKey{subject: c.Subject, org: orgID})
	if err != nil {
		return nil, apierr.Internalf("permissions: %w", err)
	}
	out := []string{}
	for _, p := range perms {
		if slices.Contains(out, p) || c.holds(gs.held, p) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func (c Credential) holds(held []string, p string) bool {
	covered := func(h string) bool { return Covers(h, p) }
	return (c.AllScopes || slices.ContainsFunc(c.Scopes, covered)) && slices.ContainsFunc(held, covered)
}

// ExcessOver returns the patterns target holds in orgID that c does not hold (as Excess):
// c may administer target (change, disable, delete, reset it, read its permissions' detail)
// only when there are none. Everything target holds counts: org-wide, in any project, and
// under conditions (what a user may hold in some place or hour is still theirs).
func (a *Authorizer) ExcessOver(ctx context.Context, c Credential, orgID, targetID string) ([]string, error) {
	held, err := a.heldAnywhere(ctx, targetID, orgID)
	if err != nil {
		return nil, err
	}
	return a.Excess(ctx, c, orgID, held)
}

// heldAnywhere is every pattern userID holds in orgID: its direct grants and the permissions
// of every role assigned to it there, org-wide or in a project, conditional or not.
func (a *Authorizer) heldAnywhere(ctx context.Context, userID, orgID string) ([]string, error) {
	if userID == "" {
		return nil, apierr.Field("user_id", "is required")
	}
	assignments, err := a.store.ListAssignments(ctx, userID, orgID)
	if err != nil {
		return nil, apierr.Internalf("assignments: %w", err)
	}
	grants, err := a.store.ListGrants(ctx, userID, orgID)
	if err != nil {
		return nil, apierr.Internalf("grants: %w", err)
	}
	var out []string
	for _, as := range assignments {
		if perms, ok := builtin[as.Role]; ok {
			out = append(out, perms...)
			continue
		}
		role, err := a.store.GetRole(ctx, orgID, as.Role)
		if errors.Is(err, ErrNotFound) {
			continue // a deleted role grants nothing
		}
		if err != nil {
			return nil, apierr.Internalf("get role %q: %w", as.Role, err)
		}
		out = append(out, role.Permissions...)
	}
	for _, g := range grants {
		out = append(out, g.Permission)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

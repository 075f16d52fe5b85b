package federation

import (
	"context"
	"slices"
)

// GroupRole is a rule of a connector: members of Group at the provider hold Role in OrgID.
// Groups are the connector's own (two connectors' "admins" are different groups: each has its
// rules).
type GroupRole struct {
	Group string `json:"group"`
	OrgID string `json:"org"`
	Role  string `json:"role"`
}

// OrgRole is a role in an organization.
type OrgRole struct {
	OrgID string `bson:"org_id" json:"org"`
	Role  string `bson:"role" json:"role"`
}

// Roles is what mapping groups to roles asks of rbac. Assign of a role the user holds already
// reports held (nothing changed); Unassign of one the user no longer holds is no error.
type Roles interface {
	Assign(ctx context.Context, userID string, r OrgRole) (held bool, err error)
	Unassign(ctx context.Context, userID string, r OrgRole) error
}

// GrantStore remembers which roles a connector's rules gave each user, so that a group that
// disappeared takes back only what it gave: a role the user held by hand is never recorded.
type GrantStore interface {
	// GetGrants is what connector gave userID (none: empty, no error); PutGrants replaces it.
	GetGrants(ctx context.Context, connectorID, userID string) ([]OrgRole, error)
	PutGrants(ctx context.Context, connectorID, userID string, roles []OrgRole) error
}

// SyncRoles applies a connector's rules at a sign-in: the roles the identity's groups map to
// are given (those the user did not hold already are recorded as the connector's), and the
// roles the connector gave before that no group maps to any more are taken back. It returns
// what changed.
func SyncRoles(ctx context.Context, roles Roles, grants GrantStore, connectorID, userID string, groups []string, rules []GroupRole) (added, removed []OrgRole, err error) {
	var want []OrgRole
	for _, rule := range rules {
		r := OrgRole{OrgID: rule.OrgID, Role: rule.Role}
		if slices.Contains(groups, rule.Group) && !slices.Contains(want, r) {
			want = append(want, r)
		}
	}
	given, err := grants.GetGrants(ctx, connectorID, userID)
	if err != nil {
		return nil, nil, err
	}
	var keep []OrgRole
	for _, r := range given {
		if slices.Contains(want, r) {
			keep = append(keep, r)
			continue
		}
		if err := roles.Unassign(ctx, userID, r); err != nil {
			return added, removed, err
		}
		removed = append(removed, r)
	}
	for _, r := range want {
		if slices.Contains(given, r) {
			continue
		}
		held, err := roles.Assign(ctx, userID, r)
		if err != nil {
			return added, removed, err
		}
		if !held { // given now by the rule: the rule's to take back
			keep = append(keep, r)
			added = append(added, r)
		}
	}
	if keep == nil {
		keep = []OrgRole{}
	}
	return added, removed, grants.PutGrants(ctx, connectorID, userID, keep)
}

package rbac

import (
	"slices"
	"sort"
)

// Built-in role names, per organization.
const (
	RoleOwner       = "owner"
	RoleAdmin       = "admin"
	RoleContributor = "contributor"
	RoleViewer      = "viewer"
)

// domains are the orchestrator's resources the built-in roles cover.
var domains = []string{"projects", "requirements", "analyses", "tasks"}

func grant(resources []string, actions ...string) []string {
	var out []string
	for _, r := range resources {
		for _, a := range actions {
			out = append(out, r+":"+a)
		}
	}
	return out
}

// builtin is the seed's scope table.
var builtin = map[string][]string{
	RoleOwner: concat(
		grant(domains, "read", "write", "delete"),
		[]string{"projects:admin"},
		grant([]string{"users", "sessions"}, "read", "write", "admin"),
		[]string{"audit:read", "roles:*"},
	),
	RoleAdmin: concat(
		grant(domains, "read", "write", "delete"),
		grant([]string{"users", "sessions"}, "read", "write"),
		[]string{"audit:read"},
	),
	RoleContributor: grant(append(slices.Clone(domains), "sessions"), "read", "write"),
	RoleViewer:      grant(append(slices.Clone(domains), "sessions"), "read"),
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// IsBuiltinRole reports whether name is a built-in role.
func IsBuiltinRole(name string) bool {
	_, ok := builtin[name]
	return ok
}

// BuiltinRoles lists the built-in role names.
func BuiltinRoles() []string {
	return []string{RoleOwner, RoleAdmin, RoleContributor, RoleViewer}
}

// PermissionsOf returns the sorted, de-duplicated permissions of a set of built-in roles.
// Unknown roles grant nothing.
func PermissionsOf(roles []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, r := range roles {
		for _, p := range builtin[r] {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

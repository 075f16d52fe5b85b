package rbac_test

import (
	"slices"
	"testing"

	"github.com/bduf/mcpauth/rbac"
)

func TestShouldGiveBuiltinRolesTheSeedScopeTable(t *testing.T) {
	tests := []struct {
		name    string
		role    string
		has     []string
		hasNot  []string
		wantLen int
	}{
		{"owner administers projects, users, sessions and roles", rbac.RoleOwner,
			[]string{"projects:admin", "users:admin", "sessions:admin", "audit:read", "roles:*", "tasks:delete"}, nil, 0},
		{"admin has everything of owner but the admin actions", rbac.RoleAdmin,
			[]string{"projects:delete", "users:write", "audit:read"}, []string{"projects:admin", "users:admin", "roles:*"}, 0},
		{"contributor reads and writes the domains and sessions", rbac.RoleContributor,
			[]string{"requirements:write", "sessions:write"}, []string{"projects:delete", "users:read"}, 10},
		{"viewer only reads", rbac.RoleViewer,
			[]string{"analyses:read", "sessions:read"}, []string{"tasks:write"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rbac.PermissionsOf([]string{tt.role})
			for _, p := range tt.has {
				if !slices.Contains(got, p) {
					t.Errorf("%s lacks %s; has %v", tt.role, p, got)
				}
			}
			for _, p := range tt.hasNot {
				if slices.Contains(got, p) {
					t.Errorf("%s must not have %s", tt.role, p)
				}
			}
			if tt.wantLen != 0 && len(got) != tt.wantLen {
				t.Errorf("%s has %d permissions, want %d: %v", tt.role, len(got), tt.wantLen, got)
			}
		})
	}
}

func TestShouldGrantNothingForUnknownRoles(t *testing.T) {
	if got := rbac.PermissionsOf([]string{"superuser"}); len(got) != 0 {
		t.Fatalf("unknown role granted %v", got)
	}
	if rbac.IsBuiltinRole("superuser") || !rbac.IsBuiltinRole("viewer") {
		t.Fatal("IsBuiltinRole wrong")
	}
}

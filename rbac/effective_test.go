package rbac_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/bduf/mcpauth/rbac"
)

// The effective-permission rule as a table: credential scope × unconditional grant ×
// conditional grant × project scope → what a call may do, and what may be handed out.
func TestShouldAllowOnlyWhatTheCredentialCarriesAndTheSubjectHolds(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	// usr_owner: owner org-wide. usr_cond: roles:write and projects:read only from 10.0.0.0/8,
	// tasks:read only 09:00-17:00 UTC. usr_proj: contributor in prj_1 only.
	assign(t, a, "usr_owner", "acme", rbac.RoleOwner, "")
	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "from-office", Permissions: []string{"roles:write", "projects:read"},
		Conditions: rbac.Conditions{SourceCIDRs: []string{"10.0.0.0/8"}}})
	mustDo(t, "create role", err)
	_, err = a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "office-hours", Permissions: []string{"tasks:read"},
		Conditions: rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "09:00", End: "17:00"}}})
	mustDo(t, "create role", err)
	assign(t, a, "usr_cond", "acme", "from-office", "")
	assign(t, a, "usr_cond", "acme", "office-hours", "")
	assign(t, a, "usr_proj", "acme", rbac.RoleContributor, "prj_1")

	office, home := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.7")
	all := func(sub string) rbac.Credential { return rbac.Credential{Subject: sub, AllScopes: true} }
	scoped := func(sub string, scopes ...string) rbac.Credential {
		return rbac.Credential{Subject: sub, Scopes: scopes}
	}
	tests := []struct {
		name      string
		cred      rbac.Credential
		perm      string
		project   string
		from      netip.Addr
		allowed   bool // Decide
		grantable bool // Excess is empty
	}{
		{"an owner's full token may do and hand out what the owner role holds", scoped("usr_owner", "users:write", "users:admin"), "users:admin", "", home, true, true},
		{"a key narrowed to users:write may not do users:admin although its owner may", scoped("usr_owner", "users:write"), "users:admin", "", home, false, false},
		{"a key narrowed to users:write may not hand out roles:write", scoped("usr_owner", "users:write"), "roles:write", "", home, false, false},
		{"a wildcard scope carries what it covers", scoped("usr_owner", "roles:*"), "roles:assign", "", home, true, true},
		{"a scope wider than the roles grants nothing beyond them", scoped("usr_owner", "*"), "billing:read", "", home, false, false},
		{"a credential without scopes may do nothing", scoped("usr_owner"), "projects:read", "", home, false, false},
		{"a conditional grant allows the call inside its condition", all("usr_cond"), "roles:write", "", office, true, false},
		{"a conditional grant allows nothing outside its condition", all("usr_cond"), "roles:write", "", home, false, false},
		{"a time-window grant allows inside the window but cannot be handed out", all("usr_cond"), "tasks:read", "", home, true, false},
		{"a conditional grant within scope still cannot be handed out", scoped("usr_cond", "roles:write"), "roles:write", "", office, true, false},
		{"a project assignment allows in its project", all("usr_proj"), "tasks:write", "prj_1", home, true, false},
		{"a project assignment allows nothing elsewhere", all("usr_proj"), "tasks:write", "prj_2", home, false, false},
		{"a project assignment allows nothing org-wide", all("usr_proj"), "tasks:write", "", home, false, false},
		{"no subject, no permission", rbac.Credential{Scopes: []string{"*"}}, "projects:read", "", home, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("", tt.perm)
			r.ProjectID, r.Attributes.SourceIP = tt.project, tt.from
			if d := a.Decide(ctx, tt.cred, r); d.Allowed != tt.allowed {
				t.Errorf("Decide(%+v, %s) = %+v, want allowed=%v", tt.cred, tt.perm, d, tt.allowed)
			}
			if tt.cred.Subject == "" {
				return
			}
			excess, err := a.Excess(ctx, tt.cred, "acme", []string{tt.perm})
			mustDo(t, "excess", err)
			if got := len(excess) == 0; got != tt.grantable {
				t.Errorf("Excess(%+v, %s) = %v, want grantable=%v", tt.cred, tt.perm, excess, tt.grantable)
			}
		})
	}
}

func TestShouldCountEveryPermissionOfATargetWhenAdministeringIt(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	assign(t, a, "usr_owner", "acme", rbac.RoleOwner, "")
	assign(t, a, "usr_admin", "acme", rbac.RoleAdmin, "")
	assign(t, a, "usr_viewer", "acme", rbac.RoleViewer, "")
	assign(t, a, "usr_viewer", "acme", rbac.RoleOwner, "prj_1") // an owner in one project
	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "night-ops", Permissions: []string{"roles:assign"},
		Conditions: rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "22:00", End: "06:00"}}})
	mustDo(t, "create role", err)
	assign(t, a, "usr_night", "acme", "night-ops", "")
	tests := []struct {
		name   string
		cred   rbac.Credential
		target string
		excess []string
	}{
		{"an owner may administer an admin", rbac.Credential{Subject: "usr_owner", AllScopes: true}, "usr_admin", nil},
		{"an admin may not administer a project's owner", rbac.Credential{Subject: "usr_admin", AllScopes: true}, "usr_viewer",
			[]string{"projects:admin", "roles:*", "sessions:admin", "users:admin"}},
		{"a conditional grant of the target counts", rbac.Credential{Subject: "usr_admin", AllScopes: true}, "usr_night", []string{"roles:assign"}},
		{"an owner's key narrowed to users:* may not administer a viewer", rbac.Credential{Subject: "usr_owner", Scopes: []string{"users:*"}}, "usr_admin",
			[]string{"analyses:delete", "analyses:read", "analyses:write", "audit:read", "projects:delete", "projects:read", "projects:write",
				"requirements:delete", "requirements:read", "requirements:write", "sessions:read", "sessions:write",
				"tasks:delete", "tasks:read", "tasks:write"}},
		{"a user without roles is administered by anyone", rbac.Credential{Subject: "usr_viewer", AllScopes: true}, "usr_nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.ExcessOver(ctx, tt.cred, "acme", tt.target)
			mustDo(t, "excess over", err)
			if !slices.Equal(got, tt.excess) && (len(got) != 0 || len(tt.excess) != 0) {
				t.Errorf("ExcessOver(%+v, %s) = %v, want %v", tt.cred, tt.target, got, tt.excess)
			}
		})
	}
}

func TestShouldMatchScopesWithoutAllocating(t *testing.T) {
	scopes := []string{"projects:read", "tasks:*", "users"}
	for _, tt := range []struct {
		res, act string
		want     bool
	}{
		{"projects", "read", true}, {"projects", "write", false}, {"tasks", "delete", true},
		{"users", "admin", true}, {"tasks", "*", true}, {"projects", "*", false}, {"proj*", "read", false},
		{"", "read", false}, {"tasks", "", false}, {"tasks:write", "x", false}, {"tasks", "write:x", false},
	} {
		if got := rbac.ScopesAllow(scopes, tt.res, tt.act); got != tt.want {
			t.Errorf("ScopesAllow(%v, %s:%s) = %v, want %v", scopes, tt.res, tt.act, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { rbac.ScopesAllow(scopes, "tasks", "write") }); n != 0 {
		t.Errorf("ScopesAllow allocates %v times per call, want 0", n)
	}
}

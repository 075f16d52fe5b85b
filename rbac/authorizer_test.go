package rbac_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/internal/redistest"
	"github.com/bduf/mcpauth/rbac"
)

// wednesday10 is the tests' clock: Wednesday 7 January 2026, 10:00 UTC.
var wednesday10 = time.Date(2026, 1, 7, 10, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return wednesday10 }

func newAuthorizer(t testing.TB) *rbac.Authorizer {
	t.Helper()
	return rbac.NewAuthorizer(rbac.Config{Store: newMongoStore(t), Versions: rbac.NewLocalVersions(), Now: fixedClock})
}

func mustDo(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mustCode(t testing.TB, what string, err error, code apierr.Code) {
	t.Helper()
	if got := apierr.CodeOf(err); got != code {
		t.Fatalf("%s: err = %v, want code %s", what, err, code)
	}
}

func assign(t testing.TB, a *rbac.Authorizer, user, org, role, project string) {
	t.Helper()
	mustDo(t, "assign "+role+" to "+user, a.Assign(context.Background(),
		rbac.Assignment{UserID: user, OrgID: org, Role: role, ProjectID: project}))
}

func req(subject, perm string) rbac.Request {
	res, act, _ := strings.Cut(perm, ":")
	return rbac.Request{Subject: subject, Resource: res, Action: act, OrgID: "acme"}
}

func mustAllow(t testing.TB, a *rbac.Authorizer, r rbac.Request) rbac.Decision {
	t.Helper()
	d := a.Authorize(context.Background(), r)
	if !d.Allowed {
		t.Fatalf("%s %s:%s in %s/%s denied (%s), want allowed", r.Subject, r.Resource, r.Action, r.OrgID, r.ProjectID, d.Reason)
	}
	return d
}

func mustDeny(t testing.TB, a *rbac.Authorizer, r rbac.Request) rbac.Decision {
	t.Helper()
	d := a.Authorize(context.Background(), r)
	if d.Allowed {
		t.Fatalf("%s %s:%s in %s/%s allowed (%s), want denied", r.Subject, r.Resource, r.Action, r.OrgID, r.ProjectID, d.Reason)
	}
	return d
}

func TestShouldDecideEachBuiltinRoleByTheSeedTable(t *testing.T) {
	a := newAuthorizer(t)
	for _, role := range rbac.BuiltinRoles() {
		assign(t, a, "usr_"+role, "acme", role, "")
	}
	tests := []struct {
		name  string
		role  string
		perm  string
		allow bool
	}{
		{"a viewer reads projects", "viewer", "projects:read", true},
		{"a viewer reads tasks", "viewer", "tasks:read", true},
		{"a viewer cannot write tasks", "viewer", "tasks:write", false},
		{"a viewer cannot delete projects", "viewer", "projects:delete", false},
		{"a viewer cannot read users", "viewer", "users:read", false},
		{"a contributor writes tasks", "contributor", "tasks:write", true},
		{"a contributor writes sessions", "contributor", "sessions:write", true},
		{"a contributor cannot delete projects", "contributor", "projects:delete", false},
		{"a contributor cannot read the audit trail", "contributor", "audit:read", false},
		{"an admin deletes projects", "admin", "projects:delete", true},
		{"an admin writes users", "admin", "users:write", true},
		{"an admin reads the audit trail", "admin", "audit:read", true},
		{"an admin cannot administer projects", "admin", "projects:admin", false},
		{"an admin cannot administer users", "admin", "users:admin", false},
		{"an admin cannot administer sessions", "admin", "sessions:admin", false},
		{"an admin cannot manage roles", "admin", "roles:write", false},
		{"an owner deletes projects", "owner", "projects:delete", true},
		{"an owner administers projects", "owner", "projects:admin", true},
		{"an owner administers users", "owner", "users:admin", true},
		{"an owner manages roles through roles:*", "owner", "roles:assign", true},
		{"an owner has no permission outside the table", "owner", "billing:read", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("usr_"+tt.role, tt.perm)
			if !tt.allow {
				d := mustDeny(t, a, r)
				if want := "no role or grant of the subject allows " + tt.perm; d.Reason != want {
					t.Errorf("reason = %q, want %q", d.Reason, want)
				}
				if len(d.Granted) != 0 || !slices.Equal(d.Required, []string{tt.perm}) {
					t.Errorf("deny = %+v", d)
				}
				return
			}
			d := mustAllow(t, a, r)
			if d.Reason != "granted by role "+tt.role {
				t.Errorf("reason = %q, want %q", d.Reason, "granted by role "+tt.role)
			}
			if !slices.Equal(d.Required, []string{tt.perm}) || len(d.Granted) == 0 {
				t.Errorf("allow = %+v", d)
			}
			for _, g := range d.Granted {
				if !rbac.Match(g, tt.perm) {
					t.Errorf("granted pattern %q does not match %s", g, tt.perm)
				}
			}
		})
	}
}

func TestShouldDenySubjectsWithoutRolesAndOtherOrganizations(t *testing.T) {
	a := newAuthorizer(t)
	assign(t, a, "usr_1", "acme", rbac.RoleOwner, "")
	mustDeny(t, a, req("usr_2", "projects:read"))
	r := req("usr_1", "projects:read")
	r.OrgID = "globex"
	mustDeny(t, a, r)
	d := mustDeny(t, a, req("", "projects:read"))
	if d.Reason == "" {
		t.Error("a deny without a reason")
	}
}

func TestShouldApplyAProjectAssignmentOnlyInItsProject(t *testing.T) {
	a := newAuthorizer(t)
	assign(t, a, "usr_1", "acme", rbac.RoleViewer, "")
	assign(t, a, "usr_1", "acme", rbac.RoleOwner, "prj_1")
	in := func(project string) rbac.Request {
		r := req("usr_1", "projects:delete")
		r.ProjectID = project
		return r
	}
	mustAllow(t, a, in("prj_1"))
	mustDeny(t, a, in("prj_2"))
	mustDeny(t, a, in(""))
	r := in("prj_2")
	r.Action = "read"
	mustAllow(t, a, r) // the org-wide viewer role still applies
}

func TestShouldGrantCustomRolesAndDirectGrants(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "reviewer", Permissions: []string{"requirements:*", "proj*:read"}})
	mustDo(t, "create role", err)
	assign(t, a, "usr_1", "acme", "reviewer", "")
	mustAllow(t, a, req("usr_1", "requirements:approve"))
	d := mustAllow(t, a, req("usr_1", "projects:read"))
	if d.Reason != "granted by role reviewer" || !slices.Equal(d.Granted, []string{"proj*:read"}) {
		t.Errorf("decision = %+v", d)
	}
	mustDeny(t, a, req("usr_1", "projects:write"))

	mustDo(t, "grant", a.AddGrant(ctx, rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "tasks:delete"}))
	d = mustAllow(t, a, req("usr_1", "tasks:delete"))
	if d.Reason != "granted by direct grant" {
		t.Errorf("reason = %q", d.Reason)
	}
	mustDo(t, "remove grant", a.RemoveGrant(ctx, rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "tasks:delete"}))
	mustDeny(t, a, req("usr_1", "tasks:delete"))
}

func TestShouldAllowAConditionalRoleOnlyWhenItsConditionsHold(t *testing.T) {
	ip := netip.MustParseAddr
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 1, day, hour, minute, 0, 0, time.UTC) }
	tests := []struct {
		name   string
		cond   rbac.Conditions
		attrs  rbac.Attributes
		allow  bool
		reason string
	}{
		{"the owner of the resource passes owner-only", rbac.Conditions{OwnerOnly: true},
			rbac.Attributes{OwnerID: "usr_1"}, true, ""},
		{"someone else's resource fails owner-only", rbac.Conditions{OwnerOnly: true},
			rbac.Attributes{OwnerID: "usr_2"}, false, "condition not met: owner"},
		{"an unknown owner fails owner-only", rbac.Conditions{OwnerOnly: true},
			rbac.Attributes{}, false, "condition not met: owner"},
		{"an address in the prefix passes", rbac.Conditions{SourceCIDRs: []string{"192.168.0.0/16", "10.0.0.0/8"}},
			rbac.Attributes{SourceIP: ip("10.1.2.3")}, true, ""},
		{"an IPv4-mapped address in the prefix passes", rbac.Conditions{SourceCIDRs: []string{"10.0.0.0/8"}},
			rbac.Attributes{SourceIP: ip("::ffff:10.1.2.3")}, true, ""},
		{"an IPv6 address in an IPv6 prefix passes", rbac.Conditions{SourceCIDRs: []string{"2001:db8::/32"}},
			rbac.Attributes{SourceIP: ip("2001:db8::1")}, true, ""},
		{"an address outside the prefixes fails", rbac.Conditions{SourceCIDRs: []string{"10.0.0.0/8"}},
			rbac.Attributes{SourceIP: ip("192.168.1.1")}, false, "condition not met: source IP"},
		{"an unknown address fails", rbac.Conditions{SourceCIDRs: []string{"0.0.0.0/0"}},
			rbac.Attributes{}, false, "condition not met: source IP"},
		{"the unspecified address fails", rbac.Conditions{SourceCIDRs: []string{"0.0.0.0/0"}},
			rbac.Attributes{SourceIP: ip("0.0.0.0")}, false, "condition not met: source IP"},
		{"a time inside the window passes", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "09:00", End: "17:00"}},
			rbac.Attributes{Time: at(7, 16, 59)}, true, ""},
		{"the end of the window is outside it", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "09:00", End: "17:00"}},
			rbac.Attributes{Time: at(7, 17, 0)}, false, "condition not met: time window"},
		{"the window is in UTC", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "09:00", End: "17:00"}},
			rbac.Attributes{Time: at(7, 18, 0).In(time.FixedZone("UTC-3", -3*3600))}, false, "condition not met: time window"},
		{"no time means the clock's (Wednesday 10:00)", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "09:00", End: "17:00", Weekdays: []string{"wed"}}},
			rbac.Attributes{}, true, ""},
		{"a weekday outside the window's days fails", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "09:00", End: "17:00", Weekdays: []string{"mon", "tue", "wed", "thu", "fri"}}},
			rbac.Attributes{Time: at(10, 10, 0)}, false, "condition not met: time window"},
		{"a window over midnight includes the early morning after its day", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "22:00", End: "06:00", Weekdays: []string{"fri"}}},
			rbac.Attributes{Time: at(10, 5, 59)}, true, ""},
		{"a window over midnight includes the evening of its day", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "22:00", End: "06:00", Weekdays: []string{"fri"}}},
			rbac.Attributes{Time: at(9, 23, 0)}, true, ""},
		{"a window over midnight excludes the evening of another day", rbac.Conditions{TimeWindow: &rbac.TimeWindow{Start: "22:00", End: "06:00", Weekdays: []string{"fri"}}},
			rbac.Attributes{Time: at(10, 23, 0)}, false, "condition not met: time window"},
		{"every condition must hold", rbac.Conditions{OwnerOnly: true, SourceCIDRs: []string{"10.0.0.0/8"}},
			rbac.Attributes{OwnerID: "usr_1", SourceIP: ip("11.0.0.1")}, false, "condition not met: source IP"},
	}
	a := newAuthorizer(t)
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "cond-" + string(rune('a'+i))
			_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: name, Permissions: []string{"tasks:write"}, Conditions: tt.cond})
			mustDo(t, "create role", err)
			user := "usr_1"
			r := rbac.Request{Subject: user, Resource: "tasks", Action: "write", OrgID: "acme", ProjectID: name, Attributes: tt.attrs}
			mustDo(t, "assign", a.Assign(ctx, rbac.Assignment{UserID: user, OrgID: "acme", Role: name, ProjectID: name}))
			d := a.Authorize(ctx, r)
			if d.Allowed != tt.allow {
				t.Fatalf("allowed = %v (%s), want %v", d.Allowed, d.Reason, tt.allow)
			}
			if tt.allow && (d.Reason != "granted by role "+name+" (conditions met)" || !slices.Equal(d.Granted, []string{"tasks:write"})) {
				t.Errorf("allow = %+v", d)
			}
			if !tt.allow && (d.Reason != tt.reason || len(d.Granted) != 0) {
				t.Errorf("deny = %+v, want reason %q", d, tt.reason)
			}
		})
	}
}

func TestShouldEvaluateConditionsAtEveryRequestNotFromTheCache(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "office", Permissions: []string{"projects:*"},
		Conditions: rbac.Conditions{SourceCIDRs: []string{"10.0.0.0/8"}}})
	mustDo(t, "create role", err)
	assign(t, a, "usr_1", "acme", "office", "")
	assign(t, a, "usr_1", "acme", rbac.RoleViewer, "")
	outside, inside := req("usr_1", "projects:delete"), req("usr_1", "projects:delete")
	outside.Attributes.SourceIP = netip.MustParseAddr("203.0.113.9")
	inside.Attributes.SourceIP = netip.MustParseAddr("10.0.0.9")
	for range 3 {
		mustDeny(t, a, outside)
		mustAllow(t, a, inside)
	}
	// An unconditional role that allows makes the condition irrelevant.
	outside.Action = "read"
	d := mustAllow(t, a, outside)
	if d.Reason != "granted by role viewer" {
		t.Errorf("reason = %q", d.Reason)
	}
	perms, err := a.Permissions(ctx, "usr_1", "acme", "")
	mustDo(t, "permissions", err)
	if !slices.Contains(perms, "projects:*") {
		t.Errorf("permissions %v lack the conditional role's projects:*", perms)
	}
}

// failingStore fails (or panics) on every read a decision needs.
type failingStore struct {
	rbac.Store
	panics bool
}

func (f failingStore) ListAssignments(context.Context, string, string) ([]rbac.Assignment, error) {
	if f.panics {
		panic("store exploded")
	}
	return nil, errors.New("connection refused")
}

func TestShouldDenyWithASystemErrorWhenTheStoreFails(t *testing.T) {
	for _, panics := range []bool{false, true} {
		var log bytes.Buffer
		a := rbac.NewAuthorizer(rbac.Config{Store: failingStore{panics: panics}, Now: fixedClock, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		d := a.Authorize(context.Background(), req("usr_1", "projects:read"))
		if d.Allowed || d.Reason != rbac.ReasonSystemError || !slices.Equal(d.Required, []string{"projects:read"}) {
			t.Errorf("panics=%v: decision = %+v, want a deny with %q", panics, d, rbac.ReasonSystemError)
		}
		// The caller is told "denied"; the cause goes to the operator's log.
		if cause := map[bool]string{false: "connection refused", true: "store exploded"}[panics]; !strings.Contains(log.String(), cause) {
			t.Errorf("panics=%v: the log does not name the cause %q:\n%s", panics, cause, log.String())
		}
		if !panics {
			_, err := a.Permissions(context.Background(), "usr_1", "acme", "")
			mustCode(t, "permissions", err, apierr.Internal)
			_, err = a.Excess(context.Background(), rbac.Credential{Subject: "usr_1", AllScopes: true}, "acme", []string{"projects:read"})
			mustCode(t, "excess", err, apierr.Internal)
		}
	}
}

func TestShouldNeverServeAStaleAllowAfterAChange(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	assign(t, a, "usr_1", "acme", rbac.RoleOwner, "")
	r := req("usr_1", "projects:delete")
	mustAllow(t, a, r)
	mustAllow(t, a, r) // cached
	mustDo(t, "unassign", a.Unassign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: rbac.RoleOwner}))
	mustDeny(t, a, r)

	mustDo(t, "grant", a.AddGrant(ctx, rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "projects:*"}))
	mustAllow(t, a, r) // the cached deny is gone too

	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "deleter", Permissions: []string{"tasks:delete"}})
	mustDo(t, "create role", err)
	assign(t, a, "usr_1", "acme", "deleter", "")
	mustAllow(t, a, req("usr_1", "tasks:delete"))
	mustDo(t, "delete role", a.DeleteRole(ctx, "acme", "deleter"))
	mustDeny(t, a, req("usr_1", "tasks:delete"))
	_, err = a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "deleter", Permissions: []string{"tasks:delete"}})
	mustDo(t, "re-create role", err)
	mustDeny(t, a, req("usr_1", "tasks:delete")) // the old assignment went with the old role
}

func TestShouldDenyOnAnotherInstanceWithinASecondOfAnUnassign(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	addr := redistest.Start(t)
	newInstance := func() *rbac.Authorizer {
		store, err := rbac.NewMongoStore(ctx, db)
		mustDo(t, "store", err)
		return rbac.NewAuthorizer(rbac.Config{Store: store, Versions: newRedisVersions(t, addr), Now: fixedClock})
	}
	a, b := newInstance(), newInstance()
	assign(t, a, "usr_1", "acme", rbac.RoleOwner, "")
	r := req("usr_1", "projects:delete")
	await(t, propagation, "the other instance sees the assignment", func() bool {
		return b.Authorize(ctx, r).Allowed
	})
	mustAllow(t, b, r) // and caches it
	mustDo(t, "unassign on A", a.Unassign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: rbac.RoleOwner}))
	mustDeny(t, a, r)
	await(t, propagation, "the other instance denies after the unassign", func() bool {
		return !b.Authorize(ctx, r).Allowed
	})
}

func TestShouldNameThePermissionsAGrantorDoesNotHold(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	assign(t, a, "usr_owner", "acme", rbac.RoleOwner, "")
	assign(t, a, "usr_contrib", "acme", rbac.RoleContributor, "")
	assign(t, a, "usr_contrib", "acme", rbac.RoleOwner, "prj_1")
	mustDo(t, "grant", a.AddGrant(ctx, rbac.Grant{UserID: "usr_wide", OrgID: "acme", Permission: "proj*"}))
	tests := []struct {
		name    string
		grantor string
		perms   []string
		want    []string
	}{
		{"an owner may hand out what the owner role holds", "usr_owner",
			[]string{"projects:read", "users:admin", "roles:*", "roles:assign"}, nil},
		{"nobody but a star holder may hand out a star", "usr_owner", []string{"*", "projects:read"}, []string{"*"}},
		{"an owner may not hand out a whole resource it holds action by action", "usr_owner", []string{"projects:*"}, []string{"projects:*"}},
		{"a contributor may not hand out deletes", "usr_contrib", []string{"tasks:write", "tasks:delete"}, []string{"tasks:delete"}},
		{"a project assignment does not count org-wide", "usr_contrib", []string{"projects:admin"}, []string{"projects:admin"}},
		{"a prefix grant covers the wildcards under it", "usr_wide", []string{"projects:*", "proj*:read", "pro*"}, []string{"pro*"}},
		{"an invalid pattern is always excess", "usr_owner", []string{"pro*ts:read", ""}, []string{"pro*ts:read", ""}},
		{"a duplicate is named once", "usr_contrib", []string{"users:read", "users:read"}, []string{"users:read"}},
		{"a user without roles holds nothing", "usr_nobody", []string{"tasks:read"}, []string{"tasks:read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Excess(ctx, rbac.Credential{Subject: tt.grantor, AllScopes: true}, "acme", tt.perms)
			mustDo(t, "excess", err)
			if !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
				t.Errorf("Excess(%s, %v) = %v, want %v", tt.grantor, tt.perms, got, tt.want)
			}
		})
	}
}

func TestShouldListEffectivePermissionsSortedAndOnce(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	assign(t, a, "usr_1", "acme", rbac.RoleViewer, "")
	assign(t, a, "usr_1", "acme", rbac.RoleContributor, "")
	assign(t, a, "usr_1", "acme", rbac.RoleOwner, "prj_1")
	mustDo(t, "grant", a.AddGrant(ctx, rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "audit:read"}))
	got, err := a.Permissions(ctx, "usr_1", "acme", "")
	mustDo(t, "permissions", err)
	want := append(rbac.PermissionsOf([]string{rbac.RoleContributor}), "audit:read")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("permissions = %v, want %v", got, want)
	}
	inProject, err := a.Permissions(ctx, "usr_1", "acme", "prj_1")
	mustDo(t, "permissions in project", err)
	if !slices.Equal(inProject, rbac.PermissionsOf([]string{rbac.RoleOwner, rbac.RoleContributor})) {
		t.Errorf("permissions in prj_1 = %v", inProject)
	}
	_, err = a.Permissions(ctx, "", "acme", "")
	mustCode(t, "permissions of nobody", err, apierr.InvalidArgument)
	as, err := a.Assignments(ctx, "usr_1", "acme")
	mustDo(t, "assignments", err)
	if len(as) != 3 {
		t.Errorf("assignments = %+v", as)
	}
}

func TestShouldListBuiltinRolesBeforeCustomOnes(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	created, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "auditor", Description: "reads the trail",
		Permissions: []string{"audit:read", "audit:read", "analyses:read"}})
	mustDo(t, "create", err)
	if !slices.Equal(created.Permissions, []string{"analyses:read", "audit:read"}) || created.BuiltIn || !created.CreatedAt.Equal(wednesday10) {
		t.Errorf("created = %+v", created)
	}
	roles, err := a.ListRoles(ctx, "acme")
	mustDo(t, "list", err)
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
		if r.BuiltIn != rbac.IsBuiltinRole(r.Name) || r.OrgID != "acme" {
			t.Errorf("role %+v", r)
		}
	}
	if !slices.Equal(names, []string{"owner", "admin", "contributor", "viewer", "auditor"}) {
		t.Errorf("roles = %v", names)
	}
	owner, err := a.GetRole(ctx, "acme", rbac.RoleOwner)
	mustDo(t, "get owner", err)
	if !owner.BuiltIn || !slices.Equal(owner.Permissions, rbac.PermissionsOf([]string{rbac.RoleOwner})) || owner.Description == "" {
		t.Errorf("owner = %+v", owner)
	}
	got, err := a.GetRole(ctx, "acme", "auditor")
	mustDo(t, "get custom", err)
	if got.Description != "reads the trail" || got.BuiltIn {
		t.Errorf("auditor = %+v", got)
	}
	_, err = a.GetRole(ctx, "acme", "ghost")
	mustCode(t, "get unknown", err, apierr.NotFound)
	_, err = a.GetRole(ctx, "globex", "auditor")
	mustCode(t, "get in another organization", err, apierr.NotFound)
}

func TestShouldValidateNewRoles(t *testing.T) {
	perms := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "res" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ":read"
		}
		return out
	}
	valid := rbac.Role{OrgID: "acme", Name: "reviewer", Permissions: []string{"tasks:read"}}
	with := func(f func(r *rbac.Role)) rbac.Role {
		r := valid
		f(&r)
		return r
	}
	tests := []struct {
		name string
		role rbac.Role
		code apierr.Code
	}{
		{"a built-in name is taken", with(func(r *rbac.Role) { r.Name = "admin" }), apierr.Conflict},
		{"a one-letter name is too short", with(func(r *rbac.Role) { r.Name = "r" }), apierr.InvalidArgument},
		{"a name starts with a letter", with(func(r *rbac.Role) { r.Name = "1st" }), apierr.InvalidArgument},
		{"a name is lower case", with(func(r *rbac.Role) { r.Name = "Reviewer" }), apierr.InvalidArgument},
		{"a name has no spaces", with(func(r *rbac.Role) { r.Name = "re viewer" }), apierr.InvalidArgument},
		{"a name is at most 64 characters", with(func(r *rbac.Role) { r.Name = "r" + strings.Repeat("x", 64) }), apierr.InvalidArgument},
		{"an organization is required", with(func(r *rbac.Role) { r.OrgID = "" }), apierr.InvalidArgument},
		{"a role has a permission", with(func(r *rbac.Role) { r.Permissions = nil }), apierr.InvalidArgument},
		{"a role has at most 64 permissions", with(func(r *rbac.Role) { r.Permissions = perms(65) }), apierr.InvalidArgument},
		{"every permission is a valid pattern", with(func(r *rbac.Role) { r.Permissions = []string{"tasks:read", "ta*ks:read"} }), apierr.InvalidArgument},
		{"a description is at most 256 characters", with(func(r *rbac.Role) { r.Description = strings.Repeat("é", 257) }), apierr.InvalidArgument},
		{"a CIDR parses", with(func(r *rbac.Role) { r.Conditions.SourceCIDRs = []string{"10.0.0.0/33"} }), apierr.InvalidArgument},
		{"a bare address is not a CIDR", with(func(r *rbac.Role) { r.Conditions.SourceCIDRs = []string{"10.0.0.1"} }), apierr.InvalidArgument},
		{"a time of day is HH:MM", with(func(r *rbac.Role) { r.Conditions.TimeWindow = &rbac.TimeWindow{Start: "9:00", End: "17:00"} }), apierr.InvalidArgument},
		{"an hour is below 24", with(func(r *rbac.Role) { r.Conditions.TimeWindow = &rbac.TimeWindow{Start: "09:00", End: "24:00"} }), apierr.InvalidArgument},
		{"a window is not empty", with(func(r *rbac.Role) { r.Conditions.TimeWindow = &rbac.TimeWindow{Start: "09:00", End: "09:00"} }), apierr.InvalidArgument},
		{"a weekday is a known one", with(func(r *rbac.Role) {
			r.Conditions.TimeWindow = &rbac.TimeWindow{Start: "09:00", End: "17:00", Weekdays: []string{"funday"}}
		}), apierr.InvalidArgument},
	}
	a := newAuthorizer(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.CreateRole(ctx, tt.role)
			mustCode(t, "create", err, tt.code)
		})
	}
	t.Run("a valid role with every condition is stored in canonical form", func(t *testing.T) {
		r := with(func(r *rbac.Role) {
			r.Name = "max-perms_64"
			r.Permissions = perms(64)
			r.Description = strings.Repeat("é", 256)
			r.Conditions = rbac.Conditions{OwnerOnly: true, SourceCIDRs: []string{"10.1.2.3/8", "2001:db8::/32"},
				TimeWindow: &rbac.TimeWindow{Start: "22:00", End: "06:00", Weekdays: []string{"Fri", "mon", "fri"}}}
		})
		got, err := a.CreateRole(ctx, r)
		mustDo(t, "create", err)
		if !slices.Equal(got.Conditions.SourceCIDRs, []string{"10.0.0.0/8", "2001:db8::/32"}) ||
			!slices.Equal(got.Conditions.TimeWindow.Weekdays, []string{"mon", "fri"}) || len(got.Permissions) != 64 {
			t.Errorf("created = %+v, %+v", got, got.Conditions.TimeWindow)
		}
		stored, err := a.GetRole(ctx, "acme", r.Name)
		mustDo(t, "get", err)
		if !slices.Equal(stored.Conditions.SourceCIDRs, got.Conditions.SourceCIDRs) || !stored.Conditions.OwnerOnly {
			t.Errorf("stored = %+v", stored)
		}
		_, err = a.CreateRole(ctx, r)
		mustCode(t, "create again", err, apierr.Conflict)
	})
}

func TestShouldAnswerChangesWithTheRightCodes(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "reviewer", Permissions: []string{"tasks:read"}})
	mustDo(t, "create", err)
	as := rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "reviewer"}
	mustDo(t, "assign", a.Assign(ctx, as))
	mustCode(t, "assign twice", a.Assign(ctx, as), apierr.Conflict)
	mustCode(t, "assign an unknown role", a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "ghost"}), apierr.NotFound)
	mustCode(t, "assign another organization's role", a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "globex", Role: "reviewer"}), apierr.NotFound)
	mustCode(t, "assign without a user", a.Assign(ctx, rbac.Assignment{OrgID: "acme", Role: "viewer"}), apierr.InvalidArgument)
	mustCode(t, "assign without an organization", a.Assign(ctx, rbac.Assignment{UserID: "usr_1", Role: "viewer"}), apierr.InvalidArgument)
	mustCode(t, "unassign what was never assigned", a.Unassign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "viewer"}), apierr.NotFound)
	mustCode(t, "unassign another project", a.Unassign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "reviewer", ProjectID: "prj_1"}), apierr.NotFound)

	mustCode(t, "delete a built-in role", a.DeleteRole(ctx, "acme", rbac.RoleViewer), apierr.InvalidArgument)
	mustCode(t, "delete an unknown role", a.DeleteRole(ctx, "acme", "ghost"), apierr.NotFound)
	mustDo(t, "delete", a.DeleteRole(ctx, "acme", "reviewer"))
	left, err := a.Assignments(ctx, "usr_1", "acme")
	mustDo(t, "assignments", err)
	if len(left) != 0 {
		t.Errorf("the deleted role's assignments are left: %+v", left)
	}
	mustCode(t, "delete again", a.DeleteRole(ctx, "acme", "reviewer"), apierr.NotFound)

	g := rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "tasks:read"}
	mustDo(t, "grant", a.AddGrant(ctx, g))
	mustCode(t, "grant twice", a.AddGrant(ctx, g), apierr.Conflict)
	mustCode(t, "grant an invalid pattern", a.AddGrant(ctx, rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "tasks:re*d"}), apierr.InvalidArgument)
	mustDo(t, "remove grant", a.RemoveGrant(ctx, g))
	mustCode(t, "remove it again", a.RemoveGrant(ctx, g), apierr.NotFound)
}

// brokenVersions cannot bump. It is rbac's LocalVersions underneath, which count a change of
// this instance at once themselves.
type brokenVersions struct{ rbac.LocalVersions }

func (*brokenVersions) Bump(context.Context) error { return errors.New("redis: connection refused") }

func (*brokenVersions) BumpSubject(context.Context, string) error {
	return errors.New("redis: connection refused")
}

// foreignVersions are another package's Versions that never advance: the Authorizer must count
// its own changes beside them.
type foreignVersions struct{}

func (foreignVersions) Current() uint64            { return 0 }
func (foreignVersions) Bump(context.Context) error { return errors.New("redis: connection refused") }
func (foreignVersions) Subject(string) uint64      { return 0 }
func (foreignVersions) BumpSubject(context.Context, string) error {
	return errors.New("redis: connection refused")
}

func TestShouldReportAFailedBumpButKeepThisInstanceFresh(t *testing.T) {
	for _, tt := range []struct {
		name     string
		versions rbac.Versions
	}{{"rbac's own versions", &brokenVersions{}}, {"another package's versions", foreignVersions{}}} {
		t.Run(tt.name, func(t *testing.T) {
			a := rbac.NewAuthorizer(rbac.Config{Store: newMongoStore(t), Versions: tt.versions, Now: fixedClock})
			ctx := context.Background()
			err := a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: rbac.RoleOwner})
			mustCode(t, "assign with a broken version", err, apierr.Internal)
			r := req("usr_1", "projects:delete")
			mustAllow(t, a, r) // the change happened
			err = a.Unassign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: rbac.RoleOwner})
			mustCode(t, "unassign with a broken version", err, apierr.Internal)
			mustDeny(t, a, r) // and this instance's cache did not keep the allow
		})
	}
}

// countingStore counts the reads a decision makes.
type countingStore struct {
	rbac.Store
	reads atomic.Int64
}

func (c *countingStore) ListAssignments(ctx context.Context, userID, orgID string) ([]rbac.Assignment, error) {
	c.reads.Add(1)
	return c.Store.ListAssignments(ctx, userID, orgID)
}

func TestShouldBoundTheCache(t *testing.T) {
	store := &countingStore{Store: newMongoStore(t)}
	a := rbac.NewAuthorizer(rbac.Config{Store: store, Now: fixedClock})
	for _, u := range []string{"usr_1", "usr_2"} {
		assign(t, a, u, "acme", rbac.RoleViewer, "")
	}
	reads := func(f func()) int64 {
		before := store.reads.Load()
		f()
		return store.reads.Load() - before
	}
	r1, r2 := req("usr_1", "projects:read"), req("usr_2", "projects:read")
	mustAllow(t, a, r1)
	if n := reads(func() { mustAllow(t, a, r1); mustAllow(t, a, r1) }); n != 0 {
		t.Errorf("a warm decision read the store %d times", n)
	}
	a = rbac.NewAuthorizer(rbac.Config{Store: store, Now: fixedClock, CacheLimit: 1})
	if n := reads(func() { mustAllow(t, a, r1); mustAllow(t, a, r2); mustAllow(t, a, r1) }); n != 3 {
		t.Errorf("with room for one entry, alternating subjects read the store %d times, want 3", n)
	}
	a = rbac.NewAuthorizer(rbac.Config{Store: store, Now: fixedClock, CacheLimit: -1})
	if n := reads(func() { mustAllow(t, a, r1); mustAllow(t, a, r1) }); n != 2 {
		t.Errorf("with caching off, two decisions read the store %d times, want 2", n)
	}
}

func TestShouldNotAllocateOnAWarmDecision(t *testing.T) {
	a := newAuthorizer(t)
	assign(t, a, "usr_1", "acme", rbac.RoleOwner, "")
	ctx := context.Background()
	allow, deny := req("usr_1", "projects:delete"), req("usr_1", "billing:read")
	mustAllow(t, a, allow)
	mustDeny(t, a, deny)
	allocs := testing.AllocsPerRun(1000, func() {
		_ = a.Authorize(ctx, allow)
		_ = a.Authorize(ctx, deny)
	})
	if allocs != 0 {
		t.Errorf("a warm decision allocates %v times", allocs)
	}
}

func TestShouldDenyMalformedPermissionsWhateverTheSubjectHolds(t *testing.T) {
	a := newAuthorizer(t)
	mustDo(t, "grant everything", a.AddGrant(context.Background(), rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "*"}))
	mustAllow(t, a, req("usr_1", "anything:at-all"))
	for _, bad := range []struct{ res, act string }{
		{"projects", ""}, {"", "read"}, {"projects:read", "x"}, {"pro jects", "read"},
		{strings.Repeat("p", 200), "read"}, {"pro*ts", "read"}, {"projects", "re\nad"},
	} {
		d := mustDeny(t, a, rbac.Request{Subject: "usr_1", OrgID: "acme", Resource: bad.res, Action: bad.act})
		if !strings.HasPrefix(d.Reason, "invalid permission") {
			t.Errorf("%q:%q: reason = %q", bad.res, bad.act, d.Reason)
		}
	}
}

func TestShouldLetExactlyOneOfManyConcurrentAssignsSucceed(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	const n = 30
	codes := make(chan apierr.Code, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			codes <- apierr.CodeOf(a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: rbac.RoleOwner}))
		}()
	}
	close(start)
	count := map[apierr.Code]int{}
	for range n {
		count[<-codes]++
	}
	if count[""] != 1 || count[apierr.Conflict] != n-1 {
		t.Errorf("%d concurrent assigns: %v; want one success and %d CONFLICT", n, count, n-1)
	}
}

func TestShouldLeaveNoAssignmentOfADeletedRoleWhenAssignRacesDelete(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	for round := range 10 {
		_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "racer", Permissions: []string{"tasks:read"}})
		mustDo(t, "create", err)
		done := make(chan error, 2)
		go func() { done <- a.DeleteRole(ctx, "acme", "racer") }()
		go func() { done <- a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "racer"}) }()
		for range 2 {
			if err := <-done; err != nil && apierr.CodeOf(err) != apierr.NotFound {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		left, err := a.Assignments(ctx, "usr_1", "acme")
		mustDo(t, "assignments", err)
		if len(left) != 0 {
			t.Fatalf("round %d: an assignment of the deleted role survived: %+v", round, left)
		}
		mustDeny(t, a, req("usr_1", "tasks:read"))
	}
}

// A change of one user's roles makes only that user's decisions stale: every other user's stay
// cached (no store read), and the changed user's next decision reads the store and follows the
// change at once.
func TestShouldInvalidateOnlyTheChangedSubject(t *testing.T) {
	store := &countingStore{Store: newMongoStore(t)}
	a := rbac.NewAuthorizer(rbac.Config{Store: store, Now: fixedClock})
	for _, u := range []string{"usr_1", "usr_2", "usr_3"} {
		assign(t, a, u, "acme", rbac.RoleViewer, "")
	}
	read, write := req("usr_1", "projects:read"), req("usr_1", "projects:write")
	others := []rbac.Request{req("usr_2", "projects:read"), req("usr_3", "projects:read")}
	for _, r := range append(others, read) {
		mustAllow(t, a, r)
	}
	mustDeny(t, a, write)
	reads := func(f func()) int64 {
		before := store.reads.Load()
		f()
		return store.reads.Load() - before
	}
	assign(t, a, "usr_1", "acme", rbac.RoleContributor, "")
	if n := reads(func() {
		for _, r := range others {
			mustAllow(t, a, r)
		}
	}); n != 0 {
		t.Errorf("after a change of usr_1's roles, other users' warm decisions read the store %d times", n)
	}
	if n := reads(func() { mustAllow(t, a, write); mustAllow(t, a, read) }); n != 1 {
		t.Errorf("usr_1's decisions after its change read the store %d times, want 1 (then cached)", n)
	}
	mustDo(t, "unassign", a.Unassign(context.Background(), rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: rbac.RoleContributor}))
	mustDeny(t, a, write)
	// A role definition can concern anyone: everything goes stale.
	if _, err := a.CreateRole(context.Background(), rbac.Role{OrgID: "acme", Name: "auditor", Permissions: []string{"audit:read"}}); err != nil {
		t.Fatal(err)
	}
	if n := reads(func() { mustAllow(t, a, others[0]) }); n != 1 {
		t.Errorf("after a role was defined, a warm decision read the store %d times, want 1", n)
	}
}

// A role deleted, whose assignments were left behind (its sweep failed), and made again under
// the same name: the old holders get nothing from the new role, and assigning it to them works.
func TestShouldNotLetARoleMadeAgainInheritItsPredecessorsHolders(t *testing.T) {
	ctx := context.Background()
	store := newMongoStore(t)
	now := wednesday10
	a := rbac.NewAuthorizer(rbac.Config{Store: store, Versions: rbac.NewLocalVersions(), CacheLimit: -1,
		Now: func() time.Time { now = now.Add(time.Second); return now }})
	deploy := rbac.Request{Subject: "usr_1", OrgID: "acme", Resource: "deploys", Action: "create"}
	_, err := a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "deployer", Permissions: []string{"tasks:read"}})
	mustDo(t, "create", err)
	mustDo(t, "assign", a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "deployer"}))
	// The deletion of the role got as far as the role: the assignment stays.
	mustDo(t, "delete the role only", store.DeleteRole(ctx, "acme", "deployer"))
	_, err = a.CreateRole(ctx, rbac.Role{OrgID: "acme", Name: "deployer", Permissions: []string{"deploys:create"}})
	mustDo(t, "create again", err)
	if d := a.Authorize(ctx, deploy); d.Allowed {
		t.Fatalf("the holder of the deleted role is allowed by the new one: %+v", d)
	}
	mustDo(t, "assign the new role", a.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "deployer"}))
	if d := a.Authorize(ctx, deploy); !d.Allowed {
		t.Fatalf("assigned the new role, still denied: %+v", d)
	}
	held, err := a.Assignments(ctx, "usr_1", "acme")
	mustDo(t, "assignments", err)
	if len(held) != 1 {
		t.Errorf("assignments after assigning the new role: %+v, want one", held)
	}
}

// Package storetest is the conformance suite of rbac.Store, in the manner of dex's
// storage/conformance: every backend runs Run against a fresh store per test and must pass it
// unchanged. It is a non-test file so that other backends' tests can import it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/rbac"
)

// concurrency is how many goroutines race in the concurrency cases.
const concurrency = 50

// Run runs the whole suite. newStore must return a fresh, empty store for each call; it is
// called once per subtest with that subtest's t, so it can register cleanups on it.
func Run(t *testing.T, newStore func(t *testing.T) rbac.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s rbac.Store)
	}{
		{"ShouldCreateAndGetACustomRoleWithItsConditions", testCreateAndGetRole},
		{"ShouldRejectASecondRoleOfTheSameNameInAnOrganization", testDuplicateRole},
		{"ShouldKeepRolesOfDifferentOrganizationsApart", testRolesPerOrg},
		{"ShouldReportUnknownRolesAsNotFound", testUnknownRole},
		{"ShouldListTheRolesOfAnOrganizationByName", testListRoles},
		{"ShouldDeleteARoleOnlyOnce", testDeleteRole},
		{"ShouldNotConfuseIDsThatContainSlashes", testSlashesInIDs},

		{"ShouldAssignAndListAssignmentsByRoleThenProject", testAssignAndList},
		{"ShouldRejectTheSameAssignmentTwice", testDuplicateAssignment},
		{"ShouldUnassignOnlyTheExactAssignment", testUnassign},
		{"ShouldDeleteEveryAssignmentOfARoleAndNoOther", testDeleteRoleAssignments},

		{"ShouldAddListAndRemoveDirectGrants", testGrants},
		{"ShouldRejectTheSameGrantTwice", testDuplicateGrant},

		{"ShouldLetExactlyOneOfManyConcurrentAssignsWin", testAssignConcurrent},
		{"ShouldLetExactlyOneOfManyConcurrentRoleCreationsWin", testCreateRoleConcurrent},
		{"ShouldLetExactlyOneOfManyConcurrentGrantsWin", testAddGrantConcurrent},
		{"ShouldLetExactlyOneOfManyConcurrentUnassignsWin", testUnassignConcurrent},
		{"ShouldEraseEveryAssignmentAndGrantOfAUserAndNoOneElses", testEraseUser},
		{"ShouldKeepEveryOneOfManyConcurrentDifferentChangesOfOneUser", testDifferentChangesConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// now is a base time at MongoDB's resolution (milliseconds, UTC).
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func mustTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want); d >= time.Millisecond || d <= -time.Millisecond {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func mustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// race runs f(0..n-1) in n goroutines released together, and waits for all.
func race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			f(i)
		}()
	}
	start.Done()
	done.Wait()
}

// outcome counts the results of a race: wins (nil), the expected loss, and anything else.
type outcome struct {
	mu         sync.Mutex
	wins, lost int
	unexpected []error
}

func (o *outcome) add(err, loss error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		o.wins++
	case errors.Is(err, loss):
		o.lost++
	default:
		o.unexpected = append(o.unexpected, err)
	}
}

func (o *outcome) check(t *testing.T, what string, loss error) {
	t.Helper()
	if len(o.unexpected) > 0 {
		t.Fatalf("%s: unexpected errors: %v", what, o.unexpected)
	}
	if o.wins != 1 || o.lost != concurrency-1 {
		t.Errorf("%d concurrent %s: %d succeeded, %d got %v; want 1 and %d",
			concurrency, what, o.wins, o.lost, loss, concurrency-1)
	}
}

func newRole(org, name string, perms ...string) rbac.Role {
	return rbac.Role{OrgID: org, Name: name, Description: "the " + name + " role", Permissions: perms, CreatedAt: now()}
}

func checkRole(t *testing.T, got, want rbac.Role) {
	t.Helper()
	if got.OrgID != want.OrgID || got.Name != want.Name || got.Description != want.Description ||
		!slices.Equal(got.Permissions, want.Permissions) || got.BuiltIn {
		t.Errorf("role = %+v, want %+v", got, want)
	}
	c, w := got.Conditions, want.Conditions
	if c.OwnerOnly != w.OwnerOnly || !slices.Equal(c.SourceCIDRs, w.SourceCIDRs) || (c.TimeWindow == nil) != (w.TimeWindow == nil) {
		t.Errorf("conditions = %+v, want %+v", c, w)
	} else if c.TimeWindow != nil && (c.TimeWindow.Start != w.TimeWindow.Start || c.TimeWindow.End != w.TimeWindow.End ||
		!slices.Equal(c.TimeWindow.Weekdays, w.TimeWindow.Weekdays)) {
		t.Errorf("time window = %+v, want %+v", *c.TimeWindow, *w.TimeWindow)
	}
	mustTime(t, "created_at", got.CreatedAt, want.CreatedAt)
}

func roleNames(roles []rbac.Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = r.Name
	}
	return out
}

func testCreateAndGetRole(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	plain := newRole("acme", "reviewer", "requirements:read", "analyses:*")
	conditional := newRole("acme", "night-shift", "tasks:write")
	conditional.Conditions = rbac.Conditions{
		OwnerOnly:   true,
		SourceCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"},
		TimeWindow:  &rbac.TimeWindow{Start: "22:00", End: "06:00", Weekdays: []string{"mon", "fri"}},
	}
	for _, r := range []rbac.Role{plain, conditional} {
		mustOK(t, "create "+r.Name, s.CreateRole(ctx, r))
		got, err := s.GetRole(ctx, r.OrgID, r.Name)
		mustOK(t, "get "+r.Name, err)
		checkRole(t, got, r)
	}
}

func testDuplicateRole(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustOK(t, "create", s.CreateRole(ctx, newRole("acme", "reviewer", "tasks:read")))
	err := s.CreateRole(ctx, newRole("acme", "reviewer", "projects:*"))
	mustErr(t, "second role of the same name", err, rbac.ErrAlreadyExists)
	got, err := s.GetRole(ctx, "acme", "reviewer")
	mustOK(t, "get", err)
	if !slices.Equal(got.Permissions, []string{"tasks:read"}) {
		t.Errorf("the rejected role overwrote the first: %v", got.Permissions)
	}
}

func testRolesPerOrg(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustOK(t, "create in acme", s.CreateRole(ctx, newRole("acme", "reviewer", "tasks:read")))
	mustOK(t, "create the same name in globex", s.CreateRole(ctx, newRole("globex", "reviewer", "tasks:write")))
	_, err := s.GetRole(ctx, "initech", "reviewer")
	mustErr(t, "get in an organization without it", err, rbac.ErrNotFound)
	got, err := s.GetRole(ctx, "globex", "reviewer")
	mustOK(t, "get in globex", err)
	if !slices.Equal(got.Permissions, []string{"tasks:write"}) || got.OrgID != "globex" {
		t.Errorf("globex's reviewer = %+v", got)
	}
	mustOK(t, "delete in acme", s.DeleteRole(ctx, "acme", "reviewer"))
	_, err = s.GetRole(ctx, "globex", "reviewer")
	mustOK(t, "deleting acme's role leaves globex's", err)
}

func testUnknownRole(t *testing.T, s rbac.Store) {
	_, err := s.GetRole(context.Background(), "acme", "nope")
	mustErr(t, "get unknown", err, rbac.ErrNotFound)
}

func testListRoles(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	roles, err := s.ListRoles(ctx, "acme")
	mustOK(t, "list empty", err)
	if len(roles) != 0 {
		t.Fatalf("empty store lists roles: %v", roleNames(roles))
	}
	for _, n := range []string{"zeta", "alpha", "mid"} {
		mustOK(t, "create "+n, s.CreateRole(ctx, newRole("acme", n, "tasks:read")))
	}
	mustOK(t, "create elsewhere", s.CreateRole(ctx, newRole("globex", "beta", "tasks:read")))
	roles, err = s.ListRoles(ctx, "acme")
	mustOK(t, "list", err)
	if got := roleNames(roles); !slices.Equal(got, []string{"alpha", "mid", "zeta"}) {
		t.Errorf("acme's roles = %v, want alpha, mid, zeta (by name, this organization only)", got)
	}
}

func testDeleteRole(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustOK(t, "create", s.CreateRole(ctx, newRole("acme", "reviewer", "tasks:read")))
	mustOK(t, "delete", s.DeleteRole(ctx, "acme", "reviewer"))
	_, err := s.GetRole(ctx, "acme", "reviewer")
	mustErr(t, "get deleted", err, rbac.ErrNotFound)
	mustErr(t, "delete again", s.DeleteRole(ctx, "acme", "reviewer"), rbac.ErrNotFound)
	mustOK(t, "create again after delete", s.CreateRole(ctx, newRole("acme", "reviewer", "tasks:write")))
}

func testSlashesInIDs(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustOK(t, "create a/b + c", s.CreateRole(ctx, newRole("a/b", "c", "tasks:read")))
	mustOK(t, "create a + b/c", s.CreateRole(ctx, newRole("a", "b/c", "tasks:read")))
	mustOK(t, "create a%2Fb + c", s.CreateRole(ctx, newRole("a%2Fb", "c", "tasks:read")))
	mustOK(t, "assign u/1 in o", s.Assign(ctx, rbac.Assignment{UserID: "u/1", OrgID: "o", Role: "r", CreatedAt: now()}))
	mustOK(t, "assign u + 1/r in o", s.Assign(ctx, rbac.Assignment{UserID: "u", OrgID: "o", Role: "1/r", CreatedAt: now()}))
	mustAssignments(t, s, "u/1", "o", "r@")
	mustAssignments(t, s, "u", "o", "1/r@")
	mustOK(t, "grant u/1 in o", s.AddGrant(ctx, newGrant("u/1", "o", "tasks:read")))
	mustOK(t, "grant 1 in o/u", s.AddGrant(ctx, newGrant("1", "o/u", "tasks:read")))
	mustGrants(t, s, "u/1", "o", "tasks:read")
}

func newAssignment(user, org, role, project string) rbac.Assignment {
	return rbac.Assignment{UserID: user, OrgID: org, Role: role, ProjectID: project, CreatedAt: now()}
}

func assignAll(t *testing.T, s rbac.Store, as ...rbac.Assignment) {
	t.Helper()
	for _, a := range as {
		mustOK(t, fmt.Sprintf("assign %+v", a), s.Assign(context.Background(), a))
	}
}

func assignmentKeys(as []rbac.Assignment) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Role + "@" + a.ProjectID
	}
	return out
}

func mustAssignments(t *testing.T, s rbac.Store, user, org string, want ...string) {
	t.Helper()
	as, err := s.ListAssignments(context.Background(), user, org)
	mustOK(t, "list assignments", err)
	if got := assignmentKeys(as); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Errorf("assignments of %s in %s = %v, want %v", user, org, got, want)
	}
}

func testAssignAndList(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustAssignments(t, s, "usr_1", "acme")
	want := newAssignment("usr_1", "acme", "viewer", "")
	assignAll(t, s,
		newAssignment("usr_1", "acme", "owner", "prj_2"),
		want,
		newAssignment("usr_1", "acme", "owner", "prj_1"),
		newAssignment("usr_1", "globex", "admin", ""),
		newAssignment("usr_2", "acme", "admin", ""),
	)
	mustAssignments(t, s, "usr_1", "acme", "owner@prj_1", "owner@prj_2", "viewer@")
	mustAssignments(t, s, "usr_1", "globex", "admin@")
	as, err := s.ListAssignments(ctx, "usr_1", "acme")
	mustOK(t, "list", err)
	got := as[2]
	if got.UserID != want.UserID || got.OrgID != want.OrgID || got.Role != want.Role || got.ProjectID != "" {
		t.Errorf("assignment = %+v, want %+v", got, want)
	}
	mustTime(t, "created_at", got.CreatedAt, want.CreatedAt)
}

func testDuplicateAssignment(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	assignAll(t, s, newAssignment("usr_1", "acme", "viewer", ""), newAssignment("usr_1", "acme", "viewer", "prj_1"))
	mustErr(t, "same org-wide assignment again", s.Assign(ctx, newAssignment("usr_1", "acme", "viewer", "")), rbac.ErrAlreadyExists)
	mustErr(t, "same project assignment again", s.Assign(ctx, newAssignment("usr_1", "acme", "viewer", "prj_1")), rbac.ErrAlreadyExists)
}

func testUnassign(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	assignAll(t, s,
		newAssignment("usr_1", "acme", "viewer", ""),
		newAssignment("usr_1", "acme", "viewer", "prj_1"),
		newAssignment("usr_1", "globex", "viewer", ""),
	)
	mustErr(t, "unassign another project", s.Unassign(ctx, newAssignment("usr_1", "acme", "viewer", "prj_2")), rbac.ErrNotFound)
	mustErr(t, "unassign another role", s.Unassign(ctx, newAssignment("usr_1", "acme", "owner", "")), rbac.ErrNotFound)
	mustErr(t, "unassign another user", s.Unassign(ctx, newAssignment("usr_2", "acme", "viewer", "")), rbac.ErrNotFound)
	mustOK(t, "unassign the project assignment", s.Unassign(ctx, newAssignment("usr_1", "acme", "viewer", "prj_1")))
	mustAssignments(t, s, "usr_1", "acme", "viewer@")
	mustAssignments(t, s, "usr_1", "globex", "viewer@")
	mustErr(t, "unassign again", s.Unassign(ctx, newAssignment("usr_1", "acme", "viewer", "prj_1")), rbac.ErrNotFound)
	mustOK(t, "assign again after unassign", s.Assign(ctx, newAssignment("usr_1", "acme", "viewer", "prj_1")))
}

func testDeleteRoleAssignments(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	assignAll(t, s,
		newAssignment("usr_1", "acme", "reviewer", ""),
		newAssignment("usr_1", "acme", "reviewer", "prj_1"),
		newAssignment("usr_2", "acme", "reviewer", ""),
		newAssignment("usr_2", "acme", "viewer", ""),
		newAssignment("usr_1", "globex", "reviewer", ""),
	)
	n, err := s.DeleteRoleAssignments(ctx, "acme", "reviewer")
	mustOK(t, "delete role assignments", err)
	if n != 3 {
		t.Errorf("deleted %d assignments, want 3", n)
	}
	mustAssignments(t, s, "usr_1", "acme")
	mustAssignments(t, s, "usr_2", "acme", "viewer@")
	mustAssignments(t, s, "usr_1", "globex", "reviewer@")
	n, err = s.DeleteRoleAssignments(ctx, "acme", "reviewer")
	mustOK(t, "delete again", err)
	if n != 0 {
		t.Errorf("deleted %d assignments the second time, want 0", n)
	}
}

func newGrant(user, org, perm string) rbac.Grant {
	return rbac.Grant{UserID: user, OrgID: org, Permission: perm, CreatedAt: now()}
}

func mustGrants(t *testing.T, s rbac.Store, user, org string, want ...string) {
	t.Helper()
	gs, err := s.ListGrants(context.Background(), user, org)
	mustOK(t, "list grants", err)
	got := make([]string, len(gs))
	for i, g := range gs {
		got[i] = g.Permission
	}
	if !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Errorf("grants of %s in %s = %v, want %v", user, org, got, want)
	}
}

func testGrants(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustGrants(t, s, "usr_1", "acme")
	for _, g := range []rbac.Grant{
		newGrant("usr_1", "acme", "tasks:write"),
		newGrant("usr_1", "acme", "audit:read"),
		newGrant("usr_1", "globex", "projects:*"),
		newGrant("usr_2", "acme", "users:read"),
	} {
		mustOK(t, "add "+g.Permission, s.AddGrant(ctx, g))
	}
	mustGrants(t, s, "usr_1", "acme", "audit:read", "tasks:write")
	gs, err := s.ListGrants(ctx, "usr_1", "globex")
	mustOK(t, "list", err)
	if len(gs) != 1 || gs[0].UserID != "usr_1" || gs[0].OrgID != "globex" || gs[0].Permission != "projects:*" || gs[0].CreatedAt.IsZero() {
		t.Errorf("grants in globex = %+v", gs)
	}
	mustErr(t, "remove a grant the user lacks", s.RemoveGrant(ctx, newGrant("usr_1", "acme", "users:read")), rbac.ErrNotFound)
	mustOK(t, "remove", s.RemoveGrant(ctx, newGrant("usr_1", "acme", "tasks:write")))
	mustGrants(t, s, "usr_1", "acme", "audit:read")
	mustErr(t, "remove again", s.RemoveGrant(ctx, newGrant("usr_1", "acme", "tasks:write")), rbac.ErrNotFound)
}

func testDuplicateGrant(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	mustOK(t, "add", s.AddGrant(ctx, newGrant("usr_1", "acme", "tasks:write")))
	mustErr(t, "add again", s.AddGrant(ctx, newGrant("usr_1", "acme", "tasks:write")), rbac.ErrAlreadyExists)
}

func testAssignConcurrent(t *testing.T, s rbac.Store) {
	var o outcome
	race(concurrency, func(int) {
		o.add(s.Assign(context.Background(), newAssignment("usr_1", "acme", "owner", "prj_1")), rbac.ErrAlreadyExists)
	})
	o.check(t, "assigns of one assignment", rbac.ErrAlreadyExists)
	mustAssignments(t, s, "usr_1", "acme", "owner@prj_1")
}

func testCreateRoleConcurrent(t *testing.T, s rbac.Store) {
	var o outcome
	race(concurrency, func(i int) {
		o.add(s.CreateRole(context.Background(), newRole("acme", "reviewer", fmt.Sprintf("tasks%d:read", i))), rbac.ErrAlreadyExists)
	})
	o.check(t, "creations of one role", rbac.ErrAlreadyExists)
	roles, err := s.ListRoles(context.Background(), "acme")
	mustOK(t, "list", err)
	if len(roles) != 1 {
		t.Errorf("%d roles after the race, want 1", len(roles))
	}
}

func testAddGrantConcurrent(t *testing.T, s rbac.Store) {
	var o outcome
	race(concurrency, func(int) {
		o.add(s.AddGrant(context.Background(), newGrant("usr_1", "acme", "projects:*")), rbac.ErrAlreadyExists)
	})
	o.check(t, "additions of one grant", rbac.ErrAlreadyExists)
	mustGrants(t, s, "usr_1", "acme", "projects:*")
}

func testUnassignConcurrent(t *testing.T, s rbac.Store) {
	a := newAssignment("usr_1", "acme", "owner", "")
	assignAll(t, s, a)
	var o outcome
	race(concurrency, func(int) {
		o.add(s.Unassign(context.Background(), a), rbac.ErrNotFound)
	})
	o.check(t, "unassigns of one assignment", rbac.ErrNotFound)
	mustAssignments(t, s, "usr_1", "acme")
}

func testEraseUser(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	assignAll(t, s, newAssignment("usr_1", "acme", "viewer", ""), newAssignment("usr_1", "globex", "admin", ""),
		newAssignment("usr_2", "acme", "viewer", ""))
	mustOK(t, "grant", s.AddGrant(ctx, rbac.Grant{UserID: "usr_1", OrgID: "acme", Permission: "tasks:read"}))
	mustOK(t, "unassign (history stays until the erase)", s.Unassign(ctx, newAssignment("usr_1", "acme", "viewer", "")))
	mustOK(t, "erase", s.EraseUser(ctx, "usr_1"))
	mustOK(t, "erase again", s.EraseUser(ctx, "usr_1"))
	mustAssignments(t, s, "usr_1", "acme")
	mustAssignments(t, s, "usr_1", "globex")
	if gs, err := s.ListGrants(ctx, "usr_1", "acme"); err != nil || len(gs) != 0 {
		t.Errorf("usr_1's grants after the erase: %+v, %v", gs, err)
	}
	mustAssignments(t, s, "usr_2", "acme", "viewer@")
	// The erased user can be given roles again, from nothing.
	assignAll(t, s, newAssignment("usr_1", "acme", "owner", ""))
	mustAssignments(t, s, "usr_1", "acme", "owner@")
}

// Different changes of one user's roles and grants at once: every one lands, none is lost to
// another (a store that read, changed and wrote back a user's whole set would lose some).
func testDifferentChangesConcurrent(t *testing.T, s rbac.Store) {
	ctx := context.Background()
	const n = 12
	race(n, func(i int) {
		var err error
		if i%2 == 0 {
			err = s.AddGrant(ctx, newGrant("usr_1", "acme", fmt.Sprintf("res%02d:read", i)))
		} else {
			err = s.Assign(ctx, newAssignment("usr_1", "acme", "viewer", fmt.Sprintf("prj_%02d", i)))
		}
		if err != nil {
			t.Errorf("change %d: %v", i, err)
		}
	})
	as, err := s.ListAssignments(ctx, "usr_1", "acme")
	mustOK(t, "list assignments", err)
	gs, err := s.ListGrants(ctx, "usr_1", "acme")
	mustOK(t, "list grants", err)
	if len(as) != n/2 || len(gs) != n/2 {
		t.Errorf("after %d different concurrent changes: %d assignments and %d grants, want %d each", n, len(as), len(gs), n/2)
	}
}

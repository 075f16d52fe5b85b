package rbac_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/rbac"
)

// These benchmarks measure Authorize against Casbin v2 deciding the same requests on the same
// policy, in the same run, and report the ratio (the machines are noisy; ratios travel, absolute
// figures do not).

const benchUsers = 1000

// benchCustomRoles are the custom roles beside the built-in ones; every tenth user holds one.
var benchCustomRoles = []rbac.Role{
	{OrgID: "acme", Name: "reviewer", Permissions: []string{"requirements:*", "proj*:read"}},
	{OrgID: "acme", Name: "auditor", Permissions: []string{"audit:read", "analyses:read", "sessions"}},
	{OrgID: "acme", Name: "ops", Permissions: []string{"sessions:*", "tasks:delete", "*:read"}},
}

// benchPermissions is what the requests ask: every resource of the seed's table with every action.
func benchPermissions() [][2]string {
	var out [][2]string
	for _, res := range []string{"projects", "requirements", "analyses", "tasks", "users", "sessions", "audit", "roles"} {
		for _, act := range []string{"read", "write", "delete", "admin"} {
			out = append(out, [2]string{res, act})
		}
	}
	return out
}

func benchUser(i int) string { return fmt.Sprintf("usr_%04d", i) }

// benchRoles says which roles user i holds: one built-in role each, and a custom one for every
// tenth user.
func benchRoles(i int) []string {
	roles := []string{rbac.BuiltinRoles()[i%4]}
	if i%10 == 0 {
		roles = append(roles, benchCustomRoles[(i/10)%len(benchCustomRoles)].Name)
	}
	return roles
}

// benchPolicy fills a store with the roles and assignments of benchUsers users and returns an
// Authorizer on it, its Versions, and the requests.
func benchPolicy(b *testing.B) (*rbac.Authorizer, *rbac.LocalVersions, []rbac.Request) {
	b.Helper()
	ctx := context.Background()
	store := newMongoStore(b)
	versions := rbac.NewLocalVersions()
	a := rbac.NewAuthorizer(rbac.Config{Store: store, Versions: versions, Now: fixedClock})
	for _, r := range benchCustomRoles {
		if _, err := a.CreateRole(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	var reqs []rbac.Request
	for i := range benchUsers {
		for _, role := range benchRoles(i) {
			// Straight into the store: the Authorizer's Assign would bump the version each time.
			if err := store.Assign(ctx, rbac.Assignment{UserID: benchUser(i), OrgID: "acme", Role: role}); err != nil {
				b.Fatal(err)
			}
		}
		for _, p := range benchPermissions() {
			reqs = append(reqs, rbac.Request{Subject: benchUser(i), Resource: p[0], Action: p[1], OrgID: "acme"})
		}
	}
	if err := versions.Bump(ctx); err != nil {
		b.Fatal(err)
	}
	return a, versions, reqs
}

// casbinModel is RBAC with keyMatch on resource and action separately: the same semantics as
// rbac.Match for the patterns of the table ("*" anything, a trailing "*" a prefix).
const casbinModel = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && keyMatch(r.act, p.act)
`

func benchCasbin(b *testing.B) *casbin.Enforcer {
	b.Helper()
	m, err := model.NewModelFromString(casbinModel)
	if err != nil {
		b.Fatal(err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		b.Fatal(err)
	}
	var p, g [][]string
	addRole := func(name string, perms []string) {
		for _, perm := range perms {
			obj, act, ok := cutPattern(perm)
			if !ok {
				act = "*"
			}
			p = append(p, []string{"role:" + name, obj, act})
		}
	}
	for _, name := range rbac.BuiltinRoles() {
		addRole(name, rbac.PermissionsOf([]string{name}))
	}
	for _, r := range benchCustomRoles {
		addRole(r.Name, r.Permissions)
	}
	for i := range benchUsers {
		for _, role := range benchRoles(i) {
			g = append(g, []string{benchUser(i), "role:" + role})
		}
	}
	if _, err := e.AddPolicies(p); err != nil {
		b.Fatal(err)
	}
	if _, err := e.AddGroupingPolicies(g); err != nil {
		b.Fatal(err)
	}
	return e
}

func cutPattern(p string) (string, string, bool) {
	for i := range len(p) {
		if p[i] == ':' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

var benchSink bool

// BenchmarkAuthorize: a warm decision (the cache hit every guarded tool call takes) against
// Casbin's Enforce of the same request on the same policy, and a cold decision (the version
// bumped before each, so the subject's grants are read from the store again).
func BenchmarkAuthorize(b *testing.B) {
	a, versions, reqs := benchPolicy(b)
	e := benchCasbin(b)
	ctx := context.Background()
	allowed := 0
	for _, r := range reqs { // warm the cache, and check both agree on every request
		d := a.Authorize(ctx, r)
		ok, err := e.Enforce(r.Subject, r.Resource, r.Action)
		if err != nil {
			b.Fatal(err)
		}
		if d.Allowed != ok {
			b.Fatalf("%s %s:%s: ours %v (%s), casbin %v", r.Subject, r.Resource, r.Action, d.Allowed, d.Reason, ok)
		}
		if ok {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(reqs) {
		b.Fatalf("%d of %d requests allowed: the table decides nothing", allowed, len(reqs))
	}
	ours := benchratio.Run(b, "warm", func(b *testing.B) {
		i := 0
		for b.Loop() {
			benchSink = a.Authorize(ctx, reqs[i%len(reqs)]).Allowed
			i++
		}
	})
	theirs := benchratio.Run(b, "casbin", func(b *testing.B) {
		i := 0
		for b.Loop() {
			r := &reqs[i%len(reqs)]
			benchSink, _ = e.Enforce(r.Subject, r.Resource, r.Action)
			i++
		}
	})
	benchratio.Run(b, "cold", func(b *testing.B) {
		i := 0
		for b.Loop() {
			_ = versions.Bump(ctx)
			benchSink = a.Authorize(ctx, reqs[i%len(reqs)]).Allowed
			i += 37 // another subject each time
		}
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"casbin/ours": {theirs, ours}})
}

package rbac_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/rbac"
)

// BenchmarkAuthorizeScale: a warm decision in an organization of 10, 1,000 and 100,000 users,
// each holding a built-in role and half of them one of 1,000 custom roles. The requests come
// from 1,000 active users drawn at random from the population (all of them when there are
// fewer), four permissions each, in shuffled order: the cost must not depend on how many users
// and roles exist. The ratio is the cost at 100,000 users over the cost at 10: flat is 1.
//
// A last case makes all 100,000 users active at once: its decision cache (400,000 decisions)
// is far larger than the CPU's caches, so each look-up waits on memory; that is the cost of
// the working set, not of the policy, and it is reported beside the others.
//
// The store here is an in-memory map: a warm decision never reads the store (the MongoDB
// store has its own conformance suite and BenchmarkAuthorize its cold case), and filling
// FerretDB with 100,000 users would take the benchmark's whole budget.
func BenchmarkAuthorizeScale(b *testing.B) {
	const customRoles, activeUsers = 1000, 1000
	perms := [][2]string{{"projects", "read"}, {"users", "admin"}, {"requirements", "write"}, {"audit", "read"}}
	ctx := context.Background()
	cases := []struct{ users, active int }{{10, 10}, {1_000, activeUsers}, {100_000, activeUsers}, {100_000, 100_000}}
	var samples []*benchratio.Samples
	for _, c := range cases {
		store := newMemStore()
		for r := range customRoles {
			name := fmt.Sprintf("custom-%04d", r)
			store.roles[[2]string{"acme", name}] = rbac.Role{OrgID: "acme", Name: name,
				Permissions: []string{fmt.Sprintf("res%03d:*", r), "requirements:write"}}
		}
		users := make([]string, c.users)
		for i := range users {
			users[i] = fmt.Sprintf("usr_%06d", i)
			store.assign(rbac.Assignment{UserID: users[i], OrgID: "acme", Role: rbac.BuiltinRoles()[i%4]})
			if i%2 == 0 {
				store.assign(rbac.Assignment{UserID: users[i], OrgID: "acme", Role: fmt.Sprintf("custom-%04d", i%customRoles)})
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		var reqs []rbac.Request
		for _, u := range users[:c.active] {
			for _, p := range perms {
				reqs = append(reqs, rbac.Request{Subject: u, Resource: p[0], Action: p[1], OrgID: "acme"})
			}
		}
		rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		a := rbac.NewAuthorizer(rbac.Config{Store: store, Now: fixedClock, CacheLimit: max(len(reqs), rbac.DefaultCacheLimit)})
		allowed := 0
		for _, r := range reqs { // warm
			if a.Authorize(ctx, r).Allowed {
				allowed++
			}
		}
		if allowed == 0 || allowed == len(reqs) {
			b.Fatalf("%d of %d allowed: the table decides nothing", allowed, len(reqs))
		}
		samples = append(samples, benchratio.Run(b, fmt.Sprintf("users-%d/active-%d", c.users, c.active), func(b *testing.B) {
			i := 0
			for b.Loop() {
				benchSink = a.Authorize(ctx, reqs[i%len(reqs)]).Allowed
				i++
			}
		}))
	}
	benchratio.Report(b, map[string][2]*benchratio.Samples{"100k-users/10-users": {samples[2], samples[0]},
		"all-100k-active/10-users": {samples[3], samples[0]}})
}

// memStore is an in-memory rbac.Store for the scale benchmark.
type memStore struct {
	mu          sync.Mutex
	roles       map[[2]string]rbac.Role
	assignments map[[2]string][]rbac.Assignment
}

func newMemStore() *memStore {
	return &memStore{roles: map[[2]string]rbac.Role{}, assignments: map[[2]string][]rbac.Assignment{}}
}

func (m *memStore) assign(a rbac.Assignment) {
	k := [2]string{a.UserID, a.OrgID}
	m.assignments[k] = append(m.assignments[k], a)
}

func (m *memStore) CreateRole(_ context.Context, r rbac.Role) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roles[[2]string{r.OrgID, r.Name}] = r
	return nil
}

func (m *memStore) GetRole(_ context.Context, orgID, name string) (rbac.Role, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.roles[[2]string{orgID, name}]
	if !ok {
		return rbac.Role{}, rbac.ErrNotFound
	}
	return r, nil
}

func (m *memStore) ListRoles(_ context.Context, orgID string) ([]rbac.Role, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []rbac.Role
	for k, r := range m.roles {
		if k[0] == orgID {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) ListAssignments(_ context.Context, userID, orgID string) ([]rbac.Assignment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.assignments[[2]string{userID, orgID}], nil
}

func (m *memStore) ListGrants(context.Context, string, string) ([]rbac.Grant, error) { return nil, nil }

// The benchmark changes nothing after setup.
func (m *memStore) DeleteRole(context.Context, string, string) error { panic("not used") }
func (m *memStore) Assign(context.Context, rbac.Assignment) error    { panic("not used") }
func (m *memStore) Unassign(context.Context, rbac.Assignment) error  { panic("not used") }
func (m *memStore) DeleteRoleAssignments(context.Context, string, string) (int, error) {
	panic("not used")
}
func (m *memStore) AddGrant(context.Context, rbac.Grant) error    { panic("not used") }
func (m *memStore) RemoveGrant(context.Context, rbac.Grant) error { panic("not used") }
func (m *memStore) EraseUser(context.Context, string) error       { panic("not used") }

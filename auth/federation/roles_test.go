package federation_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/bduf/mcpauth/auth/federation"
)

// heldRoles is a user's role assignments in memory (rbac's are tested against the store in rbac).
type heldRoles struct {
	mu   sync.Mutex
	held map[federation.OrgRole]bool
}

func (h *heldRoles) Assign(_ context.Context, _ string, r federation.OrgRole) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held[r] {
		return true, nil
	}
	h.held[r] = true
	return false, nil
}

func (h *heldRoles) Unassign(_ context.Context, _ string, r federation.OrgRole) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.held, r)
	return nil
}

func TestShouldMapGroupsToRolesAndTakeBackOnlyWhatTheMappingGave(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	admin, contributor := federation.OrgRole{OrgID: "acme", Role: "admin"}, federation.OrgRole{OrgID: "acme", Role: "contributor"}
	roles := &heldRoles{held: map[federation.OrgRole]bool{admin: true}} // admin by hand
	rules := []federation.GroupRole{{Group: "eng", OrgID: "acme", Role: "contributor"}, {Group: "admins", OrgID: "acme", Role: "admin"}}
	signIn := func(groups ...string) ([]federation.OrgRole, []federation.OrgRole) {
		t.Helper()
		added, removed, err := federation.SyncRoles(ctx, roles, store, "okta", "usr_1", groups, rules)
		if err != nil {
			t.Fatal(err)
		}
		return added, removed
	}
	if added, removed := signIn("eng", "admins"); !slices.Equal(added, []federation.OrgRole{contributor}) || len(removed) != 0 {
		t.Errorf("first sign-in: added %v removed %v; want contributor added (admin was held by hand)", added, removed)
	}
	if added, removed := signIn(); len(added) != 0 || !slices.Equal(removed, []federation.OrgRole{contributor}) {
		t.Errorf("the groups gone: added %v removed %v; want contributor taken back", added, removed)
	}
	if !roles.held[admin] || roles.held[contributor] {
		t.Errorf("held after the groups went: %v; want admin (by hand) only", roles.held)
	}
	if added, _ := signIn("eng"); !slices.Equal(added, []federation.OrgRole{contributor}) {
		t.Errorf("back in eng: added %v", added)
	}
	if added, removed := signIn("eng"); len(added)+len(removed) != 0 {
		t.Errorf("the same groups again: added %v removed %v; want no change", added, removed)
	}
	// Another connector's grants are its own.
	if got, err := store.GetGrants(ctx, "google", "usr_1"); err != nil || len(got) != 0 {
		t.Errorf("another connector's grants: %v %v", got, err)
	}
}

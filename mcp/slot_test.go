package mcp

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/rbac"
)

// oneUser knows the token "good" (the user usr_1, who may read x, until disabled) and refuses
// any other.
type oneUser struct{ disabled *atomic.Bool }

func (oneUser) Validate(_ context.Context, tok auth.Secret) (token.Claims, error) {
	if tok.Reveal() != "good" {
		return token.Claims{}, token.ErrInvalid
	}
	return token.Claims{Subject: "usr_1", Scopes: []string{"*"}}, nil
}

func (o oneUser) Caller(ctx context.Context, tok auth.Secret) (auth.User, token.Claims, error) {
	c, err := o.Validate(ctx, tok)
	if err == nil && o.disabled.Load() {
		return auth.User{}, token.Claims{}, auth.ErrAccountDisabled
	}
	return auth.User{ID: c.Subject}, c, err
}

type readsX struct{}

func (readsX) Decide(_ context.Context, _ rbac.Credential, r rbac.Request) rbac.Decision {
	perm := r.Resource + ":" + r.Action
	return rbac.Decision{Allowed: perm == "x:read", Reason: "test", Required: []string{perm}}
}

// The HTTP guard makes room for a request's tool-call context in its own allocation. Should a
// request carry more than one call, each must still get an identity of its own, and a call that
// gets none must not see another's.
func TestShouldGiveEachCallOfARequestItsOwnIdentity(t *testing.T) {
	disabled := new(atomic.Bool)
	g, err := NewGuard(GuardConfig{Auth: oneUser{disabled}, Authz: readsX{}, Policy: Policy{Tools: map[string]Rule{
		"read": Require("x:read"), "whoami": Authenticated(), "status": Public()}}})
	if err != nil {
		t.Fatal(err)
	}
	request := func(bearer string) context.Context {
		gc := &guardedCall{Node: call.Node{Context: context.Background(), Request: call.Request{Transport: call.HTTP, Bearer: bearer}}}
		gc.guarded = guardedRequest{slot: &gc.slot}
		return gc
	}
	decided := func(ctx context.Context, tool string) (context.Context, Identity, bool) {
		t.Helper()
		callCtx, _, err := g.decide(ctx, tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		id, ok := IdentityFrom(callCtx)
		return callCtx, id, ok
	}

	ctx := request("good")
	first, firstID, _ := decided(ctx, "read")
	second, secondID, _ := decided(ctx, "whoami")
	if first == second {
		t.Fatal("two calls of one request share a context")
	}
	if firstID.UserID != "usr_1" || !firstID.Decision.Allowed || secondID.UserID != "usr_1" || secondID.Decision.Allowed {
		t.Errorf("identities: first %+v, second %+v; want usr_1 each, with its own call's decision", firstID, secondID)
	}
	if again, _ := IdentityFrom(first); !again.Decision.Allowed || again.Decision.Required[0] != "x:read" {
		t.Errorf("the first call's identity changed after the second was decided: %+v", again)
	}

	// The user is disabled between the request's two calls: the second, a public tool, is
	// served without an identity, and must not see the first's.
	ctx = request("good")
	decided(ctx, "read")
	disabled.Store(true)
	if _, id, ok := decided(ctx, "status"); ok {
		t.Errorf("a public call without a valid credential sees an identity: %+v", id)
	}
}

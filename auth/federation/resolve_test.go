package federation_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// accounts is the local accounts in memory (auth's are tested against the store in auth): ids
// and emails unique, as auth keeps them.
type accounts struct {
	mu      sync.Mutex
	byID    map[string]federation.Account
	created atomic.Int32
}

func newAccounts(existing ...federation.Account) *accounts {
	a := &accounts{byID: map[string]federation.Account{}}
	for _, e := range existing {
		a.byID[e.ID] = e
	}
	return a
}

func (a *accounts) AccountByID(_ context.Context, id string) (federation.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acct, ok := a.byID[id]; ok {
		return acct, nil
	}
	return federation.Account{}, storeerr.ErrNotFound
}

func (a *accounts) AccountByEmail(_ context.Context, email string) (federation.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, acct := range a.byID {
		if acct.Email == email {
			return acct, nil
		}
	}
	return federation.Account{}, storeerr.ErrNotFound
}

func (a *accounts) CreateAccount(_ context.Context, id, email, _, orgID, _ string) (federation.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, acct := range a.byID {
		if acct.ID == id || (email != "" && acct.Email == email) {
			return federation.Account{}, storeerr.ErrAlreadyExists
		}
	}
	acct := federation.Account{ID: id, Email: email, OrgID: orgID}
	a.byID[id] = acct
	a.created.Add(1)
	return acct, nil
}

func newResolver(t *testing.T, accts *accounts) *federation.Resolver {
	var n atomic.Int32
	return &federation.Resolver{Store: newStore(t), Accounts: accts, NewID: func() string { return fmt.Sprintf("usr_sso%d", n.Add(1)) }}
}

func identity(sub, email string, verified bool, groups ...string) federation.Identity {
	return federation.Identity{ConnectorID: "okta", Issuer: "https://acme.okta.example", Subject: sub, Email: email,
		EmailVerified: verified, Groups: groups}
}

func wantDenied(t *testing.T, what string, err error, reason string) {
	t.Helper()
	var d *federation.DeniedError
	if !errors.As(err, &d) || d.Reason != reason {
		t.Errorf("%s: %v, want a refusal for %s", what, err, reason)
	}
}

func TestShouldSignInOnlyWhomThePolicyAllows(t *testing.T) {
	ctx := context.Background()
	ada := federation.Account{ID: "usr_ada", Email: "ada@acme.example", OrgID: "acme"}
	globex := federation.Account{ID: "usr_bob", Email: "bob@globex.example", OrgID: "globex"}
	jit := federation.Policy{JIT: true, OrgID: "acme", DefaultRole: "viewer"}

	t.Run("an unknown identity with JIT off is refused and nothing is made", func(t *testing.T) {
		accts := newAccounts(ada)
		_, err := newResolver(t, accts).Resolve(ctx, identity("00u9", "eve@acme.example", true), federation.Policy{OrgID: "acme"})
		wantDenied(t, "JIT off", err, federation.ReasonUnknownIdentity)
		if accts.created.Load() != 0 {
			t.Error("an account was made")
		}
	})
	t.Run("JIT makes an account once, and the identity signs in as it after", func(t *testing.T) {
		accts := newAccounts()
		r := newResolver(t, accts)
		first, err := r.Resolve(ctx, identity("00u1", "new@acme.example", true), jit)
		if err != nil || !first.Created || first.Account.OrgID != "acme" {
			t.Fatalf("first sign-in: %+v %v", first, err)
		}
		again, err := r.Resolve(ctx, identity("00u1", "new@acme.example", true), jit)
		if err != nil || again.Created || again.Account.ID != first.Account.ID {
			t.Errorf("second sign-in: %+v %v", again, err)
		}
	})
	t.Run("an email already in use is never taken over by JIT", func(t *testing.T) {
		_, err := newResolver(t, newAccounts(ada)).Resolve(ctx, identity("00u2", "ada@acme.example", true), jit)
		wantDenied(t, "JIT onto ada's email", err, federation.ReasonEmailInUse)
	})
	t.Run("email linking only where the provider is authoritative and the email verified", func(t *testing.T) {
		auth := federation.Policy{OrgID: "acme", LinkByEmailDomains: []string{"acme.example"}}
		r := newResolver(t, newAccounts(ada, globex))
		_, err := r.Resolve(ctx, identity("00u3", "ada@acme.example", false), auth)
		wantDenied(t, "an unverified email", err, federation.ReasonUnverifiedEmail) // nOAuth
		o, err := r.Resolve(ctx, identity("00u3", "ada@acme.example", true), auth)
		if err != nil || !o.Linked || o.Account.ID != ada.ID {
			t.Errorf("a verified email of an authoritative domain: %+v %v", o, err)
		}
		_, err = r.Resolve(ctx, identity("00u4", "bob@globex.example", true),
			federation.Policy{OrgID: "acme", LinkByEmailDomains: []string{"globex.example"}})
		wantDenied(t, "another organization's account", err, federation.ReasonOtherOrg)
		_, err = r.Resolve(ctx, identity("00u5", "ada@acme.example", true), federation.Policy{OrgID: "acme"})
		wantDenied(t, "not authoritative (the default)", err, federation.ReasonUnknownIdentity)
	})
	t.Run("domain and group allow-lists", func(t *testing.T) {
		p := jit
		p.AllowedDomains, p.AllowedGroups = []string{"acme.example"}, []string{"mcp-users"}
		r := newResolver(t, newAccounts())
		_, err := r.Resolve(ctx, identity("00u6", "x@evil.example", true, "mcp-users"), p)
		wantDenied(t, "another domain", err, federation.ReasonDomain)
		_, err = r.Resolve(ctx, identity("00u6", "x@acme.example", false, "mcp-users"), p)
		wantDenied(t, "an unverified email in the domain", err, federation.ReasonUnverifiedEmail)
		_, err = r.Resolve(ctx, identity("00u6", "x@acme.example", true, "sales"), p)
		wantDenied(t, "no allowed group", err, federation.ReasonGroup)
		if _, err := r.Resolve(ctx, identity("00u6", "x@acme.example", true, "sales", "mcp-users"), p); err != nil {
			t.Errorf("allowed: %v", err)
		}
	})
	t.Run("a disabled account is refused", func(t *testing.T) {
		off := federation.Account{ID: "usr_off", Email: "off@acme.example", OrgID: "acme", Disabled: true}
		r := newResolver(t, newAccounts(off))
		conformance.MustOK(t, "link", r.Link(ctx, identity("00u7", "off@acme.example", true), off.ID))
		_, err := r.Resolve(ctx, identity("00u7", "off@acme.example", true), jit)
		wantDenied(t, "disabled", err, federation.ReasonDisabled)
	})
	t.Run("explicit linking from a session, never onto another account's identity", func(t *testing.T) {
		r := newResolver(t, newAccounts(ada, globex))
		id := identity("00u8", "whatever@acme.example", false)
		conformance.MustOK(t, "ada links", r.Link(ctx, id, ada.ID))
		conformance.MustOK(t, "ada links again", r.Link(ctx, id, ada.ID))
		wantDenied(t, "bob links ada's identity", r.Link(ctx, id, globex.ID), "identity_linked_elsewhere")
		if o, err := r.Resolve(ctx, id, federation.Policy{OrgID: "acme"}); err != nil || o.Account.ID != ada.ID {
			t.Errorf("the linked identity signs in as %+v %v, want ada", o, err)
		}
	})
	t.Run("the provider's MFA counts only when trusted", func(t *testing.T) {
		r := newResolver(t, newAccounts())
		id := identity("00u10", "m@acme.example", true)
		id.AMR = []string{"pwd", "mfa"}
		if o, _ := r.Resolve(ctx, id, jit); o.MFADone {
			t.Error("MFA counted without TrustMFA")
		}
		trusted := jit
		trusted.TrustMFA = true
		if o, _ := r.Resolve(ctx, id, trusted); !o.MFADone {
			t.Error("MFA not counted with TrustMFA")
		}
	})
}

func TestShouldMakeOneAccountForConcurrentFirstSignIns(t *testing.T) {
	accts := newAccounts()
	r := newResolver(t, accts)
	const racers = 20
	results := make(chan federation.Outcome, racers)
	errs := make(chan error, racers)
	conformance.Race(racers, func(int) {
		o, err := r.Resolve(context.Background(), identity("00uRACE", "race@acme.example", true),
			federation.Policy{JIT: true, OrgID: "acme", DefaultRole: "viewer"})
		results <- o
		errs <- err
	})
	close(results)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent first sign-in: %v", err)
		}
	}
	ids := map[string]bool{}
	for o := range results {
		ids[o.Account.ID] = true
	}
	if len(ids) != 1 || accts.created.Load() != 1 {
		t.Fatalf("%d concurrent first sign-ins made %d accounts (%v), want 1", racers, accts.created.Load(), ids)
	}
}

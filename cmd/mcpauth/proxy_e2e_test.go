package main

// End-to-end: behind a trusted reverse proxy every client has a budget of its own and its own
// address in the audit trail; without one, X-Forwarded-For is ignored.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mcptest"
)

const (
	clientA = "198.51.100.7"
	clientB = "203.0.113.9"
	// tightAddrLimit: 3 logins per address, the identifier limit out of the way.
	tightAddrLimit = "MCPAUTH_RATE_LIMITS=login_id=1000/1m,login_addr=3/1m/3"
)

// forwardedLogin posts a raw auth_login (a session of its own) as if a proxy forwarded it for
// client, and returns the error code of the answer ("" if none of the two expected).
func forwardedLogin(t *testing.T, srv *httpServer, client string, a args) string {
	t.Helper()
	url := srv.URL + "/mcp"
	init := mcptest.Post(t, url, "", mcptest.InitializeJSON, "X-Forwarded-For", client)
	if init.Status != http.StatusOK {
		t.Fatalf("initialize: %d %s", init.Status, init.Body)
	}
	r := mcptest.Post(t, url, "", mcptest.ToolsCallJSON(2, "auth_login", a), "X-Forwarded-For", client,
		"Mcp-Session-Id", init.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version", "2025-06-18")
	if r.Status != http.StatusOK {
		t.Fatalf("auth_login: %d %s", r.Status, r.Body)
	}
	for _, code := range []string{"RATE_LIMITED", "INVALID_CREDENTIALS"} {
		if strings.Contains(string(r.Body), code) {
			return code
		}
	}
	return ""
}

func TestShouldGiveEachClientBehindATrustedProxyItsOwnLoginBudget(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, "MCPAUTH_TRUSTED_PROXIES=127.0.0.1/32", tightAddrLimit)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	owner := dialHTTP(t, srv) // from 127.0.0.1 itself: the proxy's own budget
	ownerID := owner.Login(t, sec, in.Owner()).User.ID

	wrong := args{"email": in.OwnerEmail, "password": "wrong-Password-42"}
	for i := range 3 {
		if got := forwardedLogin(t, srv, clientA, wrong); got != "INVALID_CREDENTIALS" {
			t.Fatalf("client A's guess %d: %q, want INVALID_CREDENTIALS", i+1, got)
		}
	}
	if got := forwardedLogin(t, srv, clientA, wrong); got != "RATE_LIMITED" {
		t.Fatalf("client A's 4th guess: %q, want RATE_LIMITED", got)
	}
	if got := forwardedLogin(t, srv, clientB, wrong); got != "INVALID_CREDENTIALS" {
		t.Fatalf("client B after A's budget ran out: %q, want INVALID_CREDENTIALS (a budget of its own)", got)
	}

	failedFrom := func(addr string) func(auditEvent) bool {
		return func(e auditEvent) bool {
			return failedBecause(ownerID, audit.ReasonInvalidPassword)(e) && e.ClientAddr == addr
		}
	}
	events := awaitEvents(t, owner, args{"type": audit.AuthFailed, "user_id": ownerID}, "3 failed logins from A and 1 from B",
		func(es []auditEvent) bool {
			return countEvents(es, failedFrom(clientA)) >= 3 && countEvents(es, failedFrom(clientB)) >= 1
		})
	if n := countEvents(events, func(e auditEvent) bool { return e.ClientAddr == "127.0.0.1" }); n != 0 {
		t.Errorf("%d AUTH_FAILED events record the proxy's address, want the clients':\n%s", n, dump(events))
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldIgnoreXForwardedForWithoutTrustedProxies(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, tightAddrLimit)
	srv := startHTTP(t, in, "http")
	wrong := args{"email": in.OwnerEmail, "password": "wrong-Password-42"}
	for i := range 3 {
		if got := forwardedLogin(t, srv, clientA, wrong); got != "INVALID_CREDENTIALS" {
			t.Fatalf("guess %d claiming to be A: %q, want INVALID_CREDENTIALS", i+1, got)
		}
	}
	// Claiming another address does not buy a fresh budget: all of them are 127.0.0.1's.
	if got := forwardedLogin(t, srv, clientB, wrong); got != "RATE_LIMITED" {
		t.Fatalf("a guess claiming to be B: %q, want RATE_LIMITED (127.0.0.1's budget is spent)", got)
	}
}

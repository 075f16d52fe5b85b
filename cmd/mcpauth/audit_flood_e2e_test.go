package main

// End-to-end test of an anonymous flood of the audit trail (issue 11): requests anyone can send
// without a credential must not write what they like, or as much as they like, into the trail.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mcptest"
)

func TestShouldBoundWhatAnAnonymousFloodWritesIntoTheTrail(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t) // the default limits: apikey_fail=20/1m/10, calls=6000/1m/1000
	in := st.in
	srv := startHTTP(t, in, "http")
	bootstrap := len(st.waitStored(t, nil, 3))

	// A malformed API key (its checksum fails: no look-up) on a tools/call, with an X-Request-Id
	// far over any bound. (60 KiB: the listener refuses headers over 64 KiB before any handler
	// runs; the writer's caps are tested with 100 KiB strings in audit.)
	const flood = 40
	hugeID := strings.Repeat("A", 60<<10)
	start := time.Now()
	for i := range flood {
		r := mcptest.Post(t, srv.URL+"/mcp", "mcpk_x", mcptest.ToolsCallJSON(i, "auth_whoami", nil), "X-Request-Id", hugeID)
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("flood request %d: %d %s, want 401", i, r.Status, r.Body)
		}
	}
	elapsed := time.Since(start)

	// Every flood event is queued before its 401; the owner's login comes after them in the
	// chain, so once its AUTH_SUCCESS is stored, so is the whole flood.
	owner := dialHTTP(t, srv)
	tok := owner.Login(t, nil, in.Owner())
	success := st.waitStored(t, bson.D{{Key: "type", Value: audit.AuthSuccess}}, 1)
	if success[0].Subject != tok.User.ID {
		t.Fatalf("AUTH_SUCCESS %s, want the owner's %s", success[0], tok.User.ID)
	}

	// The bound from the default limits: API_KEY_USED_FAILED within the per-address failure
	// limit (a burst of 10, then 20 a minute: one per 3 s of the flood), and one AUTHZ_DENIED per
	// refused call within the per-address refusal limit (a burst of 1000: all 40 of them).
	maxFailed := 10 + int(elapsed/(3*time.Second))
	var failed, denied int
	ids := map[string]int{}
	for _, e := range st.stored(t, nil) {
		if len(e.RequestID) > audit.MaxRequestIDLen {
			t.Errorf("event %s stored with a %d-byte request id", e, len(e.RequestID))
		}
		if e.Seq <= int64(bootstrap) || e.ClientAddr != "127.0.0.1" {
			continue
		}
		switch {
		case e.Type == audit.APIKeyUsedFailed:
			failed++
		case e.Type == audit.AuthzDenied && e.tool() == "auth_whoami" && e.Subject == "":
			denied++
		default:
			continue
		}
		if !strings.HasPrefix(e.RequestID, "srv_") {
			t.Errorf("flood event %s has request id %.40q, want one the server made", e, e.RequestID)
		}
		ids[e.RequestID]++
	}
	if failed < 1 || failed > maxFailed || denied != flood {
		t.Fatalf("%d flood requests in %s stored %d API_KEY_USED_FAILED (want 1 to %d) and %d AUTHZ_DENIED (want %d):\n%s",
			flood, elapsed, failed, maxFailed, denied, flood, dump(st.stored(t, nil)))
	}
	t.Logf("%d flood requests in %s: %d API_KEY_USED_FAILED (bound %d), %d AUTHZ_DENIED", flood, elapsed, failed, maxFailed, denied)
	// The events of one request share its server-made id; requests do not share one.
	for id, n := range ids {
		if n > 2 {
			t.Errorf("request id %s is on %d flood events, want at most 2 (one request's)", id, n)
		}
	}
	if len(ids) != flood {
		t.Errorf("%d distinct request ids over %d flood requests, want one each", len(ids), flood)
	}
}

package main

// The official TypeScript SDK v2 (npm @modelcontextprotocol/client) signing in through the
// authorization server, against the real binary: testdata/clients/ts-sdk-v2-e2e.mjs drives
// the SDK's own OAuthClientProvider flow (the person's browser replaced by form posts to the
// real pages) and prints what each step returned; these tests judge it.

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// tsV2Step is one step of ts-sdk-v2-e2e.mjs.
type tsV2Step struct {
	Step           string `json:"step"`
	OK             bool   `json:"ok"`
	Connected      bool   `json:"connected"`
	Authorizations int    `json:"authorizations"`
	Registrations  int    `json:"registrations"`
	TokenRequests  int    `json:"token_requests"`
	ClientID       string `json:"client_id"`
	Iss            string `json:"iss"`
	Request        struct {
		ClientID            string `json:"client_id"`
		Scope               string `json:"scope"`
		Resource            string `json:"resource"`
		CodeChallengeMethod string `json:"code_challenge_method"`
	} `json:"request"`
	// A tampered callback: accepted by finishAuth, or refused with IssuerMismatchError's kind.
	Accepted bool   `json:"accepted"`
	Kind     string `json:"kind"`
	Expected string `json:"expected"`

	Scope      string `json:"scope"`
	HasRefresh bool   `json:"has_refresh"`
	Claims     struct {
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
		Iss      string `json:"iss"`
	} `json:"claims"`
	ProtocolVersion string          `json:"protocol_version"`
	Tools           []string        `json:"tools"`
	IsError         bool            `json:"isError"`
	Structured      json.RawMessage `json:"structured"`
	Rotated         bool            `json:"rotated"`
	Asked           bool            `json:"asked"`
	RequestedScope  string          `json:"requested_scope"`
	Raw             string          `json:"-"`
}

// runTSv2 runs a case of ts-sdk-v2-e2e.mjs against srv and returns a lookup of its steps that
// fails t on a step that is missing or did not run.
func runTSv2(t *testing.T, srv *mcptest.HTTPServer, in *mcptest.Instance, name string, env ...string) func(string) tsV2Step {
	t.Helper()
	nc := mcptest.FindNodeClients(t)
	env = append([]string{"E2E_URL=" + srv.URL, "E2E_EMAIL=" + in.OwnerEmail, "E2E_PASSWORD=" + in.OwnerPassword}, env...)
	r := nc.Run(t, env, 2*time.Minute, "ts-sdk-v2-e2e.mjs", name)
	t.Logf("ts-sdk-v2-e2e.mjs %s (%s):\n%s", name, r.Took.Round(time.Millisecond), r.Stdout)
	if r.Err != nil {
		t.Fatalf("ts-sdk-v2-e2e.mjs %s: %v\n%s%s", name, r.Err, r.Stdout, r.Stderr)
	}
	steps := map[string]tsV2Step{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var s tsV2Step
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		s.Raw = line
		steps[s.Step] = s
	}
	return func(step string) tsV2Step {
		t.Helper()
		s, found := steps[step]
		if !found || !s.OK {
			t.Fatalf("step %s: %s\nnode stderr:\n%s\nserver stderr:\n%s", step, s.Raw, r.Stderr, srv.Proc.Stderr)
		}
		return s
	}
}

func hasScopes(scope string, want ...string) bool {
	got := strings.Fields(scope)
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// Registration, PKCE, the pages, finishAuth with the callback's iss (and the refusal of a
// callback whose iss is wrong or missing), a refresh that rotates, and step-up on a write; on
// a 2025-11-25 session (v2's default) and on the 2026-07-28 protocol (versionNegotiation auto).
func TestShouldLetTheTypeScriptSDKv2RegisterSignInRefreshAndStepUp(t *testing.T) {
	for _, era := range []struct{ negotiation, version string }{{"legacy", "2025-11-25"}, {"auto", "2026-07-28"}} {
		t.Run(era.version, func(t *testing.T) { tsV2RegisterSignInRefreshAndStepUp(t, era.negotiation, era.version) })
	}
}

func tsV2RegisterSignInRefreshAndStepUp(t *testing.T, negotiation, version string) {
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(mcptest.OAuthEnv...), "http")
	issuer, resource := srv.URL, srv.URL+"/mcp"
	ok := runTSv2(t, srv, in, "oauth", "E2E_VERSION_NEGOTIATION="+negotiation)

	first := ok("connect_unauthorized")
	if first.Connected || first.Authorizations != 1 || first.Registrations != 1 || first.ClientID == "" || strings.HasPrefix(first.ClientID, "https://") {
		t.Errorf("the first connect: %s; want a 401, one registration (a client ID of the server's), one authorization", first.Raw)
	}
	if q := first.Request; q.ClientID != first.ClientID || q.CodeChallengeMethod != "S256" || q.Resource != resource || !hasScopes(q.Scope, "projects:read") {
		t.Errorf("the authorization request: %s; want the registered client, S256, resource %s, the read scopes", first.Raw, resource)
	}
	if first.Iss != issuer {
		t.Errorf("the authorization response's iss %q, want the issuer %s", first.Iss, issuer)
	}
	for _, name := range []string{"finish_auth_wrong_iss", "finish_auth_without_iss"} {
		if s := ok(name); s.Accepted || s.Kind != "authorization_response" || s.Expected != issuer {
			t.Errorf("%s: %s; want v2 to refuse the callback (IssuerMismatchError, authorization_response, expecting %s)", name, s.Raw, issuer)
		}
	}
	fin := ok("finish_auth")
	if fin.TokenRequests != 1 || !fin.HasRefresh || !hasScopes(fin.Scope, "projects:read") || hasScopes(fin.Scope, "projects:write") {
		t.Errorf("finishAuth with the callback: %s; want one token request (the refused callbacks redeemed nothing), a refresh token, the read scopes only", fin.Raw)
	}
	if fin.Claims.ClientID != first.ClientID || fin.Claims.Iss != issuer {
		t.Errorf("the access token: %s; want client_id %s from %s", fin.Raw, first.ClientID, issuer)
	}
	if s := ok("connect"); s.ProtocolVersion != version {
		t.Errorf("connect: %s; want protocol %s", s.Raw, version)
	}
	if s := ok("list_tools"); !slices.Contains(s.Tools, "projects_list") || !slices.Contains(s.Tools, "projects_create") {
		t.Errorf("tools/list: %v", s.Tools)
	}
	if s := ok("call_read"); s.IsError || !strings.Contains(string(s.Structured), `"projects":`) {
		t.Errorf("projects_list: %s", s.Raw)
	}
	if s := ok("refresh"); s.IsError || !s.Rotated || s.Authorizations != 1 {
		t.Errorf("refresh: %s; want the call through a rotated refresh token, no new authorization", s.Raw)
	}
	w := ok("call_write")
	if w.IsError || !w.Asked || w.Authorizations != 2 || w.Registrations != 1 || !strings.Contains(string(w.Structured), `"name":"from TypeScript v2"`) {
		t.Errorf("projects_create by step-up: %s; want the project, after a second authorization by the same client", w.Raw)
	}
	if !hasScopes(w.RequestedScope, "projects:read", "projects:write") || !hasScopes(w.Scope, "projects:read", "projects:write") ||
		!hasScopes(w.Claims.Scope, "projects:write") || w.Claims.ClientID != first.ClientID {
		t.Errorf("the step-up's scopes: %s; want projects:write asked for and granted with what was granted before", w.Raw)
	}
	if s := ok("requests"); s.Registrations != 1 || s.TokenRequests != 3 {
		t.Errorf("the SDK's requests: %s; want one registration, three token requests (code, refresh, step-up code)", s.Raw)
	}
}

// A client that names itself by its client ID metadata document URL: the document served on a
// local TLS host the server is told to trust (MCPAUTH_OAUTH_CIMD_TEST_CA), no registration.
func TestShouldLetTheTypeScriptSDKv2SignInWithAClientIDMetadataDocument(t *testing.T) {
	var fetched atomic.Int32
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "https://" + r.Host + r.URL.Path, "client_name": "TypeScript SDK v2 (e2e)",
			"redirect_uris": []string{"http://127.0.0.1/callback"}, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
	}))
	defer doc.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: doc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(append(slices.Clone(mcptest.OAuthEnv), "MCPAUTH_OAUTH_CIMD_TEST_CA="+caFile)...), "http")
	clientID := doc.URL + "/clients/ts-sdk-v2.json"
	ok := runTSv2(t, srv, in, "cimd", "E2E_CLIENT_ID_URL="+clientID)

	first := ok("connect_unauthorized")
	if first.Connected || first.Authorizations != 1 || first.Registrations != 0 || first.ClientID != clientID || first.Request.ClientID != clientID {
		t.Errorf("the first connect: %s; want a 401 and one authorization as %s, no registration", first.Raw, clientID)
	}
	if first.Iss != srv.URL {
		t.Errorf("the authorization response's iss %q, want %s", first.Iss, srv.URL)
	}
	if s := ok("finish_auth"); s.Claims.ClientID != clientID || s.Claims.Iss != srv.URL {
		t.Errorf("the access token: %s; want client_id %s", s.Raw, clientID)
	}
	if s := ok("call_read"); s.IsError || !strings.Contains(string(s.Structured), `"projects":`) {
		t.Errorf("projects_list: %s", s.Raw)
	}
	if s := ok("requests"); s.Registrations != 0 {
		t.Errorf("the SDK's requests: %s; want no registration", s.Raw)
	}
	if fetched.Load() == 0 {
		t.Error("the server never fetched the metadata document")
	}
}

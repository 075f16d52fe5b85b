package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

// These tests drive the guard in process, through mcp-go's own server and client. The identity
// provider and the authorizer are fakes: the real ones are exercised end to end in cmd/.

// fakeAuth knows tokens "viewer", "owner", "narrow" (an owner token of mcpauth's own whose
// scopes were narrowed to projects:read) and "oauth-narrow" (the same, issued to an OAuth
// client).
type fakeAuth struct{}

var users = map[string]struct {
	user   auth.User
	scopes []string
	client string
}{
	"viewer":       {auth.User{ID: "usr_viewer", OrgID: "acme"}, []string{"projects:read"}, token.ClientID},
	"owner":        {auth.User{ID: "usr_owner", OrgID: "acme"}, []string{"projects:*"}, token.ClientID},
	"narrow":       {auth.User{ID: "usr_owner", OrgID: "acme"}, []string{"projects:read"}, token.ClientID},
	"oauth-narrow": {auth.User{ID: "usr_owner", OrgID: "acme"}, []string{"projects:read"}, "mcp_someclient"},
}

func (fakeAuth) Validate(_ context.Context, tok auth.Secret) (token.Claims, error) {
	switch tok.Reveal() {
	case "limited":
		return token.Claims{}, auth.RateLimited(7 * time.Second)
	case "outage":
		return token.Claims{}, apierr.New(apierr.Internal, "revocation list unavailable; refusing the token")
	case "expired":
		return token.Claims{}, token.ErrExpired
	case "foreign":
		return token.Claims{}, token.ErrInvalid.With("reason", "wrong audience")
	}
	u, ok := users[tok.Reveal()]
	if !ok {
		return token.Claims{}, token.ErrInvalid
	}
	return token.Claims{Subject: u.user.ID, OrgID: u.user.OrgID, Scopes: u.scopes, SessionID: "ses_1", ClientID: u.client}, nil
}

func (f fakeAuth) Caller(ctx context.Context, tok auth.Secret) (auth.User, token.Claims, error) {
	c, err := f.Validate(ctx, tok)
	return users[tok.Reveal()].user, c, err
}

// fakeAuthz: the viewer may read projects; the owner may do anything with projects.
type fakeAuthz struct{ panics, fails bool }

// Decide is rbac's rule in miniature: the credential's scopes, then the subject's grants.
func (z fakeAuthz) Decide(_ context.Context, c rbac.Credential, r rbac.Request) rbac.Decision {
	r.Subject = c.Subject
	if !c.AllScopes && !rbac.ScopesAllow(c.Scopes, r.Resource, r.Action) {
		return rbac.Decision{Reason: "the credential's scopes do not include " + r.Resource + ":" + r.Action}
	}
	if z.panics {
		panic("authorizer exploded")
	}
	if z.fails {
		return rbac.Decision{Reason: rbac.ReasonSystemError, Required: []string{r.Resource + ":" + r.Action}}
	}
	perm := r.Resource + ":" + r.Action
	switch {
	case r.Subject == "usr_owner" && r.Resource == "projects", r.Subject == "usr_viewer" && perm == "projects:read":
		return rbac.Decision{Allowed: true, Reason: "granted", Required: []string{perm}, Granted: []string{perm}}
	}
	return rbac.Decision{Reason: "no role allows " + perm, Required: []string{perm}}
}

type harness struct {
	token   atomic.Value // the credential of the next call
	reached atomic.Int32 // handler invocations
	seen    atomic.Value // the identity the last handler saw
	guard   *mcp.Guard
	client  *client.Client
}

var testPolicy = mcp.Policy{Tools: map[string]mcp.Rule{
	"auth_refresh":    mcp.Credential(),
	"projects_list":   mcp.Require("projects:read"),
	"projects_delete": mcp.Require("projects:delete"),
	"server_status":   mcp.Public(),
	"whoami":          mcp.Authenticated(),
}}

func newHarness(t *testing.T, authz fakeAuthz, limit ...throttle.Limit) *harness {
	t.Helper()
	h := &harness{}
	h.token.Store("")
	var limiter throttle.Limiter
	if len(limit) > 0 {
		limiter = throttle.NewLocalLimiter(nil)
	}
	g, err := mcp.NewGuard(mcp.GuardConfig{Auth: fakeAuth{}, Authz: authz, Policy: testPolicy,
		Limiter: limiter, CallLimit: append(limit, throttle.Limit{})[0],
		Credentials: func(context.Context) (auth.Secret, string) { return auth.Secret(h.token.Load().(string)), "bearer" },
		ResourceURI: "https://mcp.example.test/mcp", AuthorizationServers: []string{"https://auth.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	h.guard = g
	handler := func(ctx context.Context, _ mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		h.reached.Add(1)
		id, _ := mcp.IdentityFrom(ctx)
		h.seen.Store(id)
		return mcpgo.NewToolResultText("done"), nil
	}
	s := server.NewMCPServer("test", "1", server.WithToolHandlerMiddleware(g.Middleware()), server.WithToolFilter(g.Filter()))
	for _, name := range []string{"projects_list", "projects_delete", "server_status", "whoami", "unmapped_tool"} {
		s.AddTool(mcpgo.NewTool(name), handler)
	}
	if got := g.CheckTools(s); !slices.Equal(got, []string{"unmapped_tool"}) {
		t.Fatalf("CheckTools = %v, want [unmapped_tool]", got)
	}
	h.client = inProcessClient(t, s)
	return h
}

// inProcessClient is an initialized mcp-go client of s, closed with the test.
func inProcessClient(t *testing.T, s *server.MCPServer) *client.Client {
	t.Helper()
	c, err := client.NewInProcessClient(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(t.Context(), mcpgo.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) call(t *testing.T, token, tool string) *mcpgo.CallToolResult {
	t.Helper()
	h.token.Store(token)
	res, err := h.client.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: tool}})
	if err != nil {
		t.Fatalf("call %s: protocol error %v (a denial must be a tool result)", tool, err)
	}
	return res
}

func errorOf(t *testing.T, res *mcpgo.CallToolResult) map[string]any {
	t.Helper()
	if !res.IsError {
		t.Fatalf("result is not an error: %+v", res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var body struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil {
		t.Fatalf("error result without an error body: %s", b)
	}
	return body.Error
}

func TestShouldAuthorizeEveryToolCall(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		tool     string
		wantCode string // "" = allowed
	}{
		{"a viewer lists projects", "viewer", "projects_list", ""},
		{"a viewer cannot delete a project", "viewer", "projects_delete", "PERMISSION_DENIED"},
		{"an owner deletes a project", "owner", "projects_delete", ""},
		{"a token narrower than its user is held to its scopes", "narrow", "projects_delete", "PERMISSION_DENIED"},
		{"no credential for a guarded tool", "", "projects_list", "UNAUTHENTICATED"},
		{"an invalid token", "forged", "projects_list", "TOKEN_INVALID"},
		{"a public tool without a credential", "", "server_status", ""},
		{"a public tool with a stale token", "forged", "server_status", ""},
		{"an authenticated-only tool", "viewer", "whoami", ""},
		{"a tool without a rule, even for an owner", "owner", "unmapped_tool", "PERMISSION_DENIED"},
	}
	h := newHarness(t, fakeAuthz{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.reached.Load()
			res := h.call(t, tt.token, tt.tool)
			reached := h.reached.Load() > before
			if tt.wantCode == "" {
				if res.IsError || !reached {
					t.Fatalf("denied (%+v) or handler not reached (%v)", res, reached)
				}
				return
			}
			if reached {
				t.Fatal("a denied call reached the handler")
			}
			if got := errorOf(t, res)["code"]; got != tt.wantCode {
				t.Fatalf("code = %v, want %s", got, tt.wantCode)
			}
		})
	}
}

func TestShouldNameTheRequiredPermissionOnADenial(t *testing.T) {
	h := newHarness(t, fakeAuthz{})
	body := errorOf(t, h.call(t, "viewer", "projects_delete"))
	if got, _ := body["required_permissions"].([]any); len(got) != 1 || got[0] != "projects:delete" {
		t.Fatalf("required_permissions = %v", body["required_permissions"])
	}
}

func TestShouldHandTheIdentityToTheHandler(t *testing.T) {
	h := newHarness(t, fakeAuthz{})
	h.call(t, "owner", "projects_delete")
	id := h.seen.Load().(mcp.Identity)
	if id.UserID != "usr_owner" || id.OrgID != "acme" || !id.Decision.Allowed || id.AuthMethod != "bearer" {
		t.Fatalf("identity = %+v", id)
	}
}

func TestShouldRateLimitEachIdentitysCalls(t *testing.T) {
	h := newHarness(t, fakeAuthz{}, throttle.Limit{Rate: 2, Period: time.Minute, Burst: 2})
	for range 2 {
		if res := h.call(t, "viewer", "projects_list"); res.IsError {
			t.Fatalf("call within the limit: %+v", res)
		}
		// tools/list (which checks every tool) does not count against the limit.
		for range 3 {
			if _, err := h.client.ListTools(t.Context(), mcpgo.ListToolsRequest{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	body := errorOf(t, h.call(t, "viewer", "projects_list"))
	if body["code"] != "RATE_LIMITED" || body["retry_after_seconds"] == nil {
		t.Fatalf("third call = %v, want RATE_LIMITED with retry_after_seconds", body)
	}
	if res := h.call(t, "owner", "projects_list"); res.IsError {
		t.Fatal("another identity is limited too")
	}
}

func TestShouldDenyWhenTheAuthorizerFails(t *testing.T) {
	for name, z := range map[string]fakeAuthz{"it panics": {panics: true}, "it reports a system error": {fails: true}} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, z)
			body := errorOf(t, h.call(t, "owner", "projects_delete"))
			if body["code"] != "PERMISSION_DENIED" || body["message"] != rbac.ReasonSystemError {
				t.Fatalf("body = %v", body)
			}
			if h.reached.Load() != 0 {
				t.Fatal("handler reached")
			}
		})
	}
}

func TestShouldListOnlyTheToolsACallerMayCall(t *testing.T) {
	h := newHarness(t, fakeAuthz{})
	list := func(token string) []string {
		h.token.Store(token)
		res, err := h.client.ListTools(t.Context(), mcpgo.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		slices.Sort(names)
		return names
	}
	for _, tt := range []struct {
		token string
		want  []string
	}{
		{"", []string{"server_status"}},
		{"viewer", []string{"projects_list", "server_status", "whoami"}},
		{"owner", []string{"projects_delete", "projects_list", "server_status", "whoami"}},
		{"narrow", []string{"projects_list", "server_status", "whoami"}},
		// An OAuth client's token lists what its user may step up to...
		{"oauth-narrow", []string{"projects_delete", "projects_list", "server_status", "whoami"}},
	} {
		if got := list(tt.token); !slices.Equal(got, tt.want) {
			t.Errorf("tools/list for %q = %v, want %v", tt.token, got, tt.want)
		}
	}
	// ...and calls only what it was granted.
	h.token.Store("oauth-narrow")
	res, err := h.client.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "projects_delete"}})
	if err != nil || !res.IsError {
		t.Errorf("projects_delete with an OAuth token granted projects:read: %v %+v, want a denial", err, res)
	}
}

// A listing of one tool looks to mcp-go's filter like a call's check, which the guard lets
// through for the middleware to decide, unless the server has only that tool. The guard
// counts a server's tools once a second: a guard shared by two servers must count each, or a
// server of one tool would list it to anyone once the other's count was taken.
func TestShouldFilterTheListingOfAOneToolServerBesideAnother(t *testing.T) {
	h := newHarness(t, fakeAuthz{})
	h.call(t, "viewer", "projects_list") // the harness's server of five tools is counted
	single := server.NewMCPServer("single", "1", server.WithToolHandlerMiddleware(h.guard.Middleware()), server.WithToolFilter(h.guard.Filter()))
	single.AddTool(mcpgo.NewTool("projects_delete"), func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		return mcpgo.NewToolResultText("done"), nil
	})
	c := inProcessClient(t, single)
	for _, tt := range []struct {
		token string
		want  int
	}{{"viewer", 0}, {"owner", 1}, {"viewer", 0}} {
		h.token.Store(tt.token)
		res, err := c.ListTools(t.Context(), mcpgo.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tools) != tt.want {
			t.Errorf("the one-tool server lists %d tools to %s, want %d", len(res.Tools), tt.token, tt.want)
		}
		h.call(t, "viewer", "projects_list") // and the other server is counted again in between
	}
}

func TestShouldRefuseAPolicyThatIsNotFailClosed(t *testing.T) {
	for _, p := range []mcp.Policy{
		{Tools: map[string]mcp.Rule{"x": {}}},
		{Tools: map[string]mcp.Rule{"x": mcp.Require("projects:*")}},
		{Tools: map[string]mcp.Rule{"x": mcp.Require("projects")}},
	} {
		if _, err := mcp.NewGuard(mcp.GuardConfig{Auth: fakeAuth{}, Authz: fakeAuthz{}, Policy: p}); err == nil {
			t.Errorf("policy %+v accepted", p.Tools)
		}
	}
}

func TestShouldLoadTheExamplePolicyFile(t *testing.T) {
	p, err := mcp.LoadPolicy("../testdata/guard-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Tools["reports_export"]; !slices.Equal(r.AnyOf, []string{"projects:admin", "audit:read"}) {
		t.Errorf("reports_export = %+v", r)
	}
	if !p.Tools["server_status"].Public || p.Tools["projects_delete"].String() != "projects:delete" {
		t.Errorf("rules = %+v", p.Tools)
	}
	if !slices.Contains(p.AnonymousMethods, "initialize") {
		t.Errorf("anonymous methods = %v", p.AnonymousMethods)
	}
}

// The HTTP guard.

func httpGuard(t *testing.T, anonymous ...string) (http.Handler, *atomic.Int32) {
	t.Helper()
	p := testPolicy
	p.AnonymousMethods = anonymous
	g, err := mcp.NewGuard(mcp.GuardConfig{Auth: fakeAuth{}, Authz: fakeAuthz{}, Policy: p,
		ResourceURI: "https://mcp.example.test/mcp", AuthorizationServers: []string{"https://auth.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	return g.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })), &reached
}

func post(h http.Handler, token, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const (
	initialize   = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`
	callDelete   = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"projects_delete"}}`
	callStatus   = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"server_status"}}`
	metadataURL  = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp"
	batchOfCalls = `[` + callStatus + `,` + callDelete + `]`
)

const (
	discover = `{"jsonrpc":"2.0","id":"d-1","method":"server/discover","params":{}}`
	list     = `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`
	refresh  = `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"auth_refresh","arguments":{"refresh_token":"x"}}}`
)

// refusal is the JSON-RPC error response of an HTTP refusal.
type refusal struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

func TestShouldChallengeHTTPRequestsWithoutAValidToken(t *testing.T) {
	tests := []struct {
		name       string
		anonymous  []string
		token      string
		body       string
		wantStatus int
		wantHeader []string
		// The JSON-RPC error: its code, the request id it echoes, data.code and a part of the
		// message that tells the user why.
		wantRPC  int
		wantID   string
		wantData string
		wantWhy  string
	}{
		// No credential sent: where to log in, no error code (RFC 6750 §3.1).
		{"no token, nothing anonymous", nil, "", initialize, 401, []string{`resource_metadata="` + metadataURL + `"`},
			mcp.CodeUnauthorized, "1", "UNAUTHENTICATED", "a bearer token is required"},
		{"an invalid token", nil, "forged", callDelete, 401, []string{`error="invalid_token"`},
			mcp.CodeUnauthorized, "2", "TOKEN_INVALID", "token is invalid"},
		{"a token for another audience", nil, "foreign", callDelete, 401, []string{`error="invalid_token"`},
			mcp.CodeUnauthorized, "2", "TOKEN_INVALID", "wrong audience"},
		{"an expired token on an initialize anyone may send", []string{"initialize"}, "expired", initialize, 401, []string{`error_description="token has expired"`},
			mcp.CodeUnauthorized, "1", "TOKEN_EXPIRED", "token has expired"},
		{"an expired token on tools/list anyone may send", []string{"tools/list"}, "expired", list, 401, []string{`error="invalid_token"`},
			mcp.CodeUnauthorized, "4", "TOKEN_EXPIRED", "expired"},
		{"an expired token on a public tool", []string{"initialize"}, "expired", callStatus, 401, []string{`error="invalid_token"`},
			mcp.CodeUnauthorized, "3", "TOKEN_EXPIRED", "expired"},
		{"a token without the tool's scope", nil, "viewer", callDelete, 403, []string{`error="insufficient_scope"`, `scope="projects:delete"`},
			mcp.CodeForbidden, "2", "PERMISSION_DENIED", "projects:delete"},
		{"a batch hiding a guarded call behind a public one", []string{"initialize"}, "", batchOfCalls, 401, []string{`resource_metadata="` + metadataURL + `"`},
			mcp.CodeUnauthorized, "null", "UNAUTHENTICATED", "bearer token"},
		{"server/discover where initialize is not anonymous", []string{"tools/list"}, "", discover, 401, []string{`resource_metadata="` + metadataURL + `"`},
			mcp.CodeUnauthorized, `"d-1"`, "UNAUTHENTICATED", "bearer token"},
		{"a rate-limited caller", nil, "limited", callDelete, 429, nil, mcp.CodeRateLimited, "2", "RATE_LIMITED", ""},
		{"a dependency down", nil, "outage", callDelete, 503, nil, mcp.CodeUnavailable, "2", "INTERNAL", "try again"},

		{"initialize when it is allowed anonymously", []string{"initialize"}, "", initialize, 200, nil, 0, "", "", ""},
		{"server/discover wherever initialize is", []string{"initialize"}, "", discover, 200, nil, 0, "", "", ""},
		{"a public tool anonymously", []string{"initialize"}, "", callStatus, 200, nil, 0, "", "", ""},
		{"a refresh with an expired access token", nil, "expired", refresh, 200, nil, 0, "", "", ""},
		{"an owner deleting", nil, "owner", callDelete, 200, nil, 0, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, reached := httpGuard(t, tt.anonymous...)
			w := post(h, tt.token, tt.body)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tt.wantStatus, w.Body)
			}
			if (reached.Load() == 1) != (tt.wantStatus == 200) {
				t.Fatalf("reached the server: %v", reached.Load())
			}
			if w.Code == 429 && w.Header().Get("Retry-After") != "7" {
				t.Errorf("Retry-After = %q, want 7", w.Header().Get("Retry-After"))
			}
			got := w.Header().Get("WWW-Authenticate")
			for _, want := range tt.wantHeader {
				if !strings.Contains(got, want) {
					t.Errorf("WWW-Authenticate = %s, want it to contain %s", got, want)
				}
			}
			if tt.token == "" && strings.Contains(got, "error=") {
				t.Errorf("WWW-Authenticate = %s: a request without a credential gets no error code", got)
			}
			if tt.wantStatus == 200 {
				return
			}
			var r refusal
			if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || r.JSONRPC != "2.0" || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("the body is not a JSON-RPC response (%v): %s", err, w.Body)
			}
			if r.Error.Code != tt.wantRPC || string(r.ID) != tt.wantID || r.Error.Data["code"] != tt.wantData ||
				!strings.Contains(r.Error.Message, tt.wantWhy) || !strings.Contains(r.Error.Message, tt.wantData) {
				t.Errorf("got %s, want code %d, id %s, data.code %s, a message naming it and %q", w.Body, tt.wantRPC, tt.wantID, tt.wantData, tt.wantWhy)
			}
		})
	}
}

func TestShouldServeProtectedResourceMetadata(t *testing.T) {
	h, _ := httpGuard(t)
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		var md mcp.ResourceMetadata
		if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		if md.Resource != "https://mcp.example.test/mcp" || !slices.Equal(md.AuthorizationServers, []string{"https://auth.example.test"}) ||
			!slices.Equal(md.BearerMethodsSupported, []string{"header"}) || !slices.Contains(md.ScopesSupported, "projects:delete") {
			t.Errorf("%s: metadata = %+v", path, md)
		}
	}
}

func TestShouldRefuseCredentialsInTheQueryString(t *testing.T) {
	h, reached := httpGuard(t, "initialize")
	for _, tt := range []struct {
		name, method, target, bearer string
		wantStatus                   int
	}{
		{"an access token on an initialize anyone may send", http.MethodPost, "/mcp?access_token=owner", "", 400},
		{"a token beside a valid header", http.MethodPost, "/mcp?token=x", "owner", 400},
		{"an API key", http.MethodPost, "/mcp?api_key=mcpk_x", "", 400},
		{"a refresh token on the SSE stream", http.MethodGet, "/sse?refresh_token=mcpr_x", "", 400},
		{"a session id is not a credential", http.MethodPost, "/message?sessionId=abc", "", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			var body io.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(initialize)
			}
			r := httptest.NewRequest(tt.method, tt.target, body)
			if tt.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus || (reached.Load() > before) != (tt.wantStatus == 200) {
				t.Fatalf("status %d (reached %v), want %d: %s", w.Code, reached.Load() > before, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 200 {
				return
			}
			var rf refusal
			if !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_request"`) ||
				json.Unmarshal(w.Body.Bytes(), &rf) != nil || rf.Error.Code != -32600 || rf.Error.Data["code"] != "INVALID_ARGUMENT" {
				t.Errorf("WWW-Authenticate %q, body %s; want invalid_request and a JSON-RPC INVALID_ARGUMENT", w.Header().Get("WWW-Authenticate"), w.Body)
			}
		})
	}
}

func TestShouldRefuseServerCapabilitiesTheToolMiddlewareNeverSees(t *testing.T) {
	p := testPolicy
	p.AnonymousMethods = []string{"initialize"}
	p.Methods = map[string]mcp.Rule{
		"resources/read":           mcp.Require("projects:read"),
		"prompts/get":              mcp.Require("projects:delete"),
		"prompts/list":             mcp.Public(),
		"resources/templates/list": mcp.Authenticated(),
	}
	g, err := mcp.NewGuard(mcp.GuardConfig{Auth: fakeAuth{}, Authz: fakeAuthz{}, Policy: p, ResourceURI: "https://mcp.example.test/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	h := g.HTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	msg := func(method string) string { return `{"jsonrpc":"2.0","id":3,"method":"` + method + `","params":{}}` }
	const notFound = -32601 // answered by the guard as a server without the method
	for _, tt := range []struct {
		name, token, body string
		modern            bool // a 2026-07-28 request (Mcp-Protocol-Version)
		want              int
		wantRPC           int // 0: the request reaches the server
	}{
		{"resources without a rule, even for an owner", "owner", msg("resources/list"), false, 200, notFound},
		{"completions without a rule", "owner", msg("completion/complete"), false, 200, notFound},
		{"tasks without a rule", "", msg("tasks/list"), false, 200, notFound},
		{"a method nobody knows, anonymously", "", msg("x/unknown"), false, 200, notFound},
		{"a method nobody knows, with a token", "owner", msg("x/unknown"), false, 200, notFound},
		{"a method nobody knows, in 2026-07-28", "", msg("x/unknown"), true, 404, notFound},
		{"a method 2026-07-28 removed", "", msg("logging/setLevel"), true, 404, notFound},
		{"logging/setLevel before 2026-07-28, anonymously", "", msg("logging/setLevel"), false, 401, mcp.CodeUnauthorized},
		{"a resource read with the rule's permission", "viewer", msg("resources/read"), false, 200, 0},
		{"a resource read anonymously", "", msg("resources/read"), false, 401, mcp.CodeUnauthorized},
		{"a prompt whose permission the token lacks", "viewer", msg("prompts/get"), false, 403, mcp.CodeForbidden},
		{"a prompt the owner may get", "owner", msg("prompts/get"), false, 200, 0},
		{"a public method anonymously", "", msg("prompts/list"), false, 200, 0},
		{"an authenticated method with any valid token", "viewer", msg("resources/templates/list"), false, 200, 0},
		{"a batch hiding an unoffered capability behind initialize", "", `[` + initialize + `,` + msg("resources/list") + `]`, false, 200, notFound},
		{"a batch hiding a guarded capability behind initialize", "", `[` + initialize + `,` + msg("resources/read") + `]`, false, 401, mcp.CodeUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(tt.body))
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.modern {
				r.Header.Set("Mcp-Protocol-Version", "2026-07-28")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want || (reached.Load() > before) != (tt.wantRPC == 0) {
				t.Fatalf("status %d (reached %v), want %d: %s", w.Code, reached.Load() > before, tt.want, w.Body)
			}
			var rf refusal
			if tt.wantRPC != 0 && (json.Unmarshal(w.Body.Bytes(), &rf) != nil || rf.Error.Code != tt.wantRPC) {
				t.Errorf("body %s, want JSON-RPC error %d", w.Body, tt.wantRPC)
			}
		})
	}
}

func TestShouldRefuseAPolicyThatGivesCapabilitiesAToolsRule(t *testing.T) {
	for _, p := range []mcp.Policy{
		{Methods: map[string]mcp.Rule{"tools/list": mcp.Public()}},
		{Methods: map[string]mcp.Rule{"resources/read": mcp.Require("projects:*")}},
		{AnonymousMethods: []string{"resources/list"}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("policy %+v validated", p)
		}
	}
}

package main

// End-to-end tests with the official TypeScript SDK (@modelcontextprotocol/sdk, pinned in
// testdata/clients): testdata/clients/ts-sdk-e2e.mjs drives the real `mcpauth serve` as a
// script on that SDK would, over streamable HTTP, SSE and stdio, and prints what its user sees;
// these tests assert it.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// tsStep is one line of the script's output.
type tsStep struct {
	Step      string          `json:"step"`
	OK        bool            `json:"ok"`
	Tools     []string        `json:"tools"`
	IsError   bool            `json:"isError"`
	Structure json.RawMessage `json:"structured"`
	Error     *tsError        `json:"error"`
	RequestID any             `json:"request_id"`
	SessionID string          `json:"session_id"`
	Differs   bool            `json:"differs"`
	Raw       string          `json:"-"`
}

// tsError is an error as the SDK raised it, with the JSON-RPC body its message ends with.
type tsError struct {
	Class      string          `json:"class"`
	Message    string          `json:"message"`
	HTTPStatus int             `json:"http_status"`
	RawBody    json.RawMessage `json:"body"`
	Body       *tsJSONRPCError `json:"-"` // RawBody, when it is a JSON-RPC error response
}

type tsJSONRPCError struct {
	JSONRPC string `json:"jsonrpc"`
	ID      any    `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Code                string   `json:"code"`
			Message             string   `json:"message"`
			Reason              string   `json:"reason"`
			RequiredPermissions []string `json:"required_permissions"`
			Scope               string   `json:"scope"`
		} `json:"data"`
	} `json:"error"`
}

// tsRun is the script's output, by step.
type tsRun struct {
	steps map[string]tsStep
	out   string
}

// runTSSDK runs one case of the script with env (E2E_* settings; a stdio case's server gets the
// same environment) and returns its steps.
func runTSSDK(t *testing.T, env []string, name string) tsRun {
	t.Helper()
	nc := mcptest.FindNodeClients(t)
	r := nc.Run(t, append(env, fmt.Sprintf("E2E_TIMEOUT_MS=%d", callTimeout.Milliseconds())), 3*time.Minute, "ts-sdk-e2e.mjs", name)
	t.Logf("ts-sdk-e2e.mjs %s (%s):\n%s", name, r.Took.Round(time.Millisecond), r.Stdout)
	run := tsRun{steps: map[string]tsStep{}, out: r.Stdout + r.Stderr}
	if r.Err != nil {
		t.Fatalf("ts-sdk-e2e.mjs %s: %v\n%s", name, r.Err, run.out)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var s tsStep
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("ts-sdk-e2e.mjs %s: output line %q: %v", name, line, err)
		}
		s.Raw = line
		if s.Error != nil && len(s.Error.RawBody) > 0 {
			var b tsJSONRPCError
			if json.Unmarshal(s.Error.RawBody, &b) == nil {
				s.Error.Body = &b
			}
		}
		run.steps[s.Step] = s
	}
	return run
}

// ok returns the step, which must have succeeded.
func (r tsRun) ok(t *testing.T, name string) tsStep {
	t.Helper()
	s, found := r.steps[name]
	if !found {
		t.Fatalf("the script did not get to %s; output:\n%s", name, r.out)
	}
	if !s.OK {
		t.Fatalf("%s failed: %s", name, s.Raw)
	}
	return s
}

// refused returns the error of a step the server refused over HTTP with status and the
// JSON-RPC error code rpcCode, whose message (what the SDK shows) names wantInMessage.
func (r tsRun) refused(t *testing.T, name string, status, rpcCode int, wantInMessage ...string) tsError {
	t.Helper()
	s, found := r.steps[name]
	if !found {
		t.Fatalf("the script did not get to %s; output:\n%s", name, r.out)
	}
	if s.OK || s.Error == nil {
		t.Fatalf("%s: want HTTP %d, got success: %s", name, status, s.Raw)
	}
	e := *s.Error
	if e.HTTPStatus != status {
		t.Errorf("%s: the SDK reports HTTP %d, want %d: %s", name, e.HTTPStatus, status, e.Message)
	}
	for _, w := range wantInMessage {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%s: the error the SDK shows does not name %s: %s", name, w, e.Message)
		}
	}
	if e.Body == nil || e.Body.JSONRPC != "2.0" || e.Body.Error.Code != rpcCode || e.Body.Error.Message == "" {
		t.Errorf("%s: the response body is not a JSON-RPC error with code %d: %s", name, rpcCode, strings.TrimSpace(e.Message))
		return e
	}
	if req, found := r.steps[name+":request"]; found && fmt.Sprint(e.Body.ID) != fmt.Sprint(req.RequestID) {
		t.Errorf("%s: the JSON-RPC error has id %v, the request had %v", name, e.Body.ID, req.RequestID)
	}
	return e
}

// wantDataCode checks the DESIGN code of a guard's JSON-RPC error (error.data.code).
func wantDataCode(t *testing.T, name string, e tsError, code string) {
	t.Helper()
	if e.Body == nil || e.Body.Error.Data.Code != code || e.Body.Error.Data.Message == "" {
		t.Errorf("%s: want error.data.code %s with a message, got %s", name, code, e.Message)
	}
}

func tsEnv(srv *httpServer, kv ...string) []string {
	return append(mcptest.BaseEnv(), append([]string{"E2E_URL=" + srv.URL}, kv...)...)
}

func TestShouldTellATypeScriptSDKClientWhichPermissionItsTokenLacks(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	c.Login(t, sec, in.Owner())
	password := "e2e-Viewer-" + randomHex(8)
	sec.Add(password)
	viewer := c.CreateUser(t, "viewer@example.com", password, "viewer")
	token := c.Login(t, sec, args{"email": viewer.Email, "password": password}).AccessToken

	for _, transport := range []string{"http", "sse"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			r := runTSSDK(t, tsEnv(srv, "E2E_TRANSPORT="+transport, "E2E_TOKEN="+token,
				"E2E_DENIED_TOOL=user_list", "E2E_DENIED_ARGS={}"), "bearer")
			r.ok(t, "connect")
			wantTools(t, "a viewer", r.ok(t, "list_tools").Tools, slices.Concat(publicTools, authenticatedTools), adminTools)
			if w := r.ok(t, "whoami"); w.IsError || !strings.Contains(string(w.Structure), viewer.ID) {
				t.Errorf("auth_whoami: %s", w.Raw)
			}
			// Outside the token's scopes: 403 with the PERMISSION_DENIED error and the permission
			// it needs, in the message the SDK shows.
			e := r.refused(t, "denied", 403, -32011, "PERMISSION_DENIED", "users:read")
			wantDataCode(t, "denied", e, "PERMISSION_DENIED")
			if e.Body != nil && (!slices.Equal(e.Body.Error.Data.RequiredPermissions, []string{"users:read"}) || e.Body.Error.Data.Scope != "users:read") {
				t.Errorf("denied: data.required_permissions %v, data.scope %q, want [users:read] and users:read", e.Body.Error.Data.RequiredPermissions, e.Body.Error.Data.Scope)
			}
			// The connection goes on.
			if w := r.ok(t, "whoami_after_denied"); w.IsError {
				t.Errorf("auth_whoami after the denial: %s", w.Raw)
			}
			r.ok(t, "list_tools_after_denied")
		})
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldRefuseATypeScriptSDKClientWithAnInvalidTokenSayingWhy(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	good := c.Login(t, sec, in.Owner()).AccessToken
	// The same token with one character of its signature changed (a character inside the
	// base64url text: all six of its bits count).
	i := len(good) - 10
	tampered := good[:i] + map[bool]string{true: "A", false: "B"}[good[i] != 'A'] + good[i+1:]
	tokens, _ := json.Marshal([]map[string]string{
		{"label": "garbage", "token": "not-a-token"},
		{"label": "tampered", "token": tampered},
	})
	r := runTSSDK(t, tsEnv(srv, "E2E_TOKENS="+string(tokens)), "bad-tokens")
	for _, label := range []string{"garbage", "tampered"} {
		t.Run(label, func(t *testing.T) {
			// Connecting with it is refused: 401 and the reason, not an anonymous session.
			e := r.refused(t, label+":connect", 401, -32010, "TOKEN_INVALID")
			wantDataCode(t, label+":connect", e, "TOKEN_INVALID")
			if e.Body != nil && e.Body.Error.Data.Reason == "" {
				t.Errorf("%s:connect: TOKEN_INVALID without data.reason (which check failed): %s", label, e.Message)
			}
			// On a connection opened without a token: listing and calling with it are refused too,
			// never answered with the anonymous tool list.
			r.ok(t, label+":connect_anonymous")
			wantDataCode(t, label+":list_tools", r.refused(t, label+":list_tools", 401, -32010, "TOKEN_INVALID"), "TOKEN_INVALID")
			wantDataCode(t, label+":whoami", r.refused(t, label+":whoami", 401, -32010, "TOKEN_INVALID"), "TOKEN_INVALID")
		})
	}
}

func TestShouldLetATypeScriptSDKScriptRefreshItsExpiredTokenOnTheSameConnection(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http", "MCPAUTH_ACCESS_TTL=3s")
	r := runTSSDK(t, tsEnv(srv, "E2E_EMAIL="+in.OwnerEmail, "E2E_PASSWORD="+in.OwnerPassword), "expiry")
	r.ok(t, "connect")
	if l := r.ok(t, "login"); l.IsError {
		t.Fatalf("auth_login: %s", l.Raw)
	}
	wantTools(t, "the owner", r.ok(t, "list_tools").Tools, ownerTools, nil)
	// Once the token expired: 401 TOKEN_EXPIRED for a call, a list and a new connection.
	wantDataCode(t, "whoami_expired", r.refused(t, "whoami_expired", 401, -32010, "TOKEN_EXPIRED"), "TOKEN_EXPIRED")
	wantDataCode(t, "list_tools_expired", r.refused(t, "list_tools_expired", 401, -32010, "TOKEN_EXPIRED"), "TOKEN_EXPIRED")
	wantDataCode(t, "connect_expired", r.refused(t, "connect_expired", 401, -32010, "TOKEN_EXPIRED"), "TOKEN_EXPIRED")
	// auth_refresh still reaches the tool with the expired bearer, and the new token works.
	if f := r.ok(t, "refresh"); f.IsError {
		t.Fatalf("auth_refresh with the expired bearer: %s", f.Raw)
	}
	if w := r.ok(t, "whoami_refreshed"); w.IsError {
		t.Errorf("auth_whoami with the refreshed token: %s", w.Raw)
	}
	wantTools(t, "the owner, refreshed", r.ok(t, "list_tools_refreshed").Tools, ownerTools, nil)
}

func TestShouldTellATypeScriptSDKStdioClientThatTheToolsChangedAtLogin(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	r := runTSSDK(t, in.Env("E2E_BIN="+binPath, "E2E_EMAIL="+in.OwnerEmail, "E2E_PASSWORD="+in.OwnerPassword), "stdio-login")
	r.ok(t, "connect")
	if c := r.ok(t, "capabilities"); !strings.Contains(c.Raw, `"listChanged":true`) {
		t.Errorf("the server's tools capability: %s, want listChanged true", c.Raw)
	}
	if before := r.ok(t, "list_tools_before").Tools; !slices.Equal(before, publicTools) {
		t.Errorf("tools before auth_login: %v, want the public tools %v", before, publicTools)
	}
	if l := r.ok(t, "login"); l.IsError {
		t.Fatalf("auth_login: %s", l.Raw)
	}
	// The SDK got notifications/tools/list_changed and listed again: the owner's tools.
	wantTools(t, "the owner (after list_changed)", r.ok(t, "tools_list_changed").Tools, ownerTools, nil)
	wantTools(t, "the owner", r.ok(t, "list_tools_after").Tools, ownerTools, nil)
}

func TestShouldAnswerATypeScriptSDKClientInADeletedSessionWith404(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	srv := startHTTP(t, in, "http")
	token := dialHTTP(t, srv).Login(t, sec, in.Owner()).AccessToken
	r := runTSSDK(t, tsEnv(srv, "E2E_TOKEN="+token), "session-delete")
	if s := r.ok(t, "connect"); s.SessionID == "" {
		t.Fatalf("no Mcp-Session-Id: %s", s.Raw)
	}
	r.ok(t, "list_tools")
	r.ok(t, "terminate")
	r.ok(t, "reconnect_deleted") // the SDK resumes a session by id without a request
	r.refused(t, "list_tools_deleted", 404, -32001, "ession not found")
	// The script starts over, as the spec asks of a client that gets 404.
	r.ok(t, "connect_new")
	if !r.ok(t, "new_session").Differs {
		t.Errorf("the new connection got the deleted session's id")
	}
	wantTools(t, "the owner", r.ok(t, "list_tools_new").Tools, ownerTools, nil)
}

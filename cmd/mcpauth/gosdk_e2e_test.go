package main

// End-to-end tests with the official Go SDK (github.com/modelcontextprotocol/go-sdk v1.8.0)
// against the real `mcpauth serve`, written as a user of that SDK writes a client: the bearer
// token goes in the http.Client of the SDK's transport (a RoundTripper that sets
// Authorization), and what is asserted is what the SDK hands back: the negotiated protocol,
// tool lists and results, the error of a refused request and whether the session survives it.
//
// Over streamable HTTP the SDK keeps its session after a non-2xx answer only when the body is
// a JSON-RPC error response with the request's id (mcp/streamable.go, checkResponse: such an
// error is returned wrapped in jsonrpc2.ErrRejected; anything else, a null id included
// (internal/jsonrpc2/messages.go, DecodeMessage), fails the connection in Write, and the
// session is then closed with a DELETE): the JSON-RPC bodies of the guard's 401 and 403 are
// what keep a denied call from ending the user's session. Over SSE the SDK reads no body: any
// non-2xx answer to a POST fails the write (mcp/sse.go, sseClientConn.Write) and so the
// connection (internal/jsonrpc2/conn.go), which is why the SSE test here only connects,
// lists and calls.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// The protocol versions of the two eras, as the Go SDK names them.
const (
	sdkModern = "2026-07-28" // the SDK's default: server/discover, no session
	sdkLegacy = "2025-11-25" // initialize and an Mcp-Session-Id
)

// sentRequest is one HTTP request a client sent, and the status it got.
type sentRequest struct {
	Method    string // HTTP method
	RPCMethod string // the JSON-RPC method of a POST ("" for a response or a batch)
	Status    int
	// Of a non-2xx answer: its WWW-Authenticate header and body.
	Challenge string
	Body      string
}

// challenge is the refusal the request got: status, challenge and JSON-RPC body.
func (s sentRequest) challenge() mcptest.Challenge {
	ch := mcptest.NewChallenge(s.Status, s.Challenge)
	ch.Body = []byte(s.Body)
	return ch
}

// bearerTransport is the RoundTripper a client puts in its http.Client to send a bearer
// token: every request carries the current token, which SetToken changes between calls. It
// records what was sent and answered.
type bearerTransport struct {
	next  http.RoundTripper
	token atomic.Pointer[string]
	mu    sync.Mutex
	sent  []sentRequest
}

func newBearerTransport(token string) *bearerTransport {
	b := &bearerTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	b.SetToken(token)
	return b
}

// SetToken changes the token of every later request ("" sends none).
func (b *bearerTransport) SetToken(token string) { b.token.Store(&token) }

func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok := *b.token.Load(); tok != "" {
		req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	s := sentRequest{Method: req.Method}
	if req.Method == http.MethodPost && req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			var m struct {
				Method string `json:"method"`
			}
			if b, err := io.ReadAll(body); err == nil && json.Unmarshal(b, &m) == nil {
				s.RPCMethod = m.Method
			}
		}
	}
	resp, err := b.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	s.Status = resp.StatusCode
	if resp.StatusCode >= 300 {
		// The body is read here and handed on unchanged: a refusal is small and complete.
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		s.Challenge, s.Body = resp.Header.Get("WWW-Authenticate"), string(body)
	}
	b.mu.Lock()
	b.sent = append(b.sent, s)
	b.mu.Unlock()
	return resp, nil
}

// Sent returns the requests sent so far.
func (b *bearerTransport) Sent() []sentRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sent)
}

// lastRefusal is the refusal of the last POST answered with a non-2xx status.
func (b *bearerTransport) lastRefusal(t *testing.T, what string) mcptest.Challenge {
	t.Helper()
	sent := b.Sent()
	for i := len(sent) - 1; i >= 0; i-- {
		if s := sent[i]; s.Method == http.MethodPost && s.Status >= 300 {
			return s.challenge()
		}
	}
	t.Fatalf("%s: no request was refused; requests %+v", what, sent)
	return mcptest.Challenge{}
}

// httpClient is the http.Client of a client transport: b's token on every request, and no
// redirect followed (it would carry the token elsewhere).
func (b *bearerTransport) httpClient() *http.Client {
	return &http.Client{Transport: b, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// goSDKClient is the SDK client the tests connect with.
var goSDKClient = sdk.NewClient(&sdk.Implementation{Name: "mcpauth-e2e-gosdk", Version: "1.0"}, nil)

// connectGoSDK connects the SDK over streamable HTTP ("http", to /mcp) or SSE ("sse", to
// /sse) with b's http.Client, asking for protocol version ("" for the SDK's default). The
// session is closed when t ends.
func connectGoSDK(t *testing.T, srv *httpServer, kind string, b *bearerTransport, version string) (*sdk.ClientSession, error) {
	t.Helper()
	var tr sdk.Transport
	switch kind {
	case "http":
		tr = &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: b.httpClient(), MaxRetries: -1}
	case "sse":
		tr = &sdk.SSEClientTransport{Endpoint: srv.URL + "/sse", HTTPClient: b.httpClient()}
	default:
		t.Fatalf("connectGoSDK: transport %q", kind)
	}
	// The SSE transport's stream lives on Connect's context: it must outlast the connect, so
	// the connect is bounded by a timer instead.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	type connected struct {
		cs  *sdk.ClientSession
		err error
	}
	done := make(chan connected, 1)
	go func() {
		cs, err := goSDKClient.Connect(ctx, tr, &sdk.ClientSessionOptions{ProtocolVersion: version})
		done <- connected{cs, err}
	}()
	select {
	case c := <-done:
		if c.err != nil {
			return nil, c.err
		}
		t.Cleanup(func() { _ = c.cs.Close() })
		return c.cs, nil
	case <-time.After(startTimeout):
		cancel()
		t.Fatalf("Go SDK connect (%s) did not return within %s; requests %+v", kind, startTimeout, b.Sent())
		return nil, nil
	}
}

// mustConnectGoSDK is connectGoSDK failing t on an error.
func mustConnectGoSDK(t *testing.T, srv *httpServer, kind string, b *bearerTransport, version string) *sdk.ClientSession {
	t.Helper()
	cs, err := connectGoSDK(t, srv, kind, b, version)
	if err != nil {
		t.Fatalf("Go SDK connect (%s, protocol %q): %v; requests %+v", kind, version, err, b.Sent())
	}
	return cs
}

// goSDKTools lists the session's tools, sorted.
func goSDKTools(t *testing.T, cs *sdk.ClientSession) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names, nil
}

func mustGoSDKTools(t *testing.T, cs *sdk.ClientSession) []string {
	t.Helper()
	names, err := goSDKTools(t, cs)
	if err != nil {
		t.Fatalf("Go SDK ListTools: %v", err)
	}
	return names
}

// goSDKCall calls a tool and returns its structuredContent, which must be the same JSON as
// its one text content.
func goSDKCall(t *testing.T, cs *sdk.ClientSession, tool string, a args) (res mcptest.Result, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if a == nil {
		a = args{}
	}
	r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: a})
	if err != nil {
		return mcptest.Result{}, err
	}
	structured, err := json.Marshal(r.StructuredContent)
	if err != nil {
		t.Fatalf("%s: structuredContent: %v", tool, err)
	}
	if len(r.Content) != 1 {
		t.Fatalf("%s: want one text content, got %d", tool, len(r.Content))
	}
	text, ok := r.Content[0].(*sdk.TextContent)
	if !ok {
		t.Fatalf("%s: content is %T, not text", tool, r.Content[0])
	}
	var fromText, fromStructured any
	if json.Unmarshal([]byte(text.Text), &fromText) != nil || json.Unmarshal(structured, &fromStructured) != nil ||
		!jsonEqual(fromText, fromStructured) {
		t.Fatalf("%s: text content %s differs from structuredContent %s", tool, text.Text, structured)
	}
	return mcptest.Result{Tool: tool, IsError: r.IsError, Raw: structured}, nil
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func mustGoSDKCall(t *testing.T, cs *sdk.ClientSession, tool string, a args) mcptest.Result {
	t.Helper()
	r, err := goSDKCall(t, cs, tool, a)
	if err != nil {
		t.Fatalf("Go SDK CallTool %s: %v", tool, err)
	}
	return r
}

// goSDKRefusal is what a Go SDK user can take from a refused request: the error's text and
// the JSON-RPC error it wraps (a *jsonrpc.Error), with its data decoded.
type goSDKRefusal struct {
	Text   string
	Code   int64
	Data   mcptest.APIError
	Reason string // data.reason (TOKEN_INVALID: which check failed)
	Scope  string // data.scope (403: the scopes a token would need, as in the challenge)
}

// wantGoSDKRefusal checks that err is the SDK's report of a refusal with JSON-RPC code and
// data.code dataCode, and that its text (what the user sees) names dataCode and every one of
// inText.
func wantGoSDKRefusal(t *testing.T, what string, err error, code int64, dataCode string, inText ...string) goSDKRefusal {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: want an error with %s, got success", what, dataCode)
	}
	r := goSDKRefusal{Text: err.Error()}
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		t.Fatalf("%s: the error does not carry the JSON-RPC error of the response (the SDK found no JSON-RPC body): %v", what, err)
	}
	r.Code = werr.Code
	var data struct {
		mcptest.APIError
		Reason string `json:"reason"`
		Scope  string `json:"scope"`
	}
	if err := json.Unmarshal(werr.Data, &data); err != nil {
		t.Fatalf("%s: error.data %s: %v", what, werr.Data, err)
	}
	r.Data, r.Reason, r.Scope = data.APIError, data.Reason, data.Scope
	if r.Code != code || r.Data.Code != dataCode || r.Data.Message == "" {
		t.Fatalf("%s: JSON-RPC error %d with data %s, want %d with data.code %s and a message", what, r.Code, werr.Data, code, dataCode)
	}
	for _, w := range append([]string{dataCode}, inText...) {
		if !strings.Contains(r.Text, w) {
			t.Errorf("%s: the error the SDK returns does not name %s: %s", what, w, r.Text)
		}
	}
	return r
}

// refusedToken is a credential every client must see refused, with the reason: the data.code
// of the 401 and a word of its message.
type refusedToken struct{ name, token, code, why string }

// refusedTokens are no token, an expired one, a forged one and an API key that does not exist.
func refusedTokens(expired string) []refusedToken {
	return []refusedToken{
		{"no token", "", "UNAUTHENTICATED", "required"},
		{"an expired token", expired, "TOKEN_EXPIRED", "expired"},
		{"a token with a forged signature", tamperSignature(expired), "TOKEN_INVALID", "signature"},
		{"an API key that does not exist", "mcpk_" + strings.Repeat("a", 40), "TOKEN_INVALID", "invalid"},
	}
}

// expiredAccessToken logs the owner in on a server started with a short MCPAUTH_ACCESS_TTL and
// returns the tokens once the guard refuses the access token as expired.
func expiredAccessToken(t *testing.T, in *instance, srv *httpServer, sec *secrets) tokenResult {
	t.Helper()
	tok := decode[tokenResult](t, dialHTTP(t, srv).Call(t, "auth_login", in.Owner()))
	sec.Add(tok.AccessToken, tok.RefreshToken)
	tick := time.NewTicker(100 * time.Millisecond) // the clock decides: poll it
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := mcptest.Post(t, srv.URL+"/mcp", tok.AccessToken, mcptest.InitializeJSON)
		if r.Status == http.StatusUnauthorized {
			r.Challenge().WantRefusal(t, mcptest.RPCUnauthorized, "TOKEN_EXPIRED")
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access token (expires_at %s) was still accepted %s later", tok.ExpiresAt, time.Since(tok.ExpiresAt))
		}
		<-tick.C
	}
}

func TestShouldNegotiateTheSameProtocolWithTheGoSDKWithOrWithoutAToken(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	owner := dialHTTP(t, srv).Login(t, sec, in.Owner())

	for _, transport := range []string{"http", "sse"} {
		versions := map[string]string{}
		for _, tt := range []struct {
			name        string
			token       string
			want, hide  []string // tools the list must and must not show
			call        string
			a           args
			wantInValue string // the call's result names this
		}{
			{"without a token", "", publicTools, slices.Concat(authenticatedTools, adminTools),
				"auth_validate", args{"token": owner.AccessToken}, owner.User.ID},
			{"with the owner's token", owner.AccessToken, ownerTools, nil, "auth_whoami", nil, in.OwnerEmail},
		} {
			t.Run(transport+", "+tt.name, func(t *testing.T) {
				b := newBearerTransport(tt.token)
				cs := mustConnectGoSDK(t, srv, transport, b, "")
				versions[tt.name] = cs.InitializeResult().ProtocolVersion
				t.Logf("%s: negotiated protocol %s", transport, versions[tt.name])
				// Over streamable HTTP the SDK opens with server/discover, which the server
				// answered: no fallback to initialize.
				if sent := b.Sent(); transport == "http" && (len(sent) == 0 || sent[0].RPCMethod != "server/discover" || sent[0].Status != http.StatusOK) {
					t.Errorf("the SDK's first request: %+v, want server/discover answered 200", sent)
				}
				wantTools(t, tt.name, mustGoSDKTools(t, cs), tt.want, tt.hide)
				if r := mustGoSDKCall(t, cs, tt.call, tt.a); r.IsError || !strings.Contains(string(r.Raw), tt.wantInValue) {
					t.Errorf("%s: %s, want a result naming %s", tt.call, r.Raw, tt.wantInValue)
				}
				for _, s := range b.Sent() {
					if s.Status >= 300 {
						t.Errorf("a request of the session was refused: %s %s: %d %s", s.Method, s.RPCMethod, s.Status, s.Body)
					}
				}
			})
		}
		if a, b := versions["without a token"], versions["with the owner's token"]; a != sdkModern || b != sdkModern {
			t.Errorf("%s: negotiated protocol %q without a token, %q with one; want %s for both", transport, a, b, sdkModern)
		}
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldKeepAGoSDKSessionAliveAfterACallOutsideItsTokensScopes(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	owner := dialHTTP(t, srv)
	ownerToken := owner.Login(t, sec, in.Owner()).AccessToken

	for _, era := range []struct{ name, version string }{
		{"protocol 2026-07-28, the SDK's default", ""},
		{"protocol 2025-11-25, in an Mcp-Session-Id session", sdkLegacy},
	} {
		t.Run(era.name, func(t *testing.T) {
			// An API key that may read the audit trail and nothing else.
			key := createKey(t, owner, sec, "narrow "+randomHex(4), []string{"audit:read"}, nil)
			b := newBearerTransport(key.Key)
			cs := mustConnectGoSDK(t, srv, "http", b, era.version)
			sid := cs.ID()
			if era.version == sdkLegacy && sid == "" {
				t.Fatalf("protocol %s: no Mcp-Session-Id", cs.InitializeResult().ProtocolVersion)
			}

			// A call outside the key's scopes: the SDK returns the server's PERMISSION_DENIED
			// with the permission it needs.
			_, err := goSDKCall(t, cs, "user_list", nil)
			r := wantGoSDKRefusal(t, "user_list with an audit:read key", err, mcptest.RPCForbidden, "PERMISSION_DENIED", "users:read")
			if !slices.Equal(r.Data.RequiredPermissions, []string{"users:read"}) || r.Scope != "users:read" {
				t.Errorf("data.required_permissions %v, data.scope %q; want [users:read] and users:read", r.Data.RequiredPermissions, r.Scope)
			}
			t.Logf("the SDK's error: %s", r.Text)
			ch := b.lastRefusal(t, "user_list")
			ch.Want(t, http.StatusForbidden, "insufficient_scope", srv.URL+"/.well-known/oauth-protected-resource/mcp")
			if ch.Params["scope"] != "users:read" {
				t.Errorf("the 403's challenge %s: scope %q, want users:read", ch.Header, ch.Params["scope"])
			}

			// The session goes on: the key's own calls work, and with a good token (the same
			// user's session token) so does the call that was denied.
			if w := decode[whoamiResult](t, mustGoSDKCall(t, cs, "auth_whoami", nil)); w.AuthMethod != "api_key" || !slices.Equal(w.Scopes, []string{"audit:read"}) {
				t.Errorf("auth_whoami after the denial: %+v", w)
			}
			b.SetToken(ownerToken)
			if l := decode[userListResult](t, mustGoSDKCall(t, cs, "user_list", nil)); !slices.ContainsFunc(l.Users, func(u userView) bool { return u.Email == in.OwnerEmail }) {
				t.Errorf("user_list with the owner's token: %+v", l)
			}
			wantTools(t, "the owner", mustGoSDKTools(t, cs), ownerTools, nil)
			if cs.ID() != sid {
				t.Errorf("the session id changed from %q to %q", sid, cs.ID())
			}
			for _, s := range b.Sent() {
				if s.Method == http.MethodDelete {
					t.Errorf("the SDK ended the session (DELETE) before it was closed: %+v", b.Sent())
				}
			}
		})
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldTellAGoSDKUserWhyItsTokenIsRefused(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http", "MCPAUTH_ACCESS_TTL=2s")
	expired := expiredAccessToken(t, in, srv, sec).AccessToken

	for _, tt := range refusedTokens(expired) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantReason := func(b *bearerTransport, what string, err error) {
				t.Helper()
				b.lastRefusal(t, what).Want(t, http.StatusUnauthorized, mcptest.ChallengeError(tt.token), srv.URL+"/.well-known/oauth-protected-resource/mcp")
				r := wantGoSDKRefusal(t, what, err, mcptest.RPCUnauthorized, tt.code, tt.why)
				if tt.code == "TOKEN_INVALID" && r.Reason == "" {
					t.Errorf("%s: TOKEN_INVALID without data.reason: %s", what, r.Text)
				}
				t.Logf("%s: the SDK's error: %s", what, r.Text)
			}
			if tt.token != "" {
				// Connecting with it fails, saying why: no anonymous session instead.
				b := newBearerTransport(tt.token)
				cs, err := connectGoSDK(t, srv, "http", b, "")
				if err == nil {
					names, _ := goSDKTools(t, cs)
					t.Fatalf("connect: a session (protocol %s, tools %v), want the refusal", cs.InitializeResult().ProtocolVersion, names)
				}
				wantReason(b, "connect", err)
			}

			// In a session opened without a token, a list and a call with it are refused with
			// the reason (without a token, only what needs one): never the anonymous tool list.
			b := newBearerTransport("")
			cs := mustConnectGoSDK(t, srv, "http", b, "")
			b.SetToken(tt.token)
			if tt.token != "" {
				names, err := goSDKTools(t, cs)
				if err == nil {
					t.Fatalf("tools/list: %v, want the refusal", names)
				}
				wantReason(b, "tools/list", err)
			}
			_, err := goSDKCall(t, cs, "user_list", nil)
			wantReason(b, "user_list", err)
			// A 401 does not end the session either.
			b.SetToken("")
			wantTools(t, "an anonymous caller after the 401", mustGoSDKTools(t, cs), publicTools, adminTools)
		})
	}
}

func TestShouldAnswer404ToAGoSDKSessionIDReusedAfterTheSessionClosed(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	token := dialHTTP(t, srv).Login(t, sec, in.Owner()).AccessToken

	for _, tt := range []struct {
		name, version string
		session       bool // the server issues an Mcp-Session-Id
	}{
		{"protocol 2025-11-25", sdkLegacy, true},
		{"protocol 2026-07-28 has no session to close", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBearerTransport(token)
			cs := mustConnectGoSDK(t, srv, "http", b, tt.version)
			version, sid := cs.InitializeResult().ProtocolVersion, cs.ID()
			wantTools(t, "the owner", mustGoSDKTools(t, cs), ownerTools, nil)
			if (sid != "") != tt.session {
				t.Fatalf("protocol %s: Mcp-Session-Id %q; want one: %v", version, sid, tt.session)
			}
			if err := cs.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var deletes []sentRequest
			for _, s := range b.Sent() {
				if s.Method == http.MethodDelete {
					deletes = append(deletes, s)
				}
			}
			if !tt.session {
				if len(deletes) != 0 {
					t.Errorf("protocol %s: Close sent DELETE without a session: %+v", version, deletes)
				}
				return
			}
			if len(deletes) != 1 || deletes[0].Status != http.StatusOK {
				t.Fatalf("Close: DELETE requests %+v, want one answered 200", deletes)
			}
			// The closed session's id, reused as raw HTTP, is unknown: 404 with a JSON-RPC error.
			for what, body := range map[string]string{
				"a tool call":  mcptest.ToolsCallJSON(9, "auth_whoami", nil),
				"a tools/list": `{"jsonrpc":"2.0","id":10,"method":"tools/list"}`,
			} {
				r := mcptest.Post(t, srv.URL+"/mcp", token, body, "Mcp-Session-Id", sid, "Mcp-Protocol-Version", version)
				wantSessionNotFound(t, what+" in the closed session", r)
				var rf mcptest.Refusal
				if json.Unmarshal(r.Body, &rf) == nil && rf.Error.Code != mcptest.RPCSessionNotFound {
					t.Errorf("%s in the closed session: JSON-RPC code %d, want %d: %s", what, rf.Error.Code, mcptest.RPCSessionNotFound, r.Body)
				}
			}
			if st := sessionRequest(t, srv, http.MethodDelete, token, sid); st != http.StatusNotFound {
				t.Errorf("a second DELETE of the closed session: %d, want 404", st)
			}
		})
	}
}

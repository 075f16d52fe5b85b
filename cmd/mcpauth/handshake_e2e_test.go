package main

// The handshakes and refusals every MCP client meets first, as raw HTTP: what an
// initialize or a 2026-07-28 server/discover gets with no token, a good one, an expired one and
// a foreign one, under the default anonymous methods and under --anonymous-methods. The
// official SDKs' view of the same is in the client e2e tests.

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

const modern = "2026-07-28"

// modernPost sends a 2026-07-28 request: the version in _meta and in Mcp-Protocol-Version, the
// method (and tool name) in Mcp-Method / Mcp-Name.
func modernPost(t *testing.T, srv *httpServer, bearer, method, name string, params map[string]any) mcptest.Response {
	t.Helper()
	body, headers := modernRequest(method, name, params)
	return mcptest.Post(t, srv.URL+"/mcp", bearer, body, headers...)
}

// modernRequest is the body and header pairs of a 2026-07-28 request (see modernPost).
func modernRequest(method, name string, params map[string]any) (body string, headerPairs []string) {
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{"io.modelcontextprotocol/protocolVersion": modern,
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{}}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
	headerPairs = []string{"Mcp-Protocol-Version", modern, "Mcp-Method", method}
	if name != "" {
		headerPairs = append(headerPairs, "Mcp-Name", name)
	}
	return string(b), headerPairs
}

// rpcResult decodes a JSON-RPC result from a JSON or SSE response.
func rpcResult[T any](t *testing.T, r mcptest.Response) T {
	t.Helper()
	body := r.Body
	if strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.Lines(string(r.Body)) {
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				body = []byte(data)
			}
		}
	}
	var msg struct {
		Result T               `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(body, &msg) != nil || msg.Error != nil {
		t.Fatalf("HTTP %d, want a JSON-RPC result: %s", r.Status, r.Body)
	}
	return msg.Result
}

type discoverResult struct {
	SupportedVersions []string `json:"supportedVersions"`
}

func TestShouldAnswerEveryClientsHandshakeTheSameWithOrWithoutAToken(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http", "MCPAUTH_ACCESS_TTL=2s")
	c := dialHTTP(t, srv)
	tok := c.Login(t, nil, in.Owner())

	// server/discover (2026-07-28) is let through wherever initialize is: the negotiated
	// version does not depend on whether a token was sent.
	anon := rpcResult[discoverResult](t, modernPost(t, srv, "", "server/discover", "", nil))
	authed := rpcResult[discoverResult](t, modernPost(t, srv, tok.AccessToken, "server/discover", "", nil))
	if !slices.Contains(anon.SupportedVersions, modern) || !slices.Equal(anon.SupportedVersions, authed.SupportedVersions) {
		t.Fatalf("server/discover: anonymous %+v, with a token %+v; want the same, with %s", anon, authed, modern)
	}
	// A stateless tools/list with the token sees the guarded tools; without, the public ones.
	type toolList struct{ Tools []struct{ Name string } }
	names := func(l toolList) (out []string) {
		for _, tool := range l.Tools {
			out = append(out, tool.Name)
		}
		return out
	}
	if got := names(rpcResult[toolList](t, modernPost(t, srv, tok.AccessToken, "tools/list", "", nil))); !slices.Contains(got, "user_list") {
		t.Errorf("2026-07-28 tools/list with the owner's token: %v, want user_list among them", got)
	}
	if got := names(rpcResult[toolList](t, modernPost(t, srv, "", "tools/list", "", nil))); slices.Contains(got, "user_list") || !slices.Contains(got, "auth_login") {
		t.Errorf("2026-07-28 tools/list without a token: %v, want the public tools only", got)
	}
	// 2026-07-28 has no sessions: GET and DELETE are 405, not a stream; before it, a GET
	// without a session is 400.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(method, srv.URL+"/mcp", nil)
		req.Header.Set("Mcp-Protocol-Version", modern)
		req.Header.Set("Mcp-Session-Id", "never-issued")
		resp, err := mcptest.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("2026-07-28 %s /mcp: %d, want 405", method, resp.StatusCode)
		}
	}
	if r := mcptest.Get(t, srv.URL+"/mcp"); r.Status != http.StatusBadRequest {
		t.Errorf("GET /mcp without a session (older protocol): %d, want 400", r.Status)
	}

	// An expired, a forged and a foreign token are refused on the handshake itself, with the
	// reason, in both eras; never answered as if no token had been sent.
	expired := tok.AccessToken
	deadline := time.Now().Add(30 * time.Second)
	for mcptest.Post(t, srv.URL+"/mcp", expired, mcptest.InitializeJSON).Status != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the 2 s access token never expired")
		}
		time.Sleep(100 * time.Millisecond) // waiting for the clock: nothing to await
	}
	for _, tt := range refusedTokens(expired)[1:] { // a token sent and refused; no token is below
		t.Run(tt.name, func(t *testing.T) {
			for what, r := range map[string]mcptest.Response{
				"initialize":      mcptest.Post(t, srv.URL+"/mcp", tt.token, mcptest.InitializeJSON),
				"server/discover": modernPost(t, srv, tt.token, "server/discover", "", nil),
				"tools/list":      modernPost(t, srv, tt.token, "tools/list", "", nil),
			} {
				ch := r.Challenge()
				ch.Want(t, http.StatusUnauthorized, "invalid_token", srv.URL+"/.well-known/oauth-protected-resource/mcp")
				rf := ch.WantRefusal(t, mcptest.RPCUnauthorized, tt.code)
				if id := map[string]string{"initialize": "1"}[what]; id == "" && string(rf.ID) != "7" || id != "" && string(rf.ID) != id {
					t.Errorf("%s: the refusal's id is %s, want the request's", what, rf.ID)
				}
				if !strings.Contains(strings.ToLower(rf.Error.Message), tt.why) {
					t.Errorf("%s: message %q does not say why (%s)", what, rf.Error.Message, tt.why)
				}
			}
		})
	}
	// The one exception: the expired token's own refresh, on the same request path.
	c.SetBearer(expired)
	if fresh := c.Refresh(t, nil, tok.RefreshToken); fresh.SessionID != tok.SessionID {
		t.Fatalf("refresh with an expired bearer: %+v", fresh)
	}
}

func TestShouldLetTheOperatorChooseWhatMayComeWithoutAToken(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	for _, tt := range []struct {
		name, methods         string
		initialize, toolsList int // HTTP status without a token
	}{
		{"none: a 401 at connect, so clients start their login", "none", 401, 401},
		{"initialize only", "initialize", 200, 401},
		{"what the conformance suite needs", "initialize,ping,tools/list,server/discover", 200, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHTTP(t, in, "http", "MCPAUTH_ANONYMOUS_METHODS="+tt.methods)
			if r := mcptest.Post(t, srv.URL+"/mcp", "", mcptest.InitializeJSON); r.Status != tt.initialize {
				t.Errorf("initialize: %d, want %d: %s", r.Status, tt.initialize, r.Body)
			} else if r.Status == 401 {
				r.Challenge().WantRefusal(t, mcptest.RPCUnauthorized, "UNAUTHENTICATED")
			}
			if r := modernPost(t, srv, "", "server/discover", "", nil); r.Status != tt.initialize {
				t.Errorf("server/discover goes with initialize: %d, want %d: %s", r.Status, tt.initialize, r.Body)
			}
			if r := modernPost(t, srv, "", "tools/list", "", nil); r.Status != tt.toolsList {
				t.Errorf("tools/list: %d, want %d: %s", r.Status, tt.toolsList, r.Body)
			}
			// Logging in is a public tool: it may always come without a token.
			r := modernPost(t, srv, "", "tools/call", "auth_login", map[string]any{"name": "auth_login", "arguments": in.Owner()})
			var login struct {
				StructuredContent tokenResult `json:"structuredContent"`
			}
			if login = rpcResult[struct {
				StructuredContent tokenResult `json:"structuredContent"`
			}](t, r); login.StructuredContent.AccessToken == "" {
				t.Fatalf("auth_login without a token: %s", r.Body)
			}
			srv.StopCleanly(t)
		})
	}
}

// An SSE client that discovers OAuth (the TypeScript SDK's SSEClientTransport) checks that the
// metadata's resource covers the URL it called. With the whole origin as the resource, the
// 401 on /sse and on /message leads it to metadata that does.
func TestShouldPointSSEClientsAtAResourceCoveringTheirURL(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the server binds it next; nothing else on this loopback asks for that port
	origin := "http://" + addr
	p := mcptest.StartProc(t, binPath, in.Env("MCPAUTH_AUDIENCE="+origin), nil, "serve", "--transport", "http", "--listen", addr)
	if _, err := p.Stderr.WaitFor(mcptest.ListeningLine, p.Exited, startTimeout); err != nil {
		t.Fatalf("serve on %s: %v; stderr:\n%s", addr, err, p.Stderr)
	}
	for _, path := range []string{"/sse", "/message?sessionId=x", "/mcp"} {
		req, _ := http.NewRequest(http.MethodGet, origin+path, nil)
		if strings.HasPrefix(path, "/message") {
			req, _ = http.NewRequest(http.MethodPost, origin+path, strings.NewReader(mcptest.ToolsCallJSON(1, "user_list", nil)))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer forged")
		resp, err := mcptest.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ch := mcptest.NewChallenge(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		md := mcptest.GetResourceMetadata(t, ch.Params["resource_metadata"])
		called := origin + strings.SplitN(path, "?", 2)[0]
		if resp.StatusCode != http.StatusUnauthorized || md.Resource != origin || !strings.HasPrefix(called, md.Resource) {
			t.Errorf("%s: %d, metadata at %s names resource %q; want 401 and a resource covering %s",
				path, resp.StatusCode, ch.Params["resource_metadata"], md.Resource, called)
		}
	}
}

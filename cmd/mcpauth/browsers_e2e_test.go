package main

// End-to-end tests of what a web page can do to a local server: nothing. Browsers send Origin
// with every cross-origin request; the MCP endpoints refuse a foreign one before anything else
// sees the request, grant no CORS, and take JSON-RPC only as application/json.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/internal/mcptest"
)

func TestShouldNotLetAWebPageDriveALocalServer(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, "MCPAUTH_ALLOWED_ORIGINS=https://app.example.com")
	srv := startHTTP(t, in, "http")
	login := mcptest.ToolsCallJSON(1, "auth_login", args{"email": in.OwnerEmail, "password": "wrong-Password-42"})
	evil := []string{"Origin", "http://evil.example"}

	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		want                     int
	}{
		{"a foreign page's POST to /mcp", http.MethodPost, "/mcp", mcptest.InitializeJSON, evil, http.StatusForbidden},
		{"a foreign page's password guess on /mcp", http.MethodPost, "/mcp", login, evil, http.StatusForbidden},
		{"a foreign page opening the SSE stream", http.MethodGet, "/sse", "", evil, http.StatusForbidden},
		{"a foreign page posting to /message", http.MethodPost, "/message?sessionId=x", login, evil, http.StatusForbidden},
		{"a look-alike of the allowed origin", http.MethodPost, "/mcp", mcptest.InitializeJSON,
			[]string{"Origin", "https://app.example.com.evil.example"}, http.StatusForbidden},
		{"a form-encodable text/plain POST without an Origin", http.MethodPost, "/mcp", login,
			[]string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"a text/plain POST to /message", http.MethodPost, "/message?sessionId=x", login,
			[]string{"Content-Type", "text/plain;charset=UTF-8"}, http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.method, srv.URL+tc.path, tc.body, tc.headers...)
			if r.Status != tc.want {
				t.Errorf("status %d (%s), want %d", r.Status, strings.TrimSpace(string(r.Body)), tc.want)
			}
			if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("Access-Control-Allow-Origin %q: a refused page is granted CORS", got)
			}
		})
	}
	// The refused guesses never reached the account: the owner's right password still works
	// (and nothing was locked), and a client that sends no Origin (not a browser) is served.
	c := dialHTTP(t, srv)
	c.Login(t, nil, in.Owner())

	// The allowed origin is served, with its own origin (never "*") in the CORS grant.
	r := send(t, http.MethodPost, srv.URL+"/mcp", mcptest.InitializeJSON, "Origin", "https://app.example.com")
	if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("the allowed origin: status %d, Access-Control-Allow-Origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
}

// A browser-based MCP client on an allowed origin (the Inspector's web app) against a server
// whose authorization server is on: its preflight needs no credential, and it can read the
// 401's challenge to start the OAuth flow, the metadata and the token endpoint answering it too.
func TestShouldLetAnAllowedBrowserClientDiscoverOAuth(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, "MCPAUTH_ALLOWED_ORIGINS=http://localhost:6274", "MCPAUTH_ISSUER=", "MCPAUTH_AUDIENCE=")
	srv := startHTTP(t, in, "http")
	origin := "http://localhost:6274"
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/mcp", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
	resp, err := mcptest.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight of /mcp: %d %v", resp.StatusCode, resp.Header)
	}
	r := send(t, http.MethodPost, srv.URL+"/mcp", mcptest.InitializeJSON, "Origin", origin)
	if r.Status != http.StatusUnauthorized || r.Header.Get("Access-Control-Allow-Origin") != origin ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("initialize from the allowed origin: %d %v; want a readable 401 challenge", r.Status, r.Header)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-authorization-server"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Origin", origin)
		resp, err := mcptest.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("GET %s from a browser: %d, Access-Control-Allow-Origin %q", path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// send is mcptest.Post for a POST (header pairs override its JSON defaults); for a GET it
// returns the status and headers only.
func send(t *testing.T, method, url, body string, headerPairs ...string) mcptest.Response {
	t.Helper()
	if method == http.MethodPost {
		return mcptest.Post(t, url, "", body, headerPairs...)
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		req.Header.Set(headerPairs[i], headerPairs[i+1])
	}
	resp, err := mcptest.HTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close() // unread: an accepted GET is a stream
	return mcptest.Response{Status: resp.StatusCode, Header: resp.Header}
}

func TestShouldNotLetAStrangerMakeTheServerReadABigBody(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http")
	big := strings.Repeat("x", 200<<10) // 200 KiB of clientInfo.name, as in the memory flood
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},` +
		`"clientInfo":{"name":"` + big + `","version":"1"}}}`
	if r := mcptest.Post(t, srv.URL+"/mcp", "", initialize); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("an anonymous 200 KiB initialize: status %d, want 413", r.Status)
	}
	if r := mcptest.Post(t, srv.URL+"/mcp", "not-a-token", initialize); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 200 KiB initialize with a bad token: status %d, want 413", r.Status)
	}
	// What initialize sends is kept for the session's life: it is small for everyone (16 KiB).
	c := dialHTTP(t, srv)
	tok := c.Login(t, nil, in.Owner())
	if r := mcptest.Post(t, srv.URL+"/mcp", tok.AccessToken, initialize); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 200 KiB initialize with a valid token: status %d, want 413", r.Status)
	}
	// A caller with a valid token may send the larger bodies tools take: the call reaches the
	// tool, which judges the argument.
	sid := openSession(t, srv, tok.AccessToken)
	r := inSession(t, srv, tok.AccessToken, sid, mcptest.ToolsCallJSON(2, "auth_validate", args{"token": big}))
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "INVALID_ARGUMENT") {
		t.Errorf("a 200 KiB tools/call with a valid token: status %d: %.300s", r.Status, r.Body)
	}
}

package main

// End-to-end tests with mcp-go v1.2.1's own client (github.com/mark3labs/mcp-go/client) against
// the real `mcpauth serve`, written as its user writes one (not through internal/mcptest): the
// bearer from the transport's header function, the user's http.Client. Asserted is what the
// client hands back: tool lists and results, and the error of a refused request.
//
// mcp-go's streamable HTTP transport reads the body of a non-2xx answer as a JSON-RPC response
// and returns its error's message (client/transport/streamable_http.go, SendRequest, and
// mcp.JSONRPCErrorDetails.AsError), so a 403 shows the user the guard's message. A 401 it
// answers before reading the body, with an AuthorizationRequiredError carrying only the
// resource metadata URL of the challenge (SendRequest: `if resp.StatusCode ==
// http.StatusUnauthorized`): whatever the reason, the error reads "authorization required",
// and the reason reaches the user only in the body its http.Client received.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// mcpgoClient is an mcp-go client connected to a server's /mcp.
type mcpgoClient struct {
	*client.Client
	Init  *mcp.InitializeResult
	HTTP  *bearerTransport // the client's http.Client's transport: records what was answered
	token atomic.Pointer[string]
}

// SetToken changes the bearer token of every later request ("" sends none).
func (c *mcpgoClient) SetToken(token string) { c.token.Store(&token) }

// dialMcpGo starts mcp-go's streamable HTTP client with token and initializes it (as mcp-go
// does: server/discover first, then initialize if that fails). It is closed when t ends; when
// initialize fails, it is returned with the error.
func dialMcpGo(t *testing.T, srv *httpServer, token string, opts ...client.ClientOption) (*mcpgoClient, error) {
	t.Helper()
	c := &mcpgoClient{HTTP: newBearerTransport("")}
	c.SetToken(token)
	tr, err := transport.NewStreamableHTTP(srv.URL+"/mcp",
		transport.WithHTTPBasicClient(c.HTTP.httpClient()),
		transport.WithHTTPHeaderFunc(func(context.Context) map[string]string {
			if tok := *c.token.Load(); tok != "" {
				return map[string]string{"Authorization": "Bearer " + tok}
			}
			return nil
		}),
		transport.WithHTTPLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("mcp-go streamable HTTP transport: %v", err)
	}
	c.Client = client.NewClient(tr, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("mcp-go client start: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "mcpauth-e2e-mcpgo", Version: "1.0"}
	c.Init, err = c.Initialize(ctx, req)
	return c, err // on an error, c still shows what was answered
}

func mustDialMcpGo(t *testing.T, srv *httpServer, token string, opts ...client.ClientOption) *mcpgoClient {
	t.Helper()
	c, err := dialMcpGo(t, srv, token, opts...)
	if err != nil {
		t.Fatalf("mcp-go initialize: %v; requests %+v", err, c.HTTP.Sent())
	}
	return c
}

// tools lists the client's tools, sorted.
func (c *mcpgoClient) tools(t *testing.T) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
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

func (c *mcpgoClient) mustTools(t *testing.T) []string {
	t.Helper()
	names, err := c.tools(t)
	if err != nil {
		t.Fatalf("mcp-go ListTools: %v", err)
	}
	return names
}

// call calls a tool and returns its structuredContent.
func (c *mcpgoClient) call(t *testing.T, tool string, a args) (mcptest.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = a
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return mcptest.Result{}, err
	}
	raw := res.RawStructuredContent
	if len(raw) == 0 {
		t.Fatalf("%s: no structuredContent (content %+v)", tool, res.Content)
	}
	return mcptest.Result{Tool: tool, IsError: res.IsError, Raw: raw}, nil
}

func (c *mcpgoClient) mustCall(t *testing.T, tool string, a args) mcptest.Result {
	t.Helper()
	r, err := c.call(t, tool, a)
	if err != nil {
		t.Fatalf("mcp-go CallTool %s: %v", tool, err)
	}
	return r
}

func TestShouldKeepAnMcpGoClientWorkingAfterACallOutsideItsTokensScopes(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	owner := dialHTTP(t, srv)
	ownerToken := owner.Login(t, sec, in.Owner()).AccessToken

	for _, era := range []struct {
		name    string
		opts    []client.ClientOption
		version string // negotiated
	}{
		{"protocol 2026-07-28, mcp-go's default", nil, sdkModern},
		{"protocol 2025-11-25, in an Mcp-Session-Id session", []client.ClientOption{client.WithProtocolVersion(sdkLegacy)}, sdkLegacy},
	} {
		t.Run(era.name, func(t *testing.T) {
			key := createKey(t, owner, sec, "narrow "+randomHex(4), []string{"audit:read"}, nil)
			c := mustDialMcpGo(t, srv, key.Key, era.opts...)
			if got := c.Init.ProtocolVersion; got != era.version {
				t.Errorf("negotiated protocol %s, want %s", got, era.version)
			}
			sid := c.GetSessionId()
			if era.version == sdkLegacy && sid == "" {
				t.Fatalf("protocol %s: no Mcp-Session-Id", era.version)
			}

			// A call outside the key's scopes: the error the user gets is the guard's
			// PERMISSION_DENIED message, naming the permission.
			_, err := c.call(t, "user_list", nil)
			if err == nil {
				t.Fatal("user_list with an audit:read key: want an error, got a result")
			}
			t.Logf("mcp-go's error: %v", err)
			for _, w := range []string{"PERMISSION_DENIED", "users:read"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error mcp-go returns does not name %s: %v", w, err)
				}
			}
			ch := c.HTTP.lastRefusal(t, "user_list")
			ch.Want(t, http.StatusForbidden, "insufficient_scope", srv.URL+"/.well-known/oauth-protected-resource/mcp")
			if e := ch.WantRefusal(t, mcptest.RPCForbidden, "PERMISSION_DENIED").Error.Data; !slices.Equal(e.RequiredPermissions, []string{"users:read"}) {
				t.Errorf("data.required_permissions %v, want [users:read]", e.RequiredPermissions)
			}

			// The client goes on: the key's own calls work, then, with a good token, the one
			// that was denied and the owner's tool list.
			if w := decode[whoamiResult](t, c.mustCall(t, "auth_whoami", nil)); w.AuthMethod != "api_key" || !slices.Equal(w.Scopes, []string{"audit:read"}) {
				t.Errorf("auth_whoami after the denial: %+v", w)
			}
			c.SetToken(ownerToken)
			if l := decode[userListResult](t, c.mustCall(t, "user_list", nil)); !slices.ContainsFunc(l.Users, func(u userView) bool { return u.Email == in.OwnerEmail }) {
				t.Errorf("user_list with the owner's token: %+v", l)
			}
			wantTools(t, "the owner", c.mustTools(t), ownerTools, nil)
			if c.GetSessionId() != sid {
				t.Errorf("the session id changed from %q to %q", sid, c.GetSessionId())
			}
		})
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldTellAnMcpGoClientUserWhyItsTokenIsRefused(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http", "MCPAUTH_ACCESS_TTL=2s")
	expired := expiredAccessToken(t, in, srv, sec).AccessToken
	metadataURL := srv.URL + "/.well-known/oauth-protected-resource/mcp"

	for _, tt := range refusedTokens(expired) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// wantUnauthorized checks what mcp-go's user has of a 401: the error (mcp-go's
			// AuthorizationRequiredError, pointing at the resource metadata, from which an OAuth
			// client starts), and the JSON-RPC error in the body its http.Client received, which
			// names the reason.
			wantUnauthorized := func(c *mcpgoClient, what string, err error) {
				t.Helper()
				var authErr *transport.AuthorizationRequiredError
				if !errors.As(err, &authErr) {
					t.Fatalf("%s: %v, want mcp-go's authorization required error", what, err)
				}
				if authErr.ResourceMetadataURL != metadataURL {
					t.Errorf("%s: the error points at resource metadata %q, want %q", what, authErr.ResourceMetadataURL, metadataURL)
				}
				ch := c.HTTP.lastRefusal(t, what)
				ch.Want(t, http.StatusUnauthorized, mcptest.ChallengeError(tt.token), metadataURL)
				rf := ch.WantRefusal(t, mcptest.RPCUnauthorized, tt.code)
				if !strings.Contains(strings.ToLower(rf.Error.Message), tt.why) {
					t.Errorf("%s: the refusal's message %q does not say why (%s)", what, rf.Error.Message, tt.why)
				}
				t.Logf("%s: mcp-go's error %q; the body: %s", what, err, strings.TrimSpace(string(ch.Body)))
			}
			if tt.token != "" {
				// Initializing with it fails: no anonymous session instead.
				c, err := dialMcpGo(t, srv, tt.token)
				if err == nil {
					names, _ := c.tools(t)
					t.Fatalf("initialize: a session (protocol %s, tools %v), want the refusal", c.Init.ProtocolVersion, names)
				}
				wantUnauthorized(c, "initialize", err)
			}

			// On a client initialized without a token, a list and a call with it are refused
			// (without a token, only what needs one): never the anonymous tool list.
			c := mustDialMcpGo(t, srv, "")
			c.SetToken(tt.token)
			if tt.token != "" {
				names, err := c.tools(t)
				if err == nil {
					t.Fatalf("tools/list: %v, want the refusal", names)
				}
				wantUnauthorized(c, "tools/list", err)
			}
			_, err := c.call(t, "user_list", nil)
			wantUnauthorized(c, "user_list", err)
			// The client goes on after a 401.
			c.SetToken("")
			wantTools(t, "an anonymous caller after the 401", c.mustTools(t), publicTools, adminTools)
		})
	}
}

package app

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

// parseBench parses serve's benchmark-only flags as Serve does: flags, then environment.
func parseBench(t *testing.T, args []string, env map[string]string, transport, listen string, ownTools bool) (benchConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := registerBenchFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return parseBenchConfig(resolve(fs, benchFlags, vals, envOf(env)), transport, listen, ownTools)
}

func TestShouldAllowTheInsecureBenchmarkOptionsOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		transport string
		listen    string
		ownTools  bool
		want      benchConfig
		wantErr   string // empty: accepted
	}{
		{name: "both are off by default", transport: "http", listen: "0.0.0.0:8080", ownTools: true},
		{name: "the flag turns the guard off on 127.0.0.1", args: []string{"--insecure-no-guard"}, transport: "http", listen: "127.0.0.1:0", ownTools: true,
			want: benchConfig{NoGuard: true}},
		{name: "the environment turns it off on [::1]", env: map[string]string{"MCPAUTH_INSECURE_NO_GUARD": "true"}, transport: "http", listen: "[::1]:8081", ownTools: true,
			want: benchConfig{NoGuard: true}},
		{name: "localhost counts as loopback", args: []string{"--insecure-no-guard=true", "--pprof"}, transport: "sse", listen: "localhost:8081", ownTools: true,
			want: benchConfig{NoGuard: true, Pprof: true}},
		{name: "the flag wins over the environment", args: []string{"--insecure-no-guard=false"}, env: map[string]string{"MCPAUTH_INSECURE_NO_GUARD": "true"},
			transport: "http", listen: "0.0.0.0:8080", ownTools: true},
		{name: "every interface is refused", args: []string{"--insecure-no-guard"}, transport: "http", listen: "0.0.0.0:8080", ownTools: true, wantErr: "not a loopback address"},
		{name: "an empty host is refused (it binds every interface)", args: []string{"--insecure-no-guard"}, transport: "http", listen: ":8080", ownTools: true, wantErr: "not a loopback address"},
		{name: "a private address is refused", env: map[string]string{"MCPAUTH_INSECURE_NO_GUARD": "true"}, transport: "http", listen: "192.168.1.5:8080", ownTools: true, wantErr: "not a loopback address"},
		{name: "the profiler is refused off loopback too", args: []string{"--pprof"}, transport: "http", listen: "[::]:8080", ownTools: true, wantErr: "--pprof"},
		{name: "stdio is refused", args: []string{"--insecure-no-guard"}, transport: "stdio", listen: "127.0.0.1:8080", ownTools: true, wantErr: "only with --transport http"},
		{name: "a value that is not a boolean is refused", env: map[string]string{"MCPAUTH_INSECURE_NO_GUARD": "yes"}, transport: "http", listen: "127.0.0.1:8080", ownTools: true, wantErr: "want true or false"},
		{name: "mcpauth itself has nothing to unguard", args: []string{"--insecure-no-guard"}, transport: "http", listen: "127.0.0.1:8080", wantErr: "no tools of its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBench(t, tt.args, tt.env, tt.transport, tt.listen, tt.ownTools)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// denyAll authenticates no one and authorizes nothing: whatever it guards is refused.
type denyAll struct{}

func (denyAll) Validate(context.Context, auth.Secret) (token.Claims, error) {
	return token.Claims{}, token.ErrInvalid
}

func (denyAll) Caller(context.Context, auth.Secret) (auth.User, token.Claims, error) {
	return auth.User{}, token.Claims{}, token.ErrInvalid
}

func (denyAll) Decide(context.Context, rbac.Credential, rbac.Request) rbac.Decision {
	return rbac.Decision{Reason: "denied"}
}

func okTool(name string) server.ServerTool {
	return server.ServerTool{Tool: mcpgo.NewTool(name), Handler: func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		return mcpgo.NewToolResultText("ok"), nil
	}}
}

// callOverHTTP posts one initialize and one tools/call of tool, without a credential, to h and
// returns the call's HTTP status and whether its result was an error.
func callOverHTTP(t *testing.T, h http.Handler, tool string) (int, bool) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(body, session string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	init := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, "")
	init.Body.Close()
	session := init.Header.Get("Mcp-Session-Id")
	resp := post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`, session)
	defer resp.Body.Close()
	var msg struct {
		Result struct {
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&msg)
	return resp.StatusCode, msg.Result.IsError
}

func TestShouldServeOnlyTheProgramsOwnToolsWithoutTheGuard(t *testing.T) {
	policy := mcp.Policy{Tools: map[string]mcp.Rule{"mine": mcp.Require("projects:read"), "auth_whoami": mcp.Authenticated()},
		AnonymousMethods: []string{"initialize"}}
	g, err := mcp.NewGuard(mcp.GuardConfig{Auth: denyAll{}, Authz: denyAll{}, Policy: policy, Logger: newLogger(io.Discard, "error")})
	if err != nil {
		t.Fatal(err)
	}
	authTools, own := []server.ServerTool{okTool("auth_whoami")}, []server.ServerTool{okTool("mine")}
	for _, tt := range []struct {
		name       string
		bench      benchConfig
		tool       string
		wantStatus int
		wantError  bool
	}{
		{"guarded: the HTTP guard refuses the program's tool without a token", benchConfig{}, "mine", http.StatusUnauthorized, false},
		{"guard off: the program's tool answers without a token", benchConfig{NoGuard: true}, "mine", http.StatusOK, false},
		{"guard off: mcpauth's tools are still refused by the middleware", benchConfig{NoGuard: true}, "auth_whoami", http.StatusOK, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.bench.newServer("test", "1", g, authTools, own)
			h := mcp.NewHTTP(s, g, nil, newLogger(io.Discard, "error"), mcp.HTTPOptions{})
			status, isError := callOverHTTP(t, tt.bench.handler(h.Handler, s, newLogger(io.Discard, "error")), tt.tool)
			if status != tt.wantStatus || isError != tt.wantError {
				t.Fatalf("HTTP %d, isError %v; want HTTP %d, isError %v", status, isError, tt.wantStatus, tt.wantError)
			}
		})
	}
}

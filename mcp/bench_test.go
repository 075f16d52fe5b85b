package mcp_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/tools"
)

// benchGuard is the guard as mcpauth wires it: the real auth.Service and rbac.Authorizer on
// the embedded store, a viewer logged in, and the call's bearer token in the context the way
// the HTTP transport puts it there.
func benchGuard(b *testing.B, mutate func(*mcp.GuardConfig)) (*mcp.Guard, context.Context) {
	b.Helper()
	ctx := context.Background()
	db := mongotest.Database(b)
	store, err := auth.NewMongoStore(ctx, db)
	mustBench(b, err)
	rstore, err := rbac.NewMongoStore(ctx, db)
	mustBench(b, err)
	authz := rbac.NewAuthorizer(rbac.Config{Store: rstore, Versions: rbac.NewLocalVersions(), Now: time.Now})
	master := make([]byte, token.MasterKeySize)
	_, _ = rand.Read(master)
	sealer, err := token.NewSealer(master)
	mustBench(b, err)
	keys, err := token.LoadKeySet(ctx, store, sealer, token.AlgEdDSA, time.Now())
	mustBench(b, err)
	svc, err := auth.NewService(ctx, store, keys, auth.Config{Issuer: "urn:bench", Audience: "urn:bench:mcp",
		Password: password.Config{Cost: 4}, Logger: slog.New(slog.DiscardHandler),
		Scopes: func(ctx context.Context, u auth.User) ([]string, error) {
			return authz.Permissions(ctx, u.ID, u.OrgID, "")
		},
	})
	mustBench(b, err)
	const password = auth.Secret("correct horse battery staple")
	_, err = svc.CreateUser(ctx, auth.NewUser{Email: "viewer@example.com", Password: password, OrgID: "acme",
		Provision: tools.AssignRoles(authz, []string{"viewer"})})
	mustBench(b, err)
	tokens, _, err := svc.Login(ctx, auth.LoginRequest{Identifier: "viewer@example.com", Password: password})
	mustBench(b, err)
	cfg := mcp.GuardConfig{Auth: svc, Authz: authz, Policy: mcp.Policy{Tools: map[string]mcp.Rule{
		"projects_list": mcp.Require("projects:read")}},
		Logger: slog.New(slog.DiscardHandler), Limiter: throttle.NewLocalLimiter(nil),
		CallLimit: throttle.Limit{Rate: 1 << 30, Period: time.Second, Burst: 1 << 30}}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := mcp.NewGuard(cfg)
	mustBench(b, err)
	return g, call.With(ctx, &call.Request{Bearer: tokens.AccessToken, Transport: call.HTTP})
}

// recordMetrics has the SDK record metrics for the benchmark, as the binary records them (its
// reader is the Prometheus exporter; a manual one costs the same on the recording side).
func recordMetrics(b *testing.B) {
	prev := otel.GetMeterProvider()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	otel.SetMeterProvider(mp)
	b.Cleanup(func() { otel.SetMeterProvider(prev); _ = mp.Shutdown(context.Background()) })
}

func mustBench(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

var benchResult = mcpgo.NewToolResultText("[]")

// BenchmarkGuardOverhead: one guarded tools/call with a token the guard has seen before (the
// case of every call after a session's first), through the guard's middleware, against the
// same handler called bare. The difference is what the guard adds to a call.
func BenchmarkGuardOverhead(b *testing.B) {
	recordMetrics(b)
	g, ctx := benchGuard(b, nil)
	handler := func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) { return benchResult, nil }
	guarded := g.Middleware()(handler)
	req := mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "projects_list"}}
	if res, _ := guarded(ctx, req); res.IsError {
		b.Fatalf("the guard refused the benchmark call: %v", res.Content)
	}
	call := func(h func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error)) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if res, _ := h(ctx, req); res.IsError {
					b.Fatal("refused")
				}
			}
		}
	}
	bare := benchratio.Run(b, "unguarded", call(handler))
	ours := benchratio.Run(b, "guarded", call(guarded))
	benchratio.ReportDelta(b, map[string][2]*benchratio.Samples{"ns-added/call": {ours, bare}})
}

// sessionRequest is a POST of body to /mcp as a streamable-HTTP client sends it, with bearer
// tok, in session sid ("" for none).
func sessionRequest(tok, sid, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	if sid != "" {
		r.Header.Set("Mcp-Session-Id", sid)
	}
	return r
}

// openSession initializes a streamable-HTTP session on h as tok and returns its id.
func openSession(tb testing.TB, h http.Handler, tok string) string {
	tb.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, sessionRequest(tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`))
	sid := w.Header().Get("Mcp-Session-Id")
	if w.Code != http.StatusOK || sid == "" {
		tb.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	h.ServeHTTP(httptest.NewRecorder(), sessionRequest(tok, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	return sid
}

// BenchmarkGuardHTTP: one tools/call of an initialized streamable-HTTP session through the whole
// HTTP stack in process (client address, browser check, HTTP guard, session table, mcp-go, the
// guard's middleware and filter), against mcp-go's streamable handler with the same tool and
// no guard (what `serve --insecure-no-guard` serves). The difference is what the guard adds to
// a call over HTTP, without the load test's client, kernel and noise.
func BenchmarkGuardHTTP(b *testing.B) {
	recordMetrics(b)
	g, ctx := benchGuard(b, func(c *mcp.GuardConfig) {
		c.Policy.AnonymousMethods = []string{"initialize", "notifications/initialized"}
	})
	tok := call.From(ctx).Bearer
	handler := func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) { return benchResult, nil }
	// Two tools: a server of one tool makes the filter take the call for a listing (see Filter).
	tools := []server.ServerTool{{Tool: mcpgo.NewTool("projects_list"), Handler: handler},
		{Tool: mcpgo.NewTool("projects_get"), Handler: handler}}
	guarded := mcp.NewHTTP(mcp.NewServer("bench", "1", g, tools...), g, nil, slog.New(slog.DiscardHandler), mcp.HTTPOptions{}).Handler
	bare := server.NewMCPServer("bench", "1", server.WithToolCapabilities(true))
	bare.AddTools(tools...)
	unguarded := server.NewStreamableHTTPServer(bare, server.WithEndpointPath("/mcp"),
		server.WithHTTPContextFunc(mcp.HTTPContext(call.HTTP)))
	post := func(h http.Handler, sid, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, sessionRequest(tok, sid, body))
		return w
	}
	const callJSON = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"projects_list","arguments":{}}}`
	calls := func(h http.Handler) func(b *testing.B) {
		sid := openSession(b, h, tok)
		if w := post(h, sid, callJSON); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"[]"`) || strings.Contains(w.Body.String(), `"isError":true`) {
			b.Fatalf("tools/call: %d %s", w.Code, w.Body)
		}
		return func(b *testing.B) {
			for b.Loop() {
				if w := post(h, sid, callJSON); w.Code != http.StatusOK {
					b.Fatalf("tools/call: %d %s", w.Code, w.Body)
				}
			}
		}
	}
	base := benchratio.Run(b, "unguarded", calls(unguarded))
	ours := benchratio.Run(b, "guarded", calls(guarded))
	benchratio.ReportDelta(b, map[string][2]*benchratio.Samples{"ns-added/call": {ours, base}})
}

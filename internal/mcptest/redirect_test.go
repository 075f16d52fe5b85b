package mcptest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// redirectedAuth sends one initialize through mcp-go's streamable HTTP transport with hc, to a
// server that redirects it (307) to a second server, and returns the Authorization headers
// that arrived at the second one.
func redirectedAuth(t *testing.T, hc *http.Client) []string {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "not an MCP server", http.StatusTeapot)
	}))
	defer second.Close()
	first := httptest.NewServer(http.RedirectHandler(second.URL+"/mcp", http.StatusTemporaryRedirect))
	defer first.Close()

	tr, err := transport.NewStreamableHTTP(first.URL+"/mcp", transport.WithHTTPBasicClient(hc),
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer secret-token"}))
	if err != nil {
		t.Fatalf("new transport: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	if err := tr.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	defer tr.Close()
	_, err = tr.SendRequest(ctx, transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcp.NewRequestId(1),
		Method: "initialize", Params: map[string]any{"protocolVersion": "2025-11-25"}})
	if err == nil {
		t.Errorf("initialize answered by a redirect succeeded")
	}
	second.Close() // waits for its handlers
	mu.Lock()
	defer mu.Unlock()
	return seen
}

func TestShouldNeverSendTheBearerTokenToWhereARedirectPoints(t *testing.T) {
	if seen := redirectedAuth(t, mcpHTTPClient(http.DefaultTransport)); len(seen) != 0 {
		t.Fatalf("the redirect was followed: the second server got %d request(s), Authorization %q", len(seen), seen)
	}
}

// The hazard the policy guards against (GO-2026-6911) is real on this setup: without it, the
// token goes to the second server (same host, other port: net/http keeps the header).
func TestShouldLeakTheBearerTokenOnARedirectWithoutThePolicy(t *testing.T) {
	seen := redirectedAuth(t, &http.Client{Transport: http.DefaultTransport})
	if len(seen) == 0 || seen[0] != "Bearer secret-token" {
		t.Fatalf("control: want the token at the second server, got %q", seen)
	}
}

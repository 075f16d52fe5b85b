package mcp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/mcp"
)

// maxGuardStack is how much deeper the guard may make a tool call's stack over HTTP than
// mcp-go's own streamable handler does: the mux, one endpoint frame and the middleware's
// (432 bytes with go1.27, 584 under the race detector, whose instrumentation adds to every
// frame). A call whose stack outgrows its goroutine's is copied to one
// twice the size, and again after every GC that shrank it: the guard's wrappers, one per step,
// once added 872 bytes, enough to tip the load test's projects_list calls over 16 KiB in a
// profiled run (1.8% of the server's CPU) and within a hundred bytes of it otherwise.
const maxGuardStack = 640

// maxGuardStackRace is maxGuardStack under the race detector (the old wrappers: 1.1 KiB).
const maxGuardStackRace = 800

// stackTop is the address of a local of the goroutine serving a probed request, near its top.
var stackTop atomic.Uintptr

// stackDepth is set by the probe tool: how far below stackTop its frame is.
var stackDepth atomic.Uintptr

func probe(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var here byte
	stackDepth.Store(stackTop.Load() - uintptr(unsafe.Pointer(&here)))
	return mcpgo.NewToolResultText("[]"), nil
}

// grow makes the calling goroutine's stack at least n bytes, so that it does not move while a
// probed request is served (GC is off: it cannot shrink it either).
//
//go:noinline
func grow(n int) byte {
	var buf [1024]byte
	buf[n%len(buf)] = byte(n)
	if n <= len(buf) {
		return buf[0]
	}
	return grow(n-len(buf)) + buf[n%len(buf)]
}

// depthOf serves a request with h on a goroutine of its own and returns how deep under that
// goroutine's top the probe tool ran.
func depthOf(t *testing.T, h http.Handler, newRequest func() *http.Request) uintptr {
	t.Helper()
	for range 3 {
		moved := make(chan bool)
		go func() {
			grow(64 << 10)
			var top byte
			stackTop.Store(uintptr(unsafe.Pointer(&top)))
			stackDepth.Store(0)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, newRequest())
			if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"isError":true`) {
				t.Errorf("tools/call: %d %s", w.Code, w.Body)
			}
			moved <- stackTop.Load() != uintptr(unsafe.Pointer(&top))
		}()
		if !<-moved {
			return stackDepth.Load()
		}
	}
	t.Fatal("the goroutine's stack moved under every probed request")
	return 0
}

func TestShouldKeepTheStackTheGuardAddsToAToolCallSmall(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := testPolicy
	p.AnonymousMethods = []string{"initialize", "notifications/initialized"}
	g, err := mcp.NewGuard(mcp.GuardConfig{Auth: fakeAuth{}, Authz: fakeAuthz{}, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	tools := []server.ServerTool{{Tool: mcpgo.NewTool("projects_list"), Handler: probe},
		{Tool: mcpgo.NewTool("server_status"), Handler: probe}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	guarded := mcp.NewHTTP(mcp.NewServer("t", "1", g, tools...), g, nil, logger, mcp.HTTPOptions{}).Handler
	bare := server.NewMCPServer("t", "1", server.WithToolCapabilities(true))
	bare.AddTools(tools...)
	unguarded := server.NewStreamableHTTPServer(bare, server.WithEndpointPath("/mcp"),
		server.WithHTTPContextFunc(mcp.HTTPContext(call.HTTP)))

	depth := func(h http.Handler) uintptr {
		sid := openSession(t, h, "viewer")
		return depthOf(t, h, func() *http.Request {
			return sessionRequest("viewer", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"projects_list","arguments":{}}}`)
		})
	}
	base, ours := depth(unguarded), depth(guarded)
	t.Logf("a tool runs %d bytes under the top of its goroutine's stack unguarded, %d guarded (+%d)", base, ours, ours-base)
	if base == 0 || ours <= base {
		t.Fatalf("the probe did not run under both handlers as expected: unguarded %d, guarded %d", base, ours)
	}
	limit := uintptr(maxGuardStack)
	if raceBuild {
		limit = maxGuardStackRace
	}
	if ours-base > limit {
		t.Errorf("the guard puts %d bytes of stack above a tool call, want at most %d", ours-base, limit)
	}
}

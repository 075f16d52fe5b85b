package mcp

import (
	"context"
	"net/http"
)

// endpoint is an MCP transport endpoint behind everything that checks its requests, as one
// handler: the browser checks (answeredBrowser), the HTTP guard (Guard.admit) and, for
// streamable HTTP, the session table (sessions.route). A GET (a stream) is served by a writer
// that ends the stream's context when a write fails (streamWriter).
//
// One handler, not one wrapper per step, because the MCP server under next is deep and every
// frame above it counts: a call whose stack outgrows its goroutine's is copied to one twice the
// size, and again after every GC that shrank it. A wrapper per step (with http.HandlerFunc's
// own frame each) put 600 bytes above the MCP server, enough to bring a projects_list call to
// within a hundred bytes of 16 KiB (and over it behind one more mux); the steps here return
// before next runs, except a session's opening.
type endpoint struct {
	allowed   []string // origins given CORS (answeredBrowser)
	guard     *Guard
	transport string // the transport the audit context names (Guard.admit)
	// sessions is streamable HTTP's session table, which must mint next's session ids
	// (server.WithSessionIdManager); nil when next binds its sessions itself (SSE).
	sessions *sessions
	next     http.Handler
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if answeredBrowser(e.allowed, w, r) {
		return
	}
	gc := e.guard.admit(w, r, e.transport)
	if gc == nil {
		return
	}
	if r.Method == http.MethodGet {
		e.serveStream(w, r, gc)
		return
	}
	r = r.WithContext(gc)
	if e.pass(w, r) {
		e.next.ServeHTTP(w, r)
	}
}

// serveStream serves a GET, a stream that lasts: mcp-go's SSE loop ignores write errors and
// waits on the context, so a stream dropped by its write deadline (writeDeadlines) would
// otherwise keep its goroutine and its session. Its context, under the guard's (gc), ends
// when a write fails: one copy of the request for both.
func (e *endpoint) serveStream(w http.ResponseWriter, r *http.Request, gc context.Context) {
	ctx, cancel := context.WithCancel(gc)
	defer cancel()
	sw, r := &streamWriter{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx)
	if e.pass(sw, r) {
		e.next.ServeHTTP(sw, r)
	}
}

// pass routes r through the session table: true when next is to serve it as it is; false when
// it has been answered (refused, or served as the opening of a session or a lasting stream).
func (e *endpoint) pass(w http.ResponseWriter, r *http.Request) bool {
	if e.sessions == nil {
		return true
	}
	switch e.sessions.route(w, r) {
	case routePass:
		return true
	case routeOpen:
		e.sessions.serveOpening(w, r, e.next)
	}
	return false
}

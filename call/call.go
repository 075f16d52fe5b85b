// Package call is what the transport knows about one MCP request, carried in its context: the
// transport, the client's address, the request id, the bearer credential and whether the
// transport is one process's own session (stdio). The transport sets it once (With); everything
// after it (the guard, the tools, auth's per-address limits, the audit trail) reads it (From).
//
// It imports nothing of ours, so that every layer may read it; who the caller is, once the
// guard knows, is the guard's own value (mcp.CallerFrom), since it holds auth's types.
package call

import (
	"context"
	"log/slog"
	"net/netip"
)

// Transports.
const (
	Stdio = "stdio"
	HTTP  = "http" // streamable HTTP
	SSE   = "sse"
)

// Request is what the transport knows about a request.
type Request struct {
	Transport string
	// ClientAddr is the client's address as the client-address resolver left it (behind a
	// trusted proxy, the forwarded one); zero when there is none (stdio).
	ClientAddr netip.Addr
	// RequestID is the id the request's audit events share (see audit.RequestIDFrom).
	RequestID string
	// Bearer is the credential the transport carried: the HTTP Authorization bearer token, or
	// over stdio the process's MCPAUTH_TOKEN / MCPAUTH_API_KEY. It is a secret: String and
	// LogValue leave it out, and it has no JSON form.
	Bearer string `json:"-"`
	// BindSession: the transport is one process's own session (stdio), where auth_login binds
	// the identity to the session for the calls that follow.
	BindSession bool
}

// Addr is the client address as the audit trail and the limits write it: "local" without one
// (stdio).
func (r *Request) Addr() string {
	if r == nil || !r.ClientAddr.IsValid() {
		return "local"
	}
	return r.ClientAddr.String()
}

// String describes r without its credential. It and LogValue have value receivers so that a
// Request printed by value (%v, %+v) goes through them too.
func (r Request) String() string {
	return "call.Request{" + r.Transport + " from " + r.Addr() + ", id " + r.RequestID + ", bearer " + redacted(r.Bearer) + "}"
}

// LogValue logs r without its credential.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(slog.String("transport", r.Transport), slog.String("client_addr", r.Addr()),
		slog.String("request_id", r.RequestID), slog.String("bearer", redacted(r.Bearer)))
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "[REDACTED]"
}

type key struct{}

// With returns ctx carrying r. r must not change afterwards: the calls of a stdio session
// share it.
func With(ctx context.Context, r *Request) context.Context { return context.WithValue(ctx, key{}, r) }

// Node is a context carrying its own Request: what With returns, for a transport that keeps
// the request in a node of its own (one allocation, with whatever else it carries, instead of
// a Request and a context node). Its Value answers From with &Request and asks Context for any
// other key; Request must not change once the node is in use.
type Node struct {
	context.Context
	Request Request
}

// Value is the request for From's key, the parent's value for any other.
func (n *Node) Value(k any) any {
	if _, ok := k.(key); ok {
		return &n.Request
	}
	return n.Context.Value(k)
}

// From returns the request ctx carries, or nil when no transport set one.
func From(ctx context.Context) *Request {
	r, _ := ctx.Value(key{}).(*Request)
	return r
}

// ClientAddr is the client's address the transport saw in ctx, for policy conditions; zero
// when there is none (stdio, or no transport).
func ClientAddr(ctx context.Context) netip.Addr {
	if r := From(ctx); r != nil {
		return r.ClientAddr
	}
	return netip.Addr{}
}

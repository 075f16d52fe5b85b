package mcp

import (
	"net/http"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The request headers read on every request, by their canonical names (net/http stores a
// request's headers under those). Reading them straight from the map spares http.Header.Get's
// canonicalization of the name: about a hundred instructions a read, several reads a request.
const (
	headerOrigin          = "Origin"
	headerContentType     = "Content-Type"
	headerAuthorization   = "Authorization"
	headerRequestID       = "X-Request-Id"
	headerProtocolVersion = mcpgo.HeaderProtocolVersion
	headerSessionID       = server.HeaderKeySessionID
)

// header is h.Get(name) for a canonical name (one of the above).
func header(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// modernProtocol reports whether r is sent under the 2026-07-28 protocol (its
// Mcp-Protocol-Version header), which has no sessions and removed some methods.
func modernProtocol(r *http.Request) bool {
	return mcpgo.IsModernProtocol(header(r.Header, headerProtocolVersion))
}

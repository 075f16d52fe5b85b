package mcp

// Browsers are kept out of the MCP endpoints. A web page the user happens to visit can reach a
// server on localhost: without these checks it could open /sse, post to /message and read the
// answers of anonymous methods and public tools (guessing local passwords, locking the owner
// out). A request that carries an Origin header (every browser's cross-origin request does) is
// refused unless the origin is on the allow-list; a POST must be application/json, which no
// HTML form and no CORS-"simple" fetch can send without a preflight.
//
// An allowed origin (a browser-based MCP client such as the Inspector's web app) gets CORS
// here, before the guard: its preflight is answered without a credential (a browser never
// sends one on OPTIONS), and every answer, the guard's 401 included, lets it read the
// WWW-Authenticate challenge and Mcp-Session-Id. The origin is echoed, never "*", and
// credentials (cookies) are never allowed: the MCP endpoints read none.

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
)

// noOrigin is the allow-list handed to mcp-go, whatever ours is: any list turns off its SSE
// default of "Access-Control-Allow-Origin: *", and this entry is not an origin serialization
// (RFC 6454), so mcp-go grants nothing itself (answeredBrowser does, for the allowed origins).
const noOrigin = "no-cross-origin-access"

// CORS of the MCP endpoints for an allowed origin.
const (
	corsAllowMethods  = "GET, POST, DELETE, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, MCP-Protocol-Version, Mcp-Session-Id, Last-Event-ID, Mcp-Method, Mcp-Name"
	corsExposeHeaders = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version"
)

// answeredBrowser refuses a request whose Origin is not allowed (403) and a POST whose body is
// not declared as JSON (415), and answers a preflight: it reports whether it answered the
// request itself, having set the CORS headers of an allowed origin. It allocates nothing.
func answeredBrowser(allowed []string, w http.ResponseWriter, r *http.Request) bool {
	o := header(r.Header, headerOrigin)
	if o != "" && !slices.Contains(allowed, o) && !sameLoopbackOrigin(o, r) {
		writeRefusal(w, nil, http.StatusForbidden, CodeForbidden, apierr.New(apierr.PermissionDenied, "cross-origin requests are not accepted from this origin"))
		return true
	}
	h := w.Header()
	if o != "" && slices.Contains(allowed, o) {
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
	if r.Method == http.MethodOptions { // a preflight, or a client asking what is allowed: no credential needed
		h.Set("Allow", corsAllowMethods)
		if o != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if r.Method == http.MethodPost && !isJSON(header(r.Header, headerContentType)) {
		writeRefusal(w, nil, http.StatusUnsupportedMediaType, codeInvalidRequest, apierr.Field("Content-Type", "a JSON-RPC message is sent as application/json"))
		return true
	}
	return false
}

// sameLoopbackOrigin reports whether origin is the request's own, on a loopback host: a page
// this server served itself, on this machine. A DNS-rebinding page never is: its browser names
// the attacker's domain in both Host and Origin, and a loopback name or address in Host means the
// browser itself was pointed at this machine.
func sameLoopbackOrigin(origin string, r *http.Request) bool {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	if origin != scheme+r.Host {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

// isJSON reports whether a Content-Type is application/json (parameters such as charset allowed).
func isJSON(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/json")
}

// sseCORS turns off mcp-go's own CORS handling of the SSE transport (see noOrigin). The
// streamable transport has none unless given an allow-list, and is given none: with one it
// would read Origin and add "Vary: Origin" to every response itself.
func sseCORS() server.SSEOption {
	return server.WithSSECORS(server.WithCORSAllowedOrigins(noOrigin))
}

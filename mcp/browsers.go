package mcp

// Browsers are kept out of the MCP endpoints. A web page the user happens to visit can reach a
// server on localhost: without these checks it could open /sse, post to /message and read the
// answers of anonymous methods and public tools (guessing local passwords, locking the owner
// out). A request that carries an Origin header (every browser's cross-origin request does) is
// refused unless the origin is on the allow-list; a POST must be application/json, which no
// HTML form and no CORS-"simple" fetch can send without a preflight.

import (
	"net/http"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
)

// noOrigin is the allow-list handed to mcp-go when no origin is allowed. Any configured list
// turns off its SSE default of "Access-Control-Allow-Origin: *"; this entry is not an origin
// serialization (RFC 6454), so no browser can ever send it and nothing is granted.
const noOrigin = "no-cross-origin-access"

// corsOrigins is what mcp-go's CORS handling is given for the allow-list.
func corsOrigins(allowed []string) []string {
	if len(allowed) == 0 {
		return []string{noOrigin}
	}
	return allowed
}

// keepBrowsersOut refuses a request whose Origin is not allowed (403) and a POST whose body is
// not declared as JSON (415) before next sees it. It allocates nothing.
func keepBrowsersOut(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !slices.Contains(allowed, o) {
			writeRefusal(w, nil, http.StatusForbidden, CodeForbidden, apierr.New(apierr.PermissionDenied, "cross-origin requests are not accepted from this origin"))
			return
		}
		if r.Method == http.MethodPost && !isJSON(r.Header.Get("Content-Type")) {
			writeRefusal(w, nil, http.StatusUnsupportedMediaType, codeInvalidRequest, apierr.Field("Content-Type", "a JSON-RPC message is sent as application/json"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isJSON reports whether a Content-Type is application/json (parameters such as charset allowed).
func isJSON(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/json")
}

// corsOptions are the CORS settings of both transports for the allow-list.
func corsOptions(allowed []string) (server.SSEOption, server.StreamableHTTPOption) {
	origins := server.WithCORSAllowedOrigins(corsOrigins(allowed)...)
	return server.WithSSECORS(origins), server.WithStreamableHTTPCORS(origins)
}

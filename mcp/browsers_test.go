package mcp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// browserEndpoint is an MCP endpoint as NewHTTP builds it, allowing https://app.example.com,
// with a real guard in front of next: the token "good" passes, no token gets the guard's 401.
func browserEndpoint(t *testing.T, next http.HandlerFunc) http.Handler {
	t.Helper()
	g, err := NewGuard(GuardConfig{Auth: oneUser{new(atomic.Bool)}, Authz: readsX{}, Policy: Policy{Tools: map[string]Rule{"read": Require("x:read")}}})
	if err != nil {
		t.Fatal(err)
	}
	return &endpoint{allowed: []string{"https://app.example.com"}, guard: g, transport: "http", next: next}
}

func TestShouldRefuseForeignOriginsAndNonJSONBodiesWithoutAllocating(t *testing.T) {
	reached := 0
	h := browserEndpoint(t, func(http.ResponseWriter, *http.Request) { reached++ })
	const ping = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	for _, tc := range []struct {
		name, method, origin, contentType string
		want                              int
		host                              string // default example.com
	}{
		{"a client without an Origin, posting JSON", http.MethodPost, "", "application/json", http.StatusOK, ""},
		{"JSON with a charset", http.MethodPost, "", "Application/JSON; charset=utf-8", http.StatusOK, ""},
		{"the allowed origin", http.MethodPost, "https://app.example.com", "application/json", http.StatusOK, ""},
		{"a GET of the stream without a body", http.MethodGet, "", "", http.StatusOK, ""},
		{"a foreign origin", http.MethodPost, "http://evil.example", "application/json", http.StatusForbidden, ""},
		{"the opaque origin of a sandboxed page", http.MethodGet, "null", "", http.StatusForbidden, ""},
		{"a form post", http.MethodPost, "", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, ""},
		{"text/plain", http.MethodPost, "", "text/plain", http.StatusUnsupportedMediaType, ""},
		{"no content type", http.MethodPost, "", "", http.StatusUnsupportedMediaType, ""},
		{"JSON-looking but not JSON", http.MethodPost, "", "application/jsonx", http.StatusUnsupportedMediaType, ""},
		{"a page of this server on 127.0.0.1", http.MethodPost, "http://127.0.0.1:8080", "application/json", http.StatusOK, "127.0.0.1:8080"},
		{"a page of this server on localhost", http.MethodPost, "http://localhost:8080", "application/json", http.StatusOK, "localhost:8080"},
		{"a page of this server on ::1", http.MethodPost, "http://[::1]:8080", "application/json", http.StatusOK, "[::1]:8080"},
		{"a DNS-rebinding page (its own origin, not loopback)", http.MethodPost, "http://evil.example:8080", "application/json", http.StatusForbidden, "evil.example:8080"},
		{"another port on loopback", http.MethodPost, "http://127.0.0.1:9999", "application/json", http.StatusForbidden, "127.0.0.1:8080"},
		{"https claimed over plain HTTP", http.MethodPost, "https://127.0.0.1:8080", "application/json", http.StatusForbidden, "127.0.0.1:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reached
			r := httptest.NewRequest(tc.method, "/mcp", strings.NewReader(ping))
			r.Header.Set("Authorization", "Bearer good")
			if tc.host != "" {
				r.Host = tc.host
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want || (reached > before) != (tc.want == http.StatusOK) {
				t.Errorf("status %d (reached %v), want %d", w.Code, reached > before, tc.want)
			}
		})
	}
	// What nearly every request is: a client that is not a browser (no Origin).
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Content-Type", "application/json")
	var w http.ResponseWriter = httptest.NewRecorder()
	if n := testing.AllocsPerRun(100, func() { answeredBrowser([]string{"https://app.example.com"}, w, r) }); n != 0 {
		t.Errorf("an accepted request costs %v allocations in the check, want 0", n)
	}
}

func TestShouldGiveAllowedOriginsCORSBeforeTheGuard(t *testing.T) {
	reached := 0
	h := browserEndpoint(t, func(http.ResponseWriter, *http.Request) { reached++ })
	do := func(method, origin string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		r.Header.Set("Content-Type", "application/json")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// The browser's preflight carries no credential: answered here, never by the guard.
	w := do(http.MethodOptions, "https://app.example.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
	hd := w.Header()
	if w.Code != http.StatusNoContent || reached != 0 || hd.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(hd.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(hd.Get("Access-Control-Allow-Headers"), "MCP-Protocol-Version") ||
		!strings.Contains(hd.Get("Access-Control-Allow-Methods"), "POST") || hd.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight: %d (guard reached %d) %v", w.Code, reached, hd)
	}
	// The guard's 401 is readable, challenge included.
	w = do(http.MethodPost, "https://app.example.com")
	hd = w.Header()
	if w.Code != http.StatusUnauthorized || hd.Get("WWW-Authenticate") == "" || reached != 0 || hd.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(hd.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") || !strings.Contains(hd.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") ||
		hd.Get("Vary") != "Origin" || hd.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("the guard's answer to an allowed origin: %d %v", w.Code, hd)
	}
	// A foreign origin's preflight is refused, and nothing is granted.
	if w := do(http.MethodOptions, "https://evil.example", "Access-Control-Request-Method", "POST"); w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %v", w.Code, w.Header())
	}
	// OPTIONS without an Origin (not a browser): what is allowed, no credential asked.
	if w := do(http.MethodOptions, ""); w.Code != http.StatusNoContent || w.Header().Get("Allow") == "" || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("OPTIONS without Origin: %d %v", w.Code, w.Header())
	}
	// Without an Origin nothing CORS is added.
	if w := do(http.MethodPost, ""); w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Vary") != "" {
		t.Errorf("a POST without Origin got CORS headers: %v", w.Header())
	}
}

package mcp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestShouldRefuseForeignOriginsAndNonJSONBodiesWithoutAllocating(t *testing.T) {
	reached := 0
	h := keepBrowsersOut([]string{"https://app.example.com"}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }))
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
			r := httptest.NewRequest(tc.method, "/mcp", strings.NewReader("{}"))
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
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "https://app.example.com")
	var w http.ResponseWriter = httptest.NewRecorder()
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("an accepted request costs %v allocations in the check, want 0", n)
	}
}

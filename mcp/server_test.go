package mcp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestShouldReadOnlyBearerCredentialsFromTheAuthorizationHeader(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
	}{
		{"bearer token", "Bearer abc.def.ghi", "abc.def.ghi"},
		{"scheme is case-insensitive", "bearer abc", "abc"},
		{"basic auth is not a bearer token", "Basic dXNlcjpwYXNz", ""},
		{"no header", "", ""},
		{"scheme without token", "Bearer", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if got := bearer(r).Reveal(); got != tt.want {
				t.Fatalf("bearer = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestShouldRefuseCredentialsInTheQueryString(t *testing.T) {
	reached := false
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasQueryCredential(r) {
			refuseQueryCredential(w)
			return
		}
		reached = true
	})
	for _, q := range []string{"access_token=x", "token=x", "api_key=mcpk_x", "refresh_token=mcpr_x"} {
		t.Run(q, func(t *testing.T) {
			reached = false
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/mcp?"+q, nil))
			if w.Code != http.StatusBadRequest || reached {
				t.Fatalf("status %d, handler reached %v; want 400 and not reached", w.Code, reached)
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate challenge")
			}
		})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/message?sessionId=abc", nil))
	if !reached {
		t.Fatal("a request without query credentials was refused")
	}
}

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

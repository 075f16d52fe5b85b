package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/bduf/mcpauth/apierr"
)

// An HTTP refusal (401, 403, 404 for a session, 413, 429, 503) is a JSON-RPC error response,
// beside the WWW-Authenticate challenge where there is one: MCP clients parse the body of a
// non-2xx answer as JSON-RPC (the official Go SDK keeps its session only when it is one), and
// show its message to the user. The error's data is the object a tool error shows over stdio
// under "error" ({"code": "TOKEN_EXPIRED", "message": ..., ...details}): one vocabulary, two
// envelopes. The numeric codes are in the implementation-defined range (-32000 to -32019).
const (
	CodeSessionLimit    = -32000 // 429 or 503: too many transport sessions
	CodeSessionNotFound = -32001 // 404: the session ended, was never issued, or is another principal's
	CodeUnauthorized    = -32010 // 401: no credential, or one that failed (data.code says why)
	CodeForbidden       = -32011 // 403: the credential lacks what the request needs
	CodeRateLimited     = -32012 // 429
	CodeUnavailable     = -32013 // 503: a dependency is down; retry
	codeInvalidRequest  = -32600 // 400, 413: the request itself is wrong
)

// refusal is the JSON-RPC error response of a refusal.
type refusal struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   refusalError    `json:"error"`
}

type refusalError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

// writeRefusal answers with status and a JSON-RPC error response for e, to the request whose
// body is body (its id is echoed when it is a single request; null otherwise).
func writeRefusal(w http.ResponseWriter, body []byte, status, code int, e *apierr.Error) {
	msg := string(e.Code) + ": " + e.Message
	if reason, ok := e.Details["reason"].(string); ok && reason != "" {
		msg += " (" + reason + ")"
	}
	out, err := json.Marshal(refusal{JSONRPC: "2.0", ID: requestID(body),
		Error: refusalError{Code: code, Message: msg, Data: e.Public()}})
	if err != nil { // details are ours and plain; never expected
		out = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"INTERNAL: internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(out, '\n'))
}

// requestID is the id of the single JSON-RPC request body holds (a string or a number, as
// sent), or null: for a notification, a batch (one error answers it all) or anything else.
// Only refusals read it, so the hot path never parses the id.
func requestID(body []byte) json.RawMessage {
	null := json.RawMessage("null")
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return null
	}
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) != nil || len(m.ID) == 0 {
		return null
	}
	switch c := m.ID[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return m.ID
	}
	return null
}

// challengeFor is the WWW-Authenticate parameters (RFC 6750) of a 401 or 403 for e.
func challengeFor(status int, e *apierr.Error, noCredential bool, scopes []string) string {
	switch {
	case status == http.StatusForbidden:
		scope, _ := e.Details["scope"].(string)
		return fmt.Sprintf(`error="insufficient_scope", scope=%q, error_description=%q`, scope, e.Message)
	case noCredential:
		// RFC 6750 §3.1: a request without credentials gets no error code, only where to log
		// in (and, when minimal scopes are configured, what to ask for: MCP's scope selection).
		if len(scopes) == 0 {
			return ""
		}
		return fmt.Sprintf(`scope=%q`, strings.Join(scopes, " "))
	}
	return fmt.Sprintf(`error="invalid_token", error_description=%q`, e.Message)
}

// insufficientScope is the 403 refusal of a request whose token's scopes hold none of perms.
func insufficientScope(what string, perms []string) *apierr.Error {
	return apierr.New(apierr.PermissionDenied, "the token's scopes do not include "+strings.Join(perms, " or ")+", which "+what+" needs").
		With("required_permissions", perms).With("scope", strings.Join(perms, " "))
}

// ErrorResult renders err as the design's tool error (an isError result) whose structured
// content is {"error": {"code", "message", ...details}}: the same object an HTTP refusal's data
// holds. Only the public code, message and details are shown; an internal cause never is.
func ErrorResult(err error) *mcpgo.CallToolResult {
	body := map[string]any{"error": apierr.From(err).Public()}
	b, _ := json.Marshal(body)
	r := mcpgo.NewToolResultStructured(body, string(b))
	r.IsError = true
	return r
}

package mcptest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Challenge is an HTTP refusal: the status and its WWW-Authenticate header, parsed, and the
// JSON-RPC error response of its body.
type Challenge struct {
	Status int
	Header string            // the WWW-Authenticate value
	Scheme string            // "Bearer"
	Params map[string]string // resource_metadata, error, error_description, scope, ...
	Body   []byte
}

// Refusal is the JSON-RPC error response an HTTP refusal carries. Its data is the object a
// tool error shows over stdio: code, message, details.
type Refusal struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int      `json:"code"`
		Message string   `json:"message"`
		Data    APIError `json:"data"`
	} `json:"error"`
}

// The JSON-RPC codes of the guard's refusals (mcp.CodeUnauthorized...; mcptest does not import
// the server).
const (
	RPCUnauthorized    = -32010
	RPCForbidden       = -32011
	RPCSessionLimit    = -32000
	RPCSessionNotFound = -32001
)

// Refusal parses the body as a JSON-RPC error response, failing t if it is not one.
func (ch Challenge) Refusal(t testing.TB) Refusal {
	t.Helper()
	var r Refusal
	if err := json.Unmarshal(ch.Body, &r); err != nil || r.JSONRPC != "2.0" || r.Error.Code == 0 || r.Error.Data.Code == "" {
		t.Fatalf("HTTP %d: the body is not a JSON-RPC error response with data (%v): %s", ch.Status, err, ch.Body)
	}
	return r
}

// WantRefusal checks that the body is a JSON-RPC error with code, whose data.code is dataCode
// and whose message names it (what a client shows the user).
func (ch Challenge) WantRefusal(t testing.TB, code int, dataCode string) Refusal {
	t.Helper()
	r := ch.Refusal(t)
	if r.Error.Code != code || r.Error.Data.Code != dataCode || !strings.Contains(r.Error.Message, dataCode) {
		t.Fatalf("HTTP %d: refusal %s, want JSON-RPC code %d with data.code %s named in the message", ch.Status, ch.Body, code, dataCode)
	}
	return r
}

// NewChallenge parses a WWW-Authenticate value (RFC 7235: scheme, then comma-separated
// key=token or key="quoted string" pairs).
func NewChallenge(status int, header string) Challenge {
	ch := Challenge{Status: status, Header: header, Params: map[string]string{}}
	s := strings.TrimSpace(header)
	ch.Scheme, s, _ = strings.Cut(s, " ")
	for {
		s = strings.TrimLeft(s, " ,")
		if s == "" {
			return ch
		}
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			return ch
		}
		key = strings.TrimSpace(key)
		rest = strings.TrimLeft(rest, " ")
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				val.WriteByte(rest[i])
			}
			s = rest[min(i+1, len(rest)):]
		} else {
			tok, after, _ := strings.Cut(rest, ",")
			val.WriteString(strings.TrimSpace(tok))
			s = after
		}
		ch.Params[key] = val.String()
	}
}

// Want checks the status and that the challenge is exactly
// `Bearer resource_metadata="<metadataURL>", error="<errCode>"` followed only by more
// parameters; errCode "" (a request that sent no credential, RFC 6750 §3.1) wants no error.
func (ch Challenge) Want(t testing.TB, status int, errCode, metadataURL string) {
	t.Helper()
	if ch.Status != status {
		t.Fatalf("HTTP status %d, want %d (WWW-Authenticate: %s)", ch.Status, status, ch.Header)
	}
	prefix := `Bearer resource_metadata="` + metadataURL + `"`
	if errCode != "" {
		prefix += `, error="` + errCode + `"`
	}
	if !strings.HasPrefix(ch.Header, prefix) || (len(ch.Header) > len(prefix) && ch.Header[len(prefix)] != ',') {
		t.Fatalf("WWW-Authenticate: %s\nwant it to start with: %s", ch.Header, prefix)
	}
	if ch.Scheme != "Bearer" || ch.Params["resource_metadata"] != metadataURL || ch.Params["error"] != errCode {
		t.Fatalf("WWW-Authenticate %s parsed as %s %v", ch.Header, ch.Scheme, ch.Params)
	}
	if ch.Body != nil { // beside the challenge, a JSON-RPC error a client can show
		want := map[int]int{http.StatusUnauthorized: RPCUnauthorized, http.StatusForbidden: RPCForbidden}[status]
		if r := ch.Refusal(t); want != 0 && r.Error.Code != want {
			t.Fatalf("HTTP %d: JSON-RPC error code %d, want %d: %s", status, r.Error.Code, want, ch.Body)
		}
	}
}

// ChallengeError is the error code a 401 challenges a request with: invalid_token for a
// credential that was refused, none for a request that sent none (RFC 6750 §3.1).
func ChallengeError(bearer string) string {
	if bearer == "" {
		return ""
	}
	return "invalid_token"
}

// HTTPClient is a plain client with the call timeout.
var HTTPClient = &http.Client{Timeout: CallTimeout}

// Response is a complete raw HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Challenge returns the response's WWW-Authenticate challenge and body.
func (r Response) Challenge() Challenge {
	ch := NewChallenge(r.Status, r.Header.Get("WWW-Authenticate"))
	ch.Body = r.Body
	return ch
}

// Post sends a JSON-RPC body to url as an MCP client would (with the bearer token, if any, and
// any extra header pairs) and returns the whole response.
func Post(t testing.TB, url, bearer, body string, headerPairs ...string) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		req.Header.Set(headerPairs[i], headerPairs[i+1])
	}
	return do(t, req)
}

// Get fetches url.
func Get(t testing.TB, url string) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) Response {
	t.Helper()
	resp, err := HTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// InitializeJSON is an initialize request with id 1.
const InitializeJSON = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// ToolsCallJSON is a tools/call request.
func ToolsCallJSON(id int, tool string, a Args) string {
	if a == nil {
		a = Args{}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": a}})
	return string(b)
}

// ResourceMetadata is the RFC 9728 document.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ScopesSupported        []string `json:"scopes_supported"`
}

// GetResourceMetadata fetches and decodes a protected-resource metadata document.
func GetResourceMetadata(t testing.TB, url string) ResourceMetadata {
	t.Helper()
	r := Get(t, url)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s: %s", url, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	var md ResourceMetadata
	if err := json.Unmarshal(r.Body, &md); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, r.Body)
	}
	return md
}

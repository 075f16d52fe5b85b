package mcptest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Challenge is an HTTP refusal: the status and its WWW-Authenticate header, parsed.
type Challenge struct {
	Status int
	Header string            // the WWW-Authenticate value
	Scheme string            // "Bearer"
	Params map[string]string // resource_metadata, error, error_description, scope, ...
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
// parameters.
func (ch Challenge) Want(t testing.TB, status int, errCode, metadataURL string) {
	t.Helper()
	if ch.Status != status {
		t.Fatalf("HTTP status %d, want %d (WWW-Authenticate: %s)", ch.Status, status, ch.Header)
	}
	prefix := `Bearer resource_metadata="` + metadataURL + `", error="` + errCode + `"`
	if !strings.HasPrefix(ch.Header, prefix) || (len(ch.Header) > len(prefix) && ch.Header[len(prefix)] != ',') {
		t.Fatalf("WWW-Authenticate: %s\nwant it to start with: %s", ch.Header, prefix)
	}
	if ch.Scheme != "Bearer" || ch.Params["resource_metadata"] != metadataURL || ch.Params["error"] != errCode {
		t.Fatalf("WWW-Authenticate %s parsed as %s %v", ch.Header, ch.Scheme, ch.Params)
	}
}

// HTTPClient is a plain client with the call timeout.
var HTTPClient = &http.Client{Timeout: CallTimeout}

// Response is a complete raw HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Challenge returns the response's WWW-Authenticate challenge.
func (r Response) Challenge() Challenge {
	return NewChallenge(r.Status, r.Header.Get("WWW-Authenticate"))
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

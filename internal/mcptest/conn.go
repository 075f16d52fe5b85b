package mcptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Args is a tool call's arguments.
type Args = map[string]any

// Conn is an MCP client connection to a running server. Over HTTP and SSE the credential is
// the bearer header, which Login/Refresh set (as a real client would) and SetBearer changes;
// over stdio the server binds a login to the process's session itself.
type Conn struct {
	Kind   string // "stdio", "http" or "sse"
	Client *client.Client
	Stderr *LogBuffer // the server's stderr
	// ClientLog is the mcp-go client's own log (HTTP and SSE), shown when a call fails.
	ClientLog *LogBuffer
	// MetadataURL is where a 401/403 challenge of this conn's endpoint must point (RFC 9728:
	// the protected-resource metadata of the URL called); empty over stdio.
	MetadataURL string
	bearer      atomic.Pointer[string]
	rec         *recorder
	// redial opens a new session (HTTP and SSE), as a client must when the server answers 404
	// for its session: the server ended it, or it belongs to the principal the conn spoke for
	// before its bearer changed (a session is bound to one principal).
	redial func(t testing.TB) *client.Client
}

// sessionLost reports whether err is the server's 404 for the conn's session.
func sessionLost(err error) bool {
	return errors.Is(err, transport.ErrSessionTerminated) || strings.Contains(err.Error(), "request failed with status 404")
}

// retry runs call, and once more in a new session when the server no longer knows the conn's.
func (c *Conn) retry(t testing.TB, call func() error) error {
	t.Helper()
	err := call()
	if err != nil && c.redial != nil && sessionLost(err) {
		_ = c.Client.Close()
		c.Client = c.redial(t)
		err = call()
	}
	return err
}

// SetBearer sets the bearer token sent with every later HTTP request ("" sends none).
func (c *Conn) SetBearer(token string) { c.bearer.Store(&token) }

// Bearer returns the bearer token the conn sends.
func (c *Conn) Bearer() string {
	if p := c.bearer.Load(); p != nil {
		return *p
	}
	return ""
}

// IsHTTP reports whether the conn goes through the HTTP guard (streamable HTTP or SSE).
func (c *Conn) IsHTTP() bool { return c.Kind != "stdio" }

func (c *Conn) headers(context.Context) map[string]string {
	if tok := c.Bearer(); tok != "" {
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	return nil
}

// ClientInfo is what the conns say they are in initialize.
var ClientInfo = mcp.Implementation{Name: "mcpauth-e2e", Version: "1.0"}

func (c *Conn) initialize(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = ClientInfo
	if _, err := c.Client.Initialize(ctx, req); err != nil {
		t.Fatalf("%s: initialize: %v; server stderr:\n%s", c.Kind, err, c.Stderr)
	}
}

// DialStdio starts `BIN serve --transport stdio` with env through mcp-go's stdio client and
// initializes. The process is closed when t ends (stdin closed, then SIGTERM, then SIGKILL, by
// mcp-go); t fails if it did not exit cleanly or reported a data race.
func DialStdio(t testing.TB, bin string, env []string) *Conn {
	t.Helper()
	c := &Conn{Kind: "stdio", Stderr: NewLogBuffer()}
	var cmd *exec.Cmd
	mc, err := client.NewStdioMCPClientWithOptions(bin, nil, []string{"serve", "--transport", "stdio"},
		transport.WithCommandFunc(func(_ context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd = exec.Command(command, args...)
			cmd.Env = env
			cmd.Stderr = c.Stderr // a writer of ours: the full stream, complete once the process is reaped
			return cmd, nil
		}))
	if err != nil {
		t.Fatalf("start stdio client: %v", err)
	}
	c.Client = mc
	// The transport runs already; Start (idempotent) hands the server's notifications to the
	// client's OnNotification handlers.
	if err := mc.Start(context.Background()); err != nil {
		t.Fatalf("start stdio client: %v", err)
	}
	t.Cleanup(func() {
		if err := mc.Close(); err != nil {
			t.Errorf("stdio server did not exit cleanly when its stdin closed: %v", err)
		}
		if cmd.ProcessState == nil {
			t.Errorf("stdio server was not reaped")
		}
		CheckNoRace(t, "stdio server", c.Stderr)
	})
	c.initialize(t)
	return c
}

// CloseStdio ends a stdio conn now: stdin is closed, the server must exit cleanly on EOF.
func (c *Conn) CloseStdio(t testing.TB) {
	t.Helper()
	if err := c.Client.Close(); err != nil {
		t.Errorf("stdio server exit: %v; stderr:\n%s", err, c.Stderr)
	}
}

// DialHTTP connects mcp-go's streamable HTTP client to srv's /mcp and initializes (without a
// token unless SetBearer is called first: initialize may come anonymously).
func DialHTTP(t testing.TB, srv *HTTPServer) *Conn {
	t.Helper()
	return dialStreamable(t, srv, http.DefaultTransport.(*http.Transport).Clone())
}

// DialHTTPFrom is DialHTTP with every connection made from the local address ip (e.g.
// "127.0.0.2": Linux loopback accepts any 127.0.0.0/8 source), so the server sees another
// client address than 127.0.0.1.
func DialHTTPFrom(t testing.TB, srv *HTTPServer, ip string) *Conn {
	t.Helper()
	local := net.ParseIP(ip)
	if local == nil {
		t.Fatalf("DialHTTPFrom: %q is not an IP address", ip)
	}
	next := http.DefaultTransport.(*http.Transport).Clone()
	next.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: CallTimeout, KeepAlive: 30 * time.Second}).DialContext
	return dialStreamable(t, srv, next)
}

// mcpHTTPClient is the http.Client given to mcp-go's client transports (streamable HTTP and
// SSE): one that never follows a redirect.
func mcpHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: refuseRedirects}
}

// refuseRedirects answers a redirect with the 3xx response itself, which mcp-go then reports as
// an error: mcp-go's client transport follows redirects with the bearer token and session
// headers it sets on every request (GO-2026-6911, SSRF and credential leak via the Location
// header; no fixed version), so a redirect is never followed by our clients.
func refuseRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func dialStreamable(t testing.TB, srv *HTTPServer, next http.RoundTripper) *Conn {
	t.Helper()
	c := &Conn{Kind: "http", Stderr: srv.Stderr, ClientLog: NewLogBuffer(), rec: &recorder{next: next},
		MetadataURL: srv.URL + "/.well-known/oauth-protected-resource/mcp"}
	c.redial = func(t testing.TB) *client.Client {
		t.Helper()
		mc, err := client.NewStreamableHttpClient(srv.URL+"/mcp", transport.WithHTTPHeaderFunc(c.headers),
			transport.WithHTTPBasicClient(mcpHTTPClient(c.rec)), transport.WithHTTPLogger(c.logger()))
		if err != nil {
			t.Fatalf("streamable HTTP client: %v", err)
		}
		if err := mc.Start(context.Background()); err != nil {
			t.Fatalf("streamable HTTP start: %v", err)
		}
		t.Cleanup(func() { _ = mc.Close() })
		c.Client = mc
		c.initialize(t)
		return mc
	}
	c.redial(t)
	return c
}

// DialSSE connects mcp-go's SSE client to srv's /sse (messages go to /message).
func DialSSE(t testing.TB, srv *HTTPServer) *Conn {
	t.Helper()
	c := &Conn{Kind: "sse", Stderr: srv.Stderr, ClientLog: NewLogBuffer(), rec: newRecorder(),
		MetadataURL: srv.URL + "/.well-known/oauth-protected-resource/message"}
	c.redial = func(t testing.TB) *client.Client {
		t.Helper()
		mc, err := client.NewSSEMCPClient(srv.URL+"/sse", client.WithHeaderFunc(c.headers),
			client.WithHTTPClient(mcpHTTPClient(c.rec)), transport.WithSSELogger(c.logger()))
		if err != nil {
			t.Fatalf("SSE client: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background()) // the stream lives until t ends
		t.Cleanup(cancel)
		if err := mc.Start(ctx); err != nil {
			t.Fatalf("SSE start: %v; server stderr:\n%s", err, srv.Stderr)
		}
		t.Cleanup(func() { _ = mc.Close() })
		c.Client = mc
		c.initialize(t)
		return mc
	}
	c.redial(t)
	return c
}

// logger keeps the client's log in c.ClientLog (mcp-go logs to the process's stderr by
// default, e.g. a close request to a server the test has already stopped).
func (c *Conn) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.ClientLog, nil))
}

// recorder remembers the status, WWW-Authenticate header and body of the last failed POST, so
// that a denial the mcp-go client reports as a transport error can be checked as HTTP.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	last *Challenge
}

func newRecorder() *recorder { return &recorder{next: http.DefaultTransport.(*http.Transport).Clone()} }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && resp.StatusCode >= 400 {
		ch := NewChallenge(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		ch.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(ch.Body))
		r.mu.Lock()
		r.last = &ch
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) take() *Challenge {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.last
	r.last = nil
	return ch
}

// ListTools returns the names tools/list shows the conn's current identity, sorted.
func (c *Conn) ListTools(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	var list *mcp.ListToolsResult
	err := c.retry(t, func() (err error) {
		list, err = c.Client.ListTools(ctx, mcp.ListToolsRequest{})
		return err
	})
	if err != nil {
		t.Fatalf("%s: tools/list: %v", c.Kind, err)
	}
	names := make([]string, 0, len(list.Tools))
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// Result is a tool call's outcome: isError and the structuredContent JSON.
type Result struct {
	Tool    string
	IsError bool
	Raw     json.RawMessage
}

// Call calls a tool and checks the result's shape: structuredContent is a JSON object and the
// text content carries the same JSON. A transport error fails t.
func (c *Conn) Call(t testing.TB, tool string, a Args) Result {
	t.Helper()
	r, err := c.TryCall(t, tool, a)
	if err != nil {
		t.Fatalf("%s: call %s: %v; client log:\n%s", c.Kind, tool, err, c.ClientLog)
	}
	return r
}

// TryCall is Call returning a transport error (e.g. an HTTP 401) instead of failing.
func (c *Conn) TryCall(t testing.TB, tool string, a Args) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	if a != nil {
		req.Params.Arguments = a
	}
	var res *mcp.CallToolResult
	err := c.retry(t, func() (err error) {
		if c.rec != nil {
			c.rec.take()
		}
		res, err = c.Client.CallTool(ctx, req)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return checkShape(t, c.Kind, tool, res), nil
}

// CallResult calls a tool and returns mcp-go's result as it came, without the one-text-content
// shape check of Call (for results that carry more, e.g. mfa_enroll's QR code image). A
// transport error fails t.
func (c *Conn) CallResult(t testing.TB, tool string, a Args) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	if a != nil {
		req.Params.Arguments = a
	}
	var res *mcp.CallToolResult
	err := c.retry(t, func() (err error) {
		res, err = c.Client.CallTool(ctx, req)
		return err
	})
	if err != nil {
		t.Fatalf("%s: call %s: %v; client log:\n%s", c.Kind, tool, err, c.ClientLog)
	}
	return res
}

func checkShape(t testing.TB, kind, tool string, res *mcp.CallToolResult) Result {
	t.Helper()
	structured := res.RawStructuredContent
	if len(structured) == 0 {
		var err error
		if structured, err = json.Marshal(res.StructuredContent); err != nil {
			t.Fatalf("%s: %s: structuredContent: %v", kind, tool, err)
		}
	}
	var obj map[string]any
	if err := json.Unmarshal(structured, &obj); err != nil || obj == nil {
		t.Fatalf("%s: %s: structuredContent is not a JSON object: %s (content %+v)", kind, tool, structured, res.Content)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %s: want one text content, got %d", kind, tool, len(res.Content))
	}
	var text string
	switch tc := res.Content[0].(type) {
	case mcp.TextContent:
		text = tc.Text
	case *mcp.TextContent:
		text = tc.Text
	default:
		t.Fatalf("%s: %s: content is %T, not text", kind, tool, res.Content[0])
	}
	var fromText map[string]any
	if err := json.Unmarshal([]byte(text), &fromText); err != nil || !reflect.DeepEqual(fromText, obj) {
		t.Fatalf("%s: %s: text content differs from structuredContent:\ntext: %s\nstructured: %s", kind, tool, text, structured)
	}
	return Result{Tool: tool, IsError: res.IsError, Raw: structured}
}

// CallRefused calls a tool over HTTP expecting the HTTP guard to refuse the request (the
// mcp-go client reports a transport error), and returns the response's status and challenge.
func (c *Conn) CallRefused(t testing.TB, tool string, a Args) Challenge {
	t.Helper()
	if !c.IsHTTP() {
		t.Fatalf("CallRefused over %s: only HTTP has a status", c.Kind)
	}
	r, err := c.TryCall(t, tool, a)
	if err == nil {
		t.Fatalf("%s: %s: want the HTTP request refused, got a tool result %s", c.Kind, tool, r.Raw)
	}
	ch := c.rec.take()
	if ch == nil {
		t.Fatalf("%s: %s: transport error without a failed HTTP response: %v", c.Kind, tool, err)
	}
	if ch.Status == http.StatusUnauthorized {
		var authErr *transport.AuthorizationRequiredError
		if !errors.Is(err, transport.ErrAuthorizationRequired) || !errors.As(err, &authErr) {
			t.Fatalf("%s: %s: a 401 surfaced as %v, want mcp-go's authorization required error", c.Kind, tool, err)
		}
		if authErr.ResourceMetadataURL != c.MetadataURL {
			t.Errorf("%s: %s: the client discovered resource metadata at %q, want %q", c.Kind, tool, authErr.ResourceMetadataURL, c.MetadataURL)
		}
	}
	return *ch
}

// WantUnauthorized checks that a guarded call is refused for want of a valid credential: over
// stdio the tool error stdioCode (UNAUTHENTICATED, TOKEN_REVOKED, ...); over HTTP 401 with
// `WWW-Authenticate: Bearer resource_metadata="<this endpoint's metadata>", error="invalid_token"`
// (no error code when the connection sends no token: RFC 6750 §3.1).
// It returns the error's message (stdio) or the challenge's error_description (HTTP; without a
// token, the refusal's message).
func (c *Conn) WantUnauthorized(t testing.TB, tool string, a Args, stdioCode string) string {
	t.Helper()
	if !c.IsHTTP() {
		return c.Call(t, tool, a).WantError(t, stdioCode).Message
	}
	ch := c.CallRefused(t, tool, a)
	ch.Want(t, http.StatusUnauthorized, ChallengeError(c.Bearer()), c.MetadataURL)
	if stdioCode != "" {
		ch.WantRefusal(t, RPCUnauthorized, stdioCode) // the same code as over stdio
	}
	if c.Bearer() == "" {
		return ch.Refusal(t).Error.Message
	}
	return ch.Params["error_description"]
}

// WantInsufficientScope checks that a call is refused because the caller's token lacks every
// one of perms: over stdio PERMISSION_DENIED with required_permissions perms (the guard's
// middleware); over HTTP 403 with error="insufficient_scope" and scope="perms..." (the step-up
// challenge of the HTTP guard).
func (c *Conn) WantInsufficientScope(t testing.TB, tool string, a Args, perms ...string) {
	t.Helper()
	if !c.IsHTTP() {
		e := c.Call(t, tool, a).WantError(t, "PERMISSION_DENIED")
		if !slices.Equal(e.RequiredPermissions, perms) {
			t.Fatalf("%s: %s: required_permissions %v, want %v", c.Kind, tool, e.RequiredPermissions, perms)
		}
		return
	}
	ch := c.CallRefused(t, tool, a)
	ch.Want(t, http.StatusForbidden, "insufficient_scope", c.MetadataURL)
	if got := ch.Params["scope"]; got != strings.Join(perms, " ") {
		t.Fatalf("%s: %s: 403 scope=%q, want %q (%s)", c.Kind, tool, got, strings.Join(perms, " "), ch.Header)
	}
	// The body says the same as a stdio denial: PERMISSION_DENIED with required_permissions.
	if e := ch.WantRefusal(t, RPCForbidden, "PERMISSION_DENIED").Error.Data; !slices.Equal(e.RequiredPermissions, perms) {
		t.Fatalf("%s: %s: 403 required_permissions %v, want %v (%s)", c.Kind, tool, e.RequiredPermissions, perms, ch.Body)
	}
}

// Decode returns a successful result decoded into T.
func Decode[T any](t testing.TB, r Result) T {
	t.Helper()
	if r.IsError {
		t.Fatalf("%s: want success, got error %s", r.Tool, r.Raw)
	}
	var v T
	if err := json.Unmarshal(r.Raw, &v); err != nil {
		t.Fatalf("%s: decode %s: %v", r.Tool, r.Raw, err)
	}
	return v
}

// APIError is the body of a tool error.
type APIError struct {
	Code                string   `json:"code"`
	Message             string   `json:"message"`
	Field               string   `json:"field"`
	RequiredPermissions []string `json:"required_permissions"`
	ExcessPermissions   []string `json:"excess_permissions"`
	RetryAfterSeconds   int      `json:"retry_after_seconds"` // RATE_LIMITED
}

// WantError checks that r is a tool error with code and returns its body.
func (r Result) WantError(t testing.TB, code string) APIError {
	t.Helper()
	if !r.IsError {
		t.Fatalf("%s: want error %s, got success %s", r.Tool, code, r.Raw)
	}
	var body struct {
		Error APIError `json:"error"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatalf("%s: error body %s: %v", r.Tool, r.Raw, err)
	}
	if body.Error.Code != code {
		t.Fatalf("%s: want error code %s, got %s", r.Tool, code, r.Raw)
	}
	if body.Error.Message == "" {
		t.Fatalf("%s: error %s has no message", r.Tool, r.Raw)
	}
	return body.Error
}

// WantFieldError checks an INVALID_ARGUMENT naming field.
func (r Result) WantFieldError(t testing.TB, field string) APIError {
	t.Helper()
	e := r.WantError(t, "INVALID_ARGUMENT")
	if e.Field != field || !strings.Contains(e.Message, field) {
		t.Fatalf("%s: want INVALID_ARGUMENT naming %q (field and message), got %s", r.Tool, field, r.Raw)
	}
	return e
}

// User is a user as the tools render it.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Username  string    `json:"username"`
	OrgID     string    `json:"org_id"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// Tokens is the result of auth_login and auth_refresh.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresAt    time.Time `json:"expires_at"`
	SessionID    string    `json:"session_id"`
	User         User      `json:"user"` // auth_login only
}

// Whoami is the result of auth_whoami.
type Whoami struct {
	User       User      `json:"user"`
	OrgID      string    `json:"org_id"`
	Scopes     []string  `json:"scopes"`
	AuthMethod string    `json:"auth_method"`
	SessionID  string    `json:"session_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Login calls auth_login; on success it adopts the access token as the conn's credential (over
// stdio the server binds it to the session) and records the tokens in sec (may be nil).
func (c *Conn) Login(t testing.TB, sec *Secrets, a Args) Tokens {
	t.Helper()
	// A client logging in afresh sends no old credential: the HTTP guard refuses a revoked or
	// expired bearer on every call but a refresh (and over stdio the bearer is not used).
	c.SetBearer("")
	tok := Decode[Tokens](t, c.Call(t, "auth_login", a))
	sec.Add(tok.AccessToken, tok.RefreshToken)
	c.SetBearer(tok.AccessToken)
	return tok
}

// Refresh calls auth_refresh; on success it adopts the new access token.
func (c *Conn) Refresh(t testing.TB, sec *Secrets, refreshToken string) Tokens {
	t.Helper()
	tok := Decode[Tokens](t, c.Call(t, "auth_refresh", Args{"refresh_token": refreshToken}))
	sec.Add(tok.AccessToken, tok.RefreshToken)
	c.SetBearer(tok.AccessToken)
	return tok
}

// CreateUser calls user_create as the conn's identity and returns the user.
func (c *Conn) CreateUser(t testing.TB, email, password string, roles ...string) User {
	t.Helper()
	a := Args{"email": email, "password": password}
	if roles != nil {
		a["roles"] = roles
	}
	return Decode[struct {
		User User `json:"user"`
	}](t, c.Call(t, "user_create", a)).User
}

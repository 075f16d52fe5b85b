package main

// Helpers of the end-to-end tests: build the real binary once, run it as a child process
// (stdio, streamable HTTP, SSE), and drive it with mcp-go's client.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Bounds. Generous: the binary under test may be a -race build on a slow two-core machine.
const (
	startTimeout = 60 * time.Second // until a server says it listens / answers initialize
	callTimeout  = 30 * time.Second // one tool call
	stopTimeout  = 15 * time.Second // SIGTERM to exit, then SIGKILL
)

// envTestMongoURI points the tests at a real MongoDB instead of the embedded store.
const envTestMongoURI = "MCPAUTH_TEST_MONGO_URI"

// binPath is the mcpauth binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mcpauth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = dir + "/mcpauth"
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go tool is needed to build the binary under test:", err)
		return 1
	}
	build := exec.Command(goTool, append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build mcpauth:", err)
		return 1
	}
	return m.Run()
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logBuffer is a concurrency-safe buffer that lets a reader wait for a pattern.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, _ := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until re matches the content and returns the submatches. It gives up when
// exited is closed (the writer's process is gone) or after timeout.
func (b *logBuffer) waitFor(re *regexp.Regexp, exited <-chan struct{}, timeout time.Duration) ([]string, error) {
	var m []string
	err := b.waitUntil(func(s string) bool {
		m = re.FindStringSubmatch(s)
		return m != nil
	}, exited, timeout)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", re, err)
	}
	return m, nil
}

// waitUntil waits until match accepts the content, exited is closed, or timeout passes.
func (b *logBuffer) waitUntil(match func(string) bool, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		ok := match(b.buf.String())
		changed := b.changed
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-exited:
			if match(b.String()) { // the last write may have raced with the exit
				return nil
			}
			return errors.New("the process exited before it appeared")
		case <-deadline.C:
			return fmt.Errorf("it did not appear within %s", timeout)
		}
	}
}

// instance is one mcpauth installation: a data directory (and, with a real MongoDB, a
// database) that successive processes share.
type instance struct {
	dataDir       string
	mongoDB       string
	ownerEmail    string
	ownerPassword string
	bootstrap     bool // pass MCPAUTH_BOOTSTRAP_ADMIN_*
}

// newInstance returns a fresh installation with a bootstrap owner configured.
func newInstance(t *testing.T) *instance {
	t.Helper()
	in := &instance{
		dataDir:       t.TempDir(),
		ownerEmail:    "owner@example.com",
		ownerPassword: "e2e-Owner-" + randomHex(8),
		bootstrap:     true,
	}
	if uri := os.Getenv(envTestMongoURI); uri != "" {
		in.mongoDB = fmt.Sprintf("mcpauth_e2e_%s", randomHex(6))
		t.Cleanup(func() { dropDatabase(t, uri, in.mongoDB) })
	}
	return in
}

func dropDatabase(t *testing.T, uri, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop test database %s: %v", name, err)
		return
	}
	defer func() { _ = c.Disconnect(ctx) }()
	if err := c.Database(name).Drop(ctx); err != nil {
		t.Logf("drop test database %s: %v", name, err)
	}
}

// baseEnv is ours without any MCPAUTH_* variable. A -race child skips the race runtime's
// one-second sleep at exit; a race it detects still makes it exit 66 and print a report.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPAUTH_") {
			env = append(env, kv)
		}
	}
	if raceEnabled {
		env = append(env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	}
	return env
}

// env is the child's environment: baseEnv, then the instance's settings, then extra (later
// entries win).
func (in *instance) env(extra ...string) []string {
	env := append(baseEnv(),
		"MCPAUTH_DATA_DIR="+in.dataDir,
		"MCPAUTH_BCRYPT_COST=4",
		"MCPAUTH_LOG_LEVEL=info",
	)
	if uri := os.Getenv(envTestMongoURI); uri != "" {
		env = append(env, "MCPAUTH_MONGO_URI="+uri, "MCPAUTH_MONGO_DB="+in.mongoDB)
	}
	if in.bootstrap {
		env = append(env,
			"MCPAUTH_BOOTSTRAP_ADMIN_EMAIL="+in.ownerEmail,
			"MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD="+in.ownerPassword)
	}
	return append(env, extra...)
}

// proc is a running mcpauth child process that the test owns.
type proc struct {
	cmd     *exec.Cmd
	stdout  *logBuffer
	stderr  *logBuffer
	exited  chan struct{}
	waitErr error
	stopped sync.Once
}

// startProc starts the binary with args; it is stopped (SIGTERM, then SIGKILL) when t ends.
func startProc(t *testing.T, env []string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binPath, args...), stdout: newLogBuffer(), stderr: newLogBuffer(),
		exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdin = stdin
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start mcpauth %v: %v", args, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		checkNoRace(t, p.stderr)
	})
	return p
}

// checkNoRace fails t if a -race child reported a data race.
func checkNoRace(t *testing.T, stderr *logBuffer) {
	t.Helper()
	if s := stderr.String(); strings.Contains(s, "WARNING: DATA RACE") {
		t.Errorf("mcpauth reported a data race:\n%s", s)
	}
}

// stop sends SIGTERM, waits, and kills after stopTimeout. It returns the exit code (-1 when
// killed by a signal).
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.stopped.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			t.Errorf("mcpauth did not stop within %s of SIGTERM; killing it", stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// wait waits for the process to exit on its own and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("mcpauth did not exit within %s; stderr:\n%s", timeout, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// httpServer is `mcpauth serve --transport http` on a free loopback port.
type httpServer struct {
	*proc
	url string
}

var listeningLine = regexp.MustCompile(`level=INFO msg=listening url=(http://\S+)`)

// startHTTP starts an HTTP server for in and waits for its "listening" log line.
func startHTTP(t *testing.T, in *instance, transportFlag string, extraEnv ...string) *httpServer {
	t.Helper()
	p := startProc(t, in.env(extraEnv...), nil, "serve", "--transport", transportFlag, "--listen", "127.0.0.1:0")
	m, err := p.stderr.waitFor(listeningLine, p.exited, startTimeout)
	if err != nil {
		t.Fatalf("mcpauth serve --transport %s: %v; stderr:\n%s", transportFlag, err, p.stderr)
	}
	return &httpServer{proc: p, url: m[1]}
}

// conn is an MCP client connection to a running mcpauth. Over HTTP and SSE the credential is
// the bearer header, which the conn sets after auth_login/auth_refresh (as a real client
// would); over stdio the server binds the login to the process's session itself.
type conn struct {
	kind   string // "stdio", "http" or "sse"
	c      *client.Client
	stderr *logBuffer // the server's stderr
	bearer atomic.Pointer[string]
}

func (c *conn) setBearer(token string) { c.bearer.Store(&token) }

func (c *conn) headers(context.Context) map[string]string {
	if p := c.bearer.Load(); p != nil && *p != "" {
		return map[string]string{"Authorization": "Bearer " + *p}
	}
	return nil
}

var clientInfo = mcp.Implementation{Name: "mcpauth-e2e", Version: "1.0"}

func (c *conn) initialize(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = clientInfo
	if _, err := c.c.Initialize(ctx, req); err != nil {
		t.Fatalf("%s: initialize: %v; server stderr:\n%s", c.kind, err, c.stderr)
	}
}

// dialStdio starts `mcpauth serve --transport stdio` through mcp-go's stdio client. The
// process is closed when t ends (stdin closed, then SIGTERM, then SIGKILL, by mcp-go).
func dialStdio(t *testing.T, in *instance, extraEnv ...string) *conn {
	t.Helper()
	c := &conn{kind: "stdio", stderr: newLogBuffer()}
	var cmd *exec.Cmd
	mc, err := client.NewStdioMCPClientWithOptions(binPath, nil, []string{"serve", "--transport", "stdio"},
		transport.WithCommandFunc(func(_ context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd = exec.Command(command, args...)
			cmd.Env = in.env(extraEnv...)
			cmd.Stderr = c.stderr // a writer of ours: the full stream, complete once the process is reaped
			return cmd, nil
		}))
	if err != nil {
		t.Fatalf("start stdio client: %v", err)
	}
	c.c = mc
	t.Cleanup(func() {
		if err := mc.Close(); err != nil {
			t.Errorf("stdio server did not exit cleanly when its stdin closed: %v", err)
		}
		if cmd.ProcessState == nil {
			t.Errorf("stdio server was not reaped")
		}
		checkNoRace(t, c.stderr)
	})
	c.initialize(t)
	return c
}

// closeStdio ends a stdio conn now: stdin is closed, the server must exit cleanly on EOF.
func (c *conn) closeStdio(t *testing.T) {
	t.Helper()
	if err := c.c.Close(); err != nil {
		t.Errorf("stdio server exit: %v; stderr:\n%s", err, c.stderr)
	}
}

// dialHTTP connects mcp-go's streamable HTTP client to srv's /mcp.
func dialHTTP(t *testing.T, srv *httpServer) *conn {
	t.Helper()
	c := &conn{kind: "http", stderr: srv.stderr}
	mc, err := client.NewStreamableHttpClient(srv.url+"/mcp", transport.WithHTTPHeaderFunc(c.headers))
	if err != nil {
		t.Fatalf("streamable HTTP client: %v", err)
	}
	c.c = mc
	if err := mc.Start(context.Background()); err != nil {
		t.Fatalf("streamable HTTP start: %v", err)
	}
	t.Cleanup(func() { _ = mc.Close() })
	c.initialize(t)
	return c
}

// dialSSE connects mcp-go's SSE client to srv's /sse.
func dialSSE(t *testing.T, srv *httpServer) *conn {
	t.Helper()
	c := &conn{kind: "sse", stderr: srv.stderr}
	mc, err := client.NewSSEMCPClient(srv.url+"/sse", client.WithHeaderFunc(c.headers))
	if err != nil {
		t.Fatalf("SSE client: %v", err)
	}
	c.c = mc
	ctx, cancel := context.WithCancel(context.Background()) // the stream lives until t ends
	t.Cleanup(cancel)
	if err := mc.Start(ctx); err != nil {
		t.Fatalf("SSE start: %v; server stderr:\n%s", err, srv.stderr)
	}
	t.Cleanup(func() { _ = mc.Close() })
	c.initialize(t)
	return c
}

// toolResult is a tool call's outcome: isError and the structuredContent JSON.
type toolResult struct {
	tool    string
	isError bool
	raw     json.RawMessage
}

// args is a tool call's arguments.
type args = map[string]any

// call calls a tool and checks the result's shape: structuredContent is a JSON object and the
// text content carries the same JSON.
func (c *conn) call(t *testing.T, tool string, a args) toolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	if a != nil {
		req.Params.Arguments = a
	}
	res, err := c.c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("%s: call %s: %v", c.kind, tool, err)
	}
	structured := res.RawStructuredContent
	if len(structured) == 0 {
		if structured, err = json.Marshal(res.StructuredContent); err != nil {
			t.Fatalf("%s: %s: structuredContent: %v", c.kind, tool, err)
		}
	}
	var obj map[string]any
	if err := json.Unmarshal(structured, &obj); err != nil || obj == nil {
		t.Fatalf("%s: %s: structuredContent is not a JSON object: %s", c.kind, tool, structured)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %s: want one text content, got %d", c.kind, tool, len(res.Content))
	}
	var text string
	switch tc := res.Content[0].(type) {
	case mcp.TextContent:
		text = tc.Text
	case *mcp.TextContent:
		text = tc.Text
	default:
		t.Fatalf("%s: %s: content is %T, not text", c.kind, tool, res.Content[0])
	}
	var fromText map[string]any
	if err := json.Unmarshal([]byte(text), &fromText); err != nil || !reflect.DeepEqual(fromText, obj) {
		t.Fatalf("%s: %s: text content differs from structuredContent:\ntext: %s\nstructured: %s", c.kind, tool, text, structured)
	}
	return toolResult{tool: tool, isError: res.IsError, raw: structured}
}

// decode returns a successful result decoded into T.
func decode[T any](t *testing.T, r toolResult) T {
	t.Helper()
	if r.isError {
		t.Fatalf("%s: want success, got error %s", r.tool, r.raw)
	}
	var v T
	if err := json.Unmarshal(r.raw, &v); err != nil {
		t.Fatalf("%s: decode %s: %v", r.tool, r.raw, err)
	}
	return v
}

// apiError is the body of a tool error.
type apiError struct {
	Code                string   `json:"code"`
	Message             string   `json:"message"`
	Field               string   `json:"field"`
	RequiredPermissions []string `json:"required_permissions"`
}

// wantError checks that r is a tool error with code and returns its body.
func (r toolResult) wantError(t *testing.T, code string) apiError {
	t.Helper()
	if !r.isError {
		t.Fatalf("%s: want error %s, got success %s", r.tool, code, r.raw)
	}
	var body struct {
		Error apiError `json:"error"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatalf("%s: error body %s: %v", r.tool, r.raw, err)
	}
	if body.Error.Code != code {
		t.Fatalf("%s: want error code %s, got %s", r.tool, code, r.raw)
	}
	if body.Error.Message == "" {
		t.Fatalf("%s: error %s has no message", r.tool, r.raw)
	}
	return body.Error
}

// wantFieldError checks an INVALID_ARGUMENT naming field.
func (r toolResult) wantFieldError(t *testing.T, field string) apiError {
	t.Helper()
	e := r.wantError(t, "INVALID_ARGUMENT")
	if e.Field != field || !strings.Contains(e.Message, field) {
		t.Fatalf("%s: want INVALID_ARGUMENT naming %q (field and message), got %s", r.tool, field, r.raw)
	}
	return e
}

// Result shapes.

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Username  string    `json:"username"`
	OrgID     string    `json:"org_id"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

type tokenResult struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresAt    time.Time `json:"expires_at"`
	SessionID    string    `json:"session_id"`
	User         userView  `json:"user"` // auth_login only
}

type whoamiResult struct {
	User       userView  `json:"user"`
	OrgID      string    `json:"org_id"`
	Scopes     []string  `json:"scopes"`
	AuthMethod string    `json:"auth_method"`
	SessionID  string    `json:"session_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

type validateResult struct {
	Valid     bool      `json:"valid"`
	Sub       string    `json:"sub"`
	Sid       string    `json:"sid"`
	OrgID     string    `json:"org_id"`
	Scopes    []string  `json:"scopes"`
	JTI       string    `json:"jti"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

type sessionsResult struct {
	Sessions []struct {
		ID        string    `json:"id"`
		Client    string    `json:"client"`
		Current   bool      `json:"current"`
		CreatedAt time.Time `json:"created_at"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"sessions"`
}

type userResult struct {
	User userView `json:"user"`
}

type userListResult struct {
	Users      []userView `json:"users"`
	NextCursor string     `json:"next_cursor"`
}

type countResult struct {
	Revoked int `json:"revoked"`
}

type revokeResult struct {
	Revoked bool `json:"revoked"`
}

// secrets collects every secret a test handled, to prove none reaches the server's logs.
type secrets struct {
	mu   sync.Mutex
	list []string
}

func (s *secrets) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range v {
		if x != "" {
			s.list = append(s.list, x)
		}
	}
}

// checkNotIn fails t if any collected secret occurs in log.
func (s *secrets) checkNotIn(t *testing.T, what, log string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.list {
		if strings.Contains(log, x) {
			t.Errorf("%s contains a secret (%.12s...)", what, x)
		}
	}
}

// login calls auth_login; on success it adopts the access token as the conn's credential
// and records the tokens as secrets.
func (c *conn) login(t *testing.T, sec *secrets, a args) tokenResult {
	t.Helper()
	tok := decode[tokenResult](t, c.call(t, "auth_login", a))
	sec.add(tok.AccessToken, tok.RefreshToken)
	c.setBearer(tok.AccessToken)
	return tok
}

// refresh calls auth_refresh; on success it adopts the new access token.
func (c *conn) refresh(t *testing.T, sec *secrets, refreshToken string) tokenResult {
	t.Helper()
	tok := decode[tokenResult](t, c.call(t, "auth_refresh", args{"refresh_token": refreshToken}))
	sec.add(tok.AccessToken, tok.RefreshToken)
	c.setBearer(tok.AccessToken)
	return tok
}

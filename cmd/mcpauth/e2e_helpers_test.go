package main

// Helpers of the end-to-end tests: the real binary is built once (internal/mcptest), run as a
// child process (stdio, streamable HTTP, SSE) and driven with mcp-go's client.

import (
	"os"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// Bounds (see mcptest).
const (
	startTimeout = mcptest.StartTimeout
	callTimeout  = mcptest.CallTimeout
	stopTimeout  = mcptest.StopTimeout
)

// binPath is the mcpauth binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(mcptest.BuildMain(m, ".", &binPath))
}

type (
	args         = mcptest.Args
	conn         = mcptest.Conn
	secrets      = mcptest.Secrets
	instance     = mcptest.Instance
	httpServer   = mcptest.HTTPServer
	tokenResult  = mcptest.Tokens
	userView     = mcptest.User
	whoamiResult = mcptest.Whoami
)

var (
	newInstance = mcptest.NewInstance
	randomHex   = mcptest.RandomHex
)

// decode returns a successful result decoded into T.
func decode[T any](t *testing.T, r mcptest.Result) T {
	t.Helper()
	return mcptest.Decode[T](t, r)
}

// startHTTP starts `mcpauth serve --transport FLAG` for in.
func startHTTP(t *testing.T, in *instance, transportFlag string, extraEnv ...string) *httpServer {
	t.Helper()
	return mcptest.StartHTTP(t, binPath, in.Env(extraEnv...), transportFlag)
}

// dialStdio starts `mcpauth serve --transport stdio` for in through mcp-go's stdio client.
func dialStdio(t *testing.T, in *instance, extraEnv ...string) *conn {
	t.Helper()
	return mcptest.DialStdio(t, binPath, in.Env(extraEnv...))
}

// dialHTTP connects a streamable HTTP client to srv's /mcp.
func dialHTTP(t *testing.T, srv *httpServer) *conn { t.Helper(); return mcptest.DialHTTP(t, srv) }

// dialSSE connects an SSE client to srv's /sse.
func dialSSE(t *testing.T, srv *httpServer) *conn { t.Helper(); return mcptest.DialSSE(t, srv) }

// Result shapes of mcpauth's tools (the login, user and whoami shapes are mcptest's).

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

type roleView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	OrgID       string    `json:"org_id"`
	Description string    `json:"description"`
	Permissions []string  `json:"permissions"`
	BuiltIn     bool      `json:"built_in"`
	CreatedAt   time.Time `json:"created_at"`
}

type roleResult struct {
	Role roleView `json:"role"`
}

type roleListResult struct {
	Roles []roleView `json:"roles"`
}

type okResult struct {
	OK bool `json:"ok"`
}

type deletedResult struct {
	Deleted bool `json:"deleted"`
}

type checkResult struct {
	Allowed             bool     `json:"allowed"`
	Reason              string   `json:"reason"`
	GrantedPermissions  []string `json:"granted_permissions"`
	RequiredPermissions []string `json:"required_permissions"`
	UserID              string   `json:"user_id"`
	OrgID               string   `json:"org_id"`
}

type permissionListResult struct {
	Permissions []string `json:"permissions"`
	UserID      string   `json:"user_id"`
	OrgID       string   `json:"org_id"`
}

package main

// End-to-end tests: the real mcpauth binary, driven over stdio, streamable HTTP and SSE by
// mcp-go's client, as an MCP client would use it.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// transportCase is one way to reach the server.
type transportCase struct {
	name string
	// dial starts a server for in and connects to it; stop ends the server and returns its
	// complete stderr.
	dial func(t *testing.T, in *instance) (c *conn, stop func(t *testing.T) string)
	// authMethod is what auth_whoami reports after auth_login.
	authMethod string
	// afterLogout is the error a call gets right after auth_logout ended the conn's current
	// session: over stdio the login binding is dropped (UNAUTHENTICATED); over HTTP the
	// client still sends the access token of the ended session (TOKEN_REVOKED).
	afterLogout string
}

var transports = []transportCase{
	{
		name: "stdio",
		dial: func(t *testing.T, in *instance) (*conn, func(*testing.T) string) {
			c := dialStdio(t, in)
			return c, func(t *testing.T) string { c.closeStdio(t); return c.stderr.String() }
		},
		authMethod:  "session_login",
		afterLogout: "UNAUTHENTICATED",
	},
	httpTransport("streamable_http", "http", dialHTTP),
	httpTransport("sse", "sse", dialSSE),
}

// httpTransport is a transport on an HTTP listener: over HTTP nothing is bound to the session,
// so after logout the client still sends the ended session's access token (TOKEN_REVOKED).
func httpTransport(name, flag string, dialClient func(*testing.T, *httpServer) *conn) transportCase {
	return transportCase{
		name: name,
		dial: func(t *testing.T, in *instance) (*conn, func(*testing.T) string) {
			srv := startHTTP(t, in, flag)
			c := dialClient(t, srv)
			return c, func(t *testing.T) string {
				_ = c.c.Close() // the client leaves first, as clients do
				stopCleanly(t, srv.proc)
				return srv.stderr.String()
			}
		},
		authMethod:  "bearer",
		afterLogout: "TOKEN_REVOKED",
	}
}

// stopCleanly stops an HTTP server with SIGTERM and expects a graceful exit 0.
func stopCleanly(t *testing.T, p *proc) {
	t.Helper()
	if code := p.stop(t); code != 0 {
		t.Errorf("mcpauth exited with %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
}

var allTools = []string{"auth_login", "auth_refresh", "auth_logout", "auth_revoke", "auth_validate",
	"auth_whoami", "auth_sessions", "user_create", "user_get", "user_list"}

func TestShouldServeTheWholeAuthFlowOnEveryTransport(t *testing.T) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			sec := &secrets{}
			sec.add(in.ownerPassword)
			c, stop := tc.dial(t, in)
			runScenario(t, tc, in, c, sec)
			sec.checkNotIn(t, "server stderr", stop(t))
		})
	}
}

func runScenario(t *testing.T, tc transportCase, in *instance, c *conn, sec *secrets) {
	owner := args{"email": in.ownerEmail, "password": in.ownerPassword}

	// Every tool is listed.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	list, err := c.c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	for _, name := range allTools {
		if !slices.Contains(names, name) {
			t.Errorf("tools/list lacks %s (has %v)", name, names)
		}
	}

	// Without a credential, the caller-bound tools refuse.
	for _, tool := range []string{"auth_whoami", "auth_sessions", "auth_logout", "user_list"} {
		c.call(t, tool, nil).wantError(t, "UNAUTHENTICATED")
	}

	// A wrong password and an unknown account are indistinguishable.
	wrong := c.call(t, "auth_login", args{"email": in.ownerEmail, "password": "wrong-Password-42"}).wantError(t, "INVALID_CREDENTIALS")
	unknown := c.call(t, "auth_login", args{"email": "nobody@example.com", "password": "wrong-Password-42"}).wantError(t, "INVALID_CREDENTIALS")
	unknownName := c.call(t, "auth_login", args{"username": "nobody", "password": "wrong-Password-42"}).wantError(t, "INVALID_CREDENTIALS")
	if !reflect.DeepEqual(wrong, unknown) || !reflect.DeepEqual(wrong, unknownName) {
		t.Errorf("login failures differ: wrong password %+v, unknown email %+v, unknown username %+v", wrong, unknown, unknownName)
	}

	// Argument checking: unknown, wrongly typed, missing, oversized.
	c.call(t, "auth_login", args{"email": in.ownerEmail, "password": in.ownerPassword, "passwd": "x"}).wantFieldError(t, "passwd")
	c.call(t, "auth_login", args{"email": in.ownerEmail, "password": 123}).wantFieldError(t, "password")
	c.call(t, "auth_login", args{"email": in.ownerEmail}).wantFieldError(t, "password")
	c.call(t, "auth_login", args{"password": in.ownerPassword}).wantError(t, "INVALID_ARGUMENT")
	c.call(t, "auth_login", args{"email": in.ownerEmail, "password": strings.Repeat("p", 73)}).wantFieldError(t, "password")
	c.call(t, "auth_login", args{"email": in.ownerEmail, "password": strings.Repeat("p", 1<<20)}).wantFieldError(t, "password")
	c.call(t, "auth_whoami", args{"verbose": true}).wantFieldError(t, "verbose")
	// None of the failures logged anybody in.
	c.call(t, "auth_whoami", nil).wantError(t, "UNAUTHENTICATED")

	// Owner login by email.
	a := c.login(t, sec, owner)
	if a.TokenType != "Bearer" || strings.Count(a.AccessToken, ".") != 2 || !strings.HasPrefix(a.RefreshToken, "mcpr_") ||
		a.SessionID == "" || !a.ExpiresAt.After(time.Now()) {
		t.Fatalf("auth_login result: %+v", a)
	}
	if a.User.Email != in.ownerEmail || a.User.OrgID != "default" || !slices.Contains(a.User.Roles, "owner") || a.User.ID == "" {
		t.Fatalf("auth_login user: %+v", a.User)
	}

	w := decode[whoamiResult](t, c.call(t, "auth_whoami", nil))
	if w.User.ID != a.User.ID || w.AuthMethod != tc.authMethod || w.SessionID != a.SessionID || w.OrgID != "default" ||
		len(w.Scopes) == 0 || !w.ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("auth_whoami after login: %+v (login %+v), want auth_method %s", w, a, tc.authMethod)
	}

	// Validation.
	v := decode[validateResult](t, c.call(t, "auth_validate", args{"token": a.AccessToken}))
	if !v.Valid || v.Sub != a.User.ID || v.Sid != a.SessionID || v.OrgID != "default" || v.JTI == "" ||
		v.IssuedAt.IsZero() || !v.ExpiresAt.Equal(a.ExpiresAt) || !slices.Equal(v.Scopes, w.Scopes) {
		t.Fatalf("auth_validate: %+v", v)
	}
	c.call(t, "auth_validate", args{"token": "garbage"}).wantError(t, "TOKEN_INVALID")
	c.call(t, "auth_validate", args{"token": tamperSignature(a.AccessToken)}).wantError(t, "TOKEN_INVALID")
	c.call(t, "auth_validate", nil).wantFieldError(t, "token")

	// User management as the owner.
	viewerPassword := "e2e-Viewer-" + randomHex(8)
	sec.add(viewerPassword)
	viewer := decode[userResult](t, c.call(t, "user_create", args{"email": "Viewer@Example.com", "username": "viewer1",
		"password": viewerPassword, "roles": []string{"viewer"}})).User
	if !strings.HasPrefix(viewer.ID, "usr_") || viewer.Email != "viewer@example.com" || viewer.Username != "viewer1" ||
		viewer.OrgID != "default" || !slices.Equal(viewer.Roles, []string{"viewer"}) {
		t.Fatalf("user_create: %+v", viewer)
	}
	other := "e2e-Other-" + randomHex(8)
	c.call(t, "user_create", args{"email": "VIEWER@example.com", "password": other}).wantError(t, "CONFLICT")
	c.call(t, "user_create", args{"email": "someone@example.com", "username": "viewer1", "password": other}).wantError(t, "CONFLICT")
	c.call(t, "user_create", args{"email": "weak@example.com", "password": "password"}).wantFieldError(t, "password")
	c.call(t, "user_create", args{"email": "weak@example.com", "password": strings.Repeat("long-password-", 6)}).wantFieldError(t, "password")
	c.call(t, "user_create", args{"email": "weak@example.com", "password": strings.Repeat("x", 1<<20)}).wantFieldError(t, "password")
	c.call(t, "user_create", args{"email": "weak@example.com", "password": other, "roles": "viewer"}).wantFieldError(t, "roles")
	c.call(t, "user_create", args{"email": "weak@example.com", "password": other, "roles": []string{"superuser"}}).wantFieldError(t, "roles")
	c.call(t, "user_create", args{"password": other}).wantFieldError(t, "email")
	c.call(t, "user_create", args{"email": "not-an-email", "password": other}).wantFieldError(t, "email")
	c.call(t, "user_create", args{"email": "weak@example.com", "password": other, "admin": true}).wantFieldError(t, "admin")

	var paged []string
	for i := range 5 {
		u := decode[userResult](t, c.call(t, "user_create", args{"email": fmt.Sprintf("page-%d@example.com", i),
			"password": other, "roles": []string{"contributor"}})).User
		paged = append(paged, u.ID)
	}

	got := decode[userResult](t, c.call(t, "user_get", args{"id": viewer.ID})).User
	// user_get must show exactly what user_create returned (the store keeps milliseconds).
	if got.ID != viewer.ID || got.Email != viewer.Email || got.Username != viewer.Username ||
		!got.CreatedAt.Equal(viewer.CreatedAt) {
		t.Fatalf("user_get: %+v, created %+v", got, viewer)
	}
	c.call(t, "user_get", args{"id": "usr_doesnotexist"}).wantError(t, "NOT_FOUND")

	// Paging: 5 matching users, 2 a page.
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		a := args{"filter": "page-", "limit": 2}
		if cursor != "" {
			a["cursor"] = cursor
		}
		l := decode[userListResult](t, c.call(t, "user_list", a))
		if want := min(2, 5-2*page); len(l.Users) != want {
			t.Fatalf("user_list page %d: %d users, want %d: %+v", page, len(l.Users), want, l)
		}
		for _, u := range l.Users {
			seen = append(seen, u.ID)
		}
		if l.NextCursor == "" {
			break
		}
		if page >= 3 {
			t.Fatalf("user_list: still a next_cursor after page %d", page)
		}
		cursor = l.NextCursor
	}
	slices.Sort(seen)
	slices.Sort(paged)
	if !slices.Equal(seen, paged) {
		t.Fatalf("user_list pages: %v, want %v", seen, paged)
	}
	everyone := decode[userListResult](t, c.call(t, "user_list", nil))
	if len(everyone.Users) != 7 || everyone.NextCursor != "" { // owner, viewer, 5 paged; no failed create left a user
		t.Fatalf("user_list: %d users (next %q), want 7", len(everyone.Users), everyone.NextCursor)
	}
	c.call(t, "user_list", args{"cursor": "!!!"}).wantFieldError(t, "cursor")
	c.call(t, "user_list", args{"limit": 0}).wantFieldError(t, "limit")
	c.call(t, "user_list", args{"limit": "2"}).wantFieldError(t, "limit")

	// The viewer logs in by username and may not manage users.
	vl := c.login(t, sec, args{"username": "viewer1", "password": viewerPassword})
	if vl.User.ID != viewer.ID {
		t.Fatalf("viewer login returned user %+v", vl.User)
	}
	if w := decode[whoamiResult](t, c.call(t, "auth_whoami", nil)); w.User.ID != viewer.ID || w.AuthMethod != tc.authMethod {
		t.Fatalf("auth_whoami as viewer: %+v", w)
	}
	if e := c.call(t, "user_list", nil).wantError(t, "PERMISSION_DENIED"); len(e.RequiredPermissions) == 0 {
		t.Errorf("PERMISSION_DENIED without required_permissions: %+v", e)
	}
	c.call(t, "user_create", args{"email": "sneaky@example.com", "password": other}).wantError(t, "PERMISSION_DENIED")
	c.call(t, "user_get", args{"id": a.User.ID}).wantError(t, "PERMISSION_DENIED")

	// A second owner session; auth_sessions marks the current one.
	b := c.login(t, sec, owner)
	ss := decode[sessionsResult](t, c.call(t, "auth_sessions", nil))
	var ids, current []string
	for _, s := range ss.Sessions {
		ids = append(ids, s.ID)
		if s.Current {
			current = append(current, s.ID)
		}
	}
	if len(ids) != 2 || !slices.Contains(ids, a.SessionID) || !slices.Contains(ids, b.SessionID) ||
		!slices.Equal(current, []string{b.SessionID}) {
		t.Fatalf("auth_sessions: %+v; want sessions %s and %s, current %s", ss, a.SessionID, b.SessionID, b.SessionID)
	}

	// Refresh rotates; presenting the spent refresh token again revokes the whole session.
	b2 := c.refresh(t, sec, b.RefreshToken)
	if b2.SessionID != b.SessionID || b2.RefreshToken == b.RefreshToken || b2.AccessToken == b.AccessToken ||
		b2.TokenType != "Bearer" || !strings.HasPrefix(b2.RefreshToken, "mcpr_") {
		t.Fatalf("auth_refresh: %+v (before: %+v)", b2, b)
	}
	if w := decode[whoamiResult](t, c.call(t, "auth_whoami", nil)); w.SessionID != b.SessionID || w.User.ID != a.User.ID {
		t.Fatalf("auth_whoami after refresh: %+v", w)
	}
	c.call(t, "auth_refresh", args{"refresh_token": b.RefreshToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_refresh", args{"refresh_token": b2.RefreshToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_validate", args{"token": b2.AccessToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_whoami", nil).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_refresh", args{"refresh_token": "mcpr_garbage"}).wantError(t, "TOKEN_INVALID")
	c.call(t, "auth_refresh", args{"refresh_token": 42}).wantFieldError(t, "refresh_token")

	// Logout of the current session.
	cs := c.login(t, sec, owner)
	if n := decode[countResult](t, c.call(t, "auth_logout", nil)); n.Revoked != 1 {
		t.Fatalf("auth_logout: %+v, want 1", n)
	}
	c.call(t, "auth_validate", args{"token": cs.AccessToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_whoami", nil).wantError(t, tc.afterLogout)
	c.setBearer("") // an HTTP client drops the credential of its ended session
	c.call(t, "auth_refresh", args{"refresh_token": cs.RefreshToken}).wantError(t, "TOKEN_REVOKED")

	// Logout of a session by its refresh token needs no caller.
	d := c.login(t, sec, owner)
	c.setBearer("")
	if n := decode[countResult](t, c.call(t, "auth_logout", args{"refresh_token": d.RefreshToken})); n.Revoked != 1 {
		t.Fatalf("auth_logout by refresh token: %+v, want 1", n)
	}
	c.call(t, "auth_validate", args{"token": d.AccessToken}).wantError(t, "TOKEN_REVOKED")

	// Logout of all sessions: a (first login), e and f are the owner's live sessions.
	e := c.login(t, sec, owner)
	f := c.login(t, sec, owner)
	if ss := decode[sessionsResult](t, c.call(t, "auth_sessions", nil)); len(ss.Sessions) != 3 {
		t.Fatalf("auth_sessions before logout of all: %+v, want 3 (%s, %s, %s)", ss, a.SessionID, e.SessionID, f.SessionID)
	}
	if n := decode[countResult](t, c.call(t, "auth_logout", args{"all_sessions": true})); n.Revoked != 3 {
		t.Fatalf("auth_logout all_sessions: %+v, want 3", n)
	}
	for _, tok := range []tokenResult{a, e, f} {
		c.call(t, "auth_validate", args{"token": tok.AccessToken}).wantError(t, "TOKEN_REVOKED")
	}
	c.call(t, "auth_sessions", nil).wantError(t, tc.afterLogout)
	c.setBearer("")
	// Another user's session is untouched.
	if v := decode[validateResult](t, c.call(t, "auth_validate", args{"token": vl.AccessToken})); v.Sub != viewer.ID {
		t.Fatalf("viewer token after owner's logout of all sessions: %+v", v)
	}

	// Revocation (RFC 7009) by access token and by refresh token.
	g := c.login(t, sec, owner)
	if r := decode[revokeResult](t, c.call(t, "auth_revoke", args{"token": g.AccessToken})); !r.Revoked {
		t.Fatalf("auth_revoke access token: %+v", r)
	}
	c.call(t, "auth_validate", args{"token": g.AccessToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_refresh", args{"refresh_token": g.RefreshToken}).wantError(t, "TOKEN_REVOKED")
	h := c.login(t, sec, owner)
	if r := decode[revokeResult](t, c.call(t, "auth_revoke", args{"token": h.RefreshToken})); !r.Revoked {
		t.Fatalf("auth_revoke refresh token: %+v", r)
	}
	c.call(t, "auth_refresh", args{"refresh_token": h.RefreshToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_validate", args{"token": h.AccessToken}).wantError(t, "TOKEN_REVOKED")
	c.call(t, "auth_revoke", args{"token": "garbage"}).wantError(t, "TOKEN_INVALID")
	c.call(t, "auth_revoke", nil).wantFieldError(t, "token")

	// The owner can still log in (no lockout from the failures above) and the store is intact.
	c.login(t, sec, owner)
	if w := decode[whoamiResult](t, c.call(t, "auth_whoami", nil)); w.User.ID != a.User.ID {
		t.Fatalf("final auth_whoami: %+v", w)
	}
}

// tamperSignature changes the first character of a JWT's signature.
func tamperSignature(jwt string) string {
	i := strings.LastIndexByte(jwt, '.') + 1
	c := byte('A')
	if jwt[i] == 'A' {
		c = 'B'
	}
	return jwt[:i] + string(c) + jwt[i+1:]
}

// jwtKid returns the kid of a JWT's header.
func jwtKid(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var hdr struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	return hdr.Kid
}

type jwks struct {
	Keys []struct {
		Kid string `json:"kid"`
		Kty string `json:"kty"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	} `json:"keys"`
}

func getJWKS(t *testing.T, base string) jwks {
	t.Helper()
	resp := httpGet(t, base+"/.well-known/jwks.json")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET jwks: %s", resp.Status)
	}
	var set jwks
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	return set
}

var httpClient = &http.Client{Timeout: callTimeout}

func httpGet(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp
}

func TestShouldAcceptTokensIssuedBeforeARestart(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	tok := c.login(t, sec, args{"email": in.ownerEmail, "password": in.ownerPassword})
	revoked := c.login(t, sec, args{"email": in.ownerEmail, "password": in.ownerPassword})
	decode[revokeResult](t, c.call(t, "auth_revoke", args{"token": revoked.AccessToken}))
	before := getJWKS(t, srv.url)
	stopCleanly(t, srv.proc)
	if out := srv.stdout.String(); out != "" {
		t.Errorf("serve --transport http wrote to stdout: %q", out)
	}

	srv2 := startHTTP(t, in, "http")
	if strings.Contains(srv2.stderr.String(), "created owner") {
		t.Errorf("second start bootstrapped an owner again:\n%s", srv2.stderr)
	}
	c2 := dialHTTP(t, srv2)
	v := decode[validateResult](t, c2.call(t, "auth_validate", args{"token": tok.AccessToken}))
	if !v.Valid || v.Sub != tok.User.ID || v.Sid != tok.SessionID {
		t.Fatalf("auth_validate after restart: %+v", v)
	}
	c2.setBearer(tok.AccessToken)
	if w := decode[whoamiResult](t, c2.call(t, "auth_whoami", nil)); w.User.ID != tok.User.ID || w.AuthMethod != "bearer" {
		t.Fatalf("auth_whoami after restart: %+v", w)
	}
	// A session revoked before the restart stays revoked.
	c2.call(t, "auth_validate", args{"token": revoked.AccessToken}).wantError(t, "TOKEN_REVOKED")
	// The refresh token survives too.
	c2.refresh(t, sec, tok.RefreshToken)
	c2.call(t, "auth_whoami", nil)

	after := getJWKS(t, srv2.url)
	if len(before.Keys) != 1 || len(after.Keys) != 1 || before.Keys[0].Kid != after.Keys[0].Kid ||
		after.Keys[0].Kid != jwtKid(t, tok.AccessToken) {
		t.Fatalf("signing key changed across restart or does not sign tokens: before %+v, after %+v, token kid %s",
			before, after, jwtKid(t, tok.AccessToken))
	}
	stopCleanly(t, srv2.proc)
	sec.checkNotIn(t, "server stderr", srv.stderr.String()+srv2.stderr.String())
}

func TestShouldExpireAccessTokens(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	srv := startHTTP(t, in, "http", "MCPAUTH_ACCESS_TTL=1s")
	c := dialHTTP(t, srv)
	tok := c.login(t, sec, args{"email": in.ownerEmail, "password": in.ownerPassword})
	if ttl := time.Until(tok.ExpiresAt); ttl > 1500*time.Millisecond {
		t.Fatalf("expires_at is %s away with MCPAUTH_ACCESS_TTL=1s", ttl)
	}

	// Poll auth_validate until the token expires.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.call(t, "auth_validate", args{"token": tok.AccessToken})
		if r.isError {
			r.wantError(t, "TOKEN_EXPIRED")
			// JWT times have whole seconds: expiry may come up to a second before expires_at.
			if early := time.Until(tok.ExpiresAt); early > time.Second {
				t.Fatalf("token reported expired %s before its expires_at", early)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still valid %s after its expires_at %s", time.Since(tok.ExpiresAt), tok.ExpiresAt)
		}
		<-tick.C
	}
	// As a bearer it is refused the same way; the refresh token still works.
	c.call(t, "auth_whoami", nil).wantError(t, "TOKEN_EXPIRED")
	fresh := c.refresh(t, sec, tok.RefreshToken)
	if fresh.SessionID != tok.SessionID {
		t.Fatalf("refresh after expiry: %+v", fresh)
	}
	c.call(t, "auth_validate", args{"token": tok.AccessToken}).wantError(t, "TOKEN_EXPIRED")
}

func TestShouldUseMCPAUTH_TOKENAsTheStdioCredential(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.add(in.ownerPassword)
	first := dialStdio(t, in)
	tok := first.login(t, sec, args{"email": in.ownerEmail, "password": in.ownerPassword})
	first.closeStdio(t)

	c := dialStdio(t, in, "MCPAUTH_TOKEN="+tok.AccessToken)
	w := decode[whoamiResult](t, c.call(t, "auth_whoami", nil))
	if w.AuthMethod != "env_token" || w.User.ID != tok.User.ID || w.SessionID != tok.SessionID {
		t.Fatalf("auth_whoami with MCPAUTH_TOKEN: %+v", w)
	}
	decode[userListResult](t, c.call(t, "user_list", nil)) // the owner's rights come with the token
	// An explicit login in the process wins over the environment.
	c.login(t, sec, args{"email": in.ownerEmail, "password": in.ownerPassword})
	if w := decode[whoamiResult](t, c.call(t, "auth_whoami", nil)); w.AuthMethod != "session_login" {
		t.Fatalf("auth_whoami after auth_login with MCPAUTH_TOKEN set: %+v", w)
	}
	c.closeStdio(t)

	bad := dialStdio(t, in, "MCPAUTH_TOKEN=not-a-token")
	bad.call(t, "auth_whoami", nil).wantError(t, "TOKEN_INVALID")
	bad.closeStdio(t)

	for _, log := range []string{first.stderr.String(), c.stderr.String(), bad.stderr.String()} {
		sec.checkNotIn(t, "stdio server stderr", log)
	}
}

var generatedPasswordLine = regexp.MustCompile(`(?m)^mcpauth: created owner admin@localhost with password: (\S+)$`)

func TestShouldPrintAWorkingGeneratedOwnerPassword(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.bootstrap = false
	srv := startHTTP(t, in, "http")
	m, err := srv.stderr.waitFor(generatedPasswordLine, srv.exited, startTimeout)
	if err != nil {
		t.Fatalf("generated password: %v; stderr:\n%s", err, srv.stderr)
	}
	password := m[1]
	if n := strings.Count(srv.stderr.String(), password); n != 1 {
		t.Errorf("the generated password appears %d times on stderr, want once", n)
	}
	c := dialHTTP(t, srv)
	tok := c.login(t, &secrets{}, args{"email": "admin@localhost", "password": password})
	if !slices.Contains(tok.User.Roles, "owner") {
		t.Fatalf("bootstrap user: %+v", tok.User)
	}
	c.call(t, "auth_login", args{"email": "admin@localhost", "password": password + "x"}).wantError(t, "INVALID_CREDENTIALS")
}

func TestShouldServeHealthAndJWKSAndRefuseQueryCredentials(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http")

	resp := httpGet(t, srv.url+"/healthz")
	var health map[string]any
	err := json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || health["status"] != "ok" {
		t.Fatalf("GET /healthz: %s %v %v", resp.Status, health, err)
	}

	set := getJWKS(t, srv.url)
	if len(set.Keys) != 1 || set.Keys[0].Kid == "" || set.Keys[0].Kty == "" {
		t.Fatalf("JWKS: %+v, want one key with a kid", set)
	}

	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	for _, tc := range []struct {
		method, path string
	}{
		{http.MethodPost, "/mcp?access_token=abc"},
		{http.MethodGet, "/mcp?access_token=abc"},
		{http.MethodGet, "/sse?access_token=abc"},
		{http.MethodPost, "/message?sessionId=x&access_token=abc"},
		{http.MethodPost, "/mcp?refresh_token=abc"},
		{http.MethodPost, "/mcp?api_key=abc"},
	} {
		req, err := http.NewRequest(tc.method, srv.url+tc.path, strings.NewReader(initialize))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %s, want 400", tc.method, tc.path, resp.Status)
		}
	}
}

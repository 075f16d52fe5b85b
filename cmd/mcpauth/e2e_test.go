package main

// End-to-end tests: the real mcpauth binary, driven over stdio, streamable HTTP and SSE by
// mcp-go's client, as an MCP client would use it.

import (
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

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// transportCase is one way to reach the server.
type transportCase struct {
	name string
	// dial starts a server for in and connects to it; stop ends the server and returns its
	// complete stderr.
	dial func(t *testing.T, in *instance) (c *conn, stop func(t *testing.T) string)
	// authMethod is what auth_whoami reports after auth_login.
	authMethod string
	// afterLogout is the error a guarded call gets over stdio right after auth_logout ended
	// the conn's current session: the login binding is dropped (UNAUTHENTICATED). Over HTTP
	// the client still sends the ended session's access token and the HTTP guard answers 401.
	afterLogout string
}

var transports = []transportCase{
	{
		name: "stdio",
		dial: func(t *testing.T, in *instance) (*conn, func(*testing.T) string) {
			c := dialStdio(t, in)
			return c, func(t *testing.T) string { c.CloseStdio(t); return c.Stderr.String() }
		},
		authMethod:  "session_login",
		afterLogout: "UNAUTHENTICATED",
	},
	httpTransport("streamable_http", "http", dialHTTP),
	httpTransport("sse", "sse", dialSSE),
}

// httpTransport is a transport on an HTTP listener: over HTTP nothing is bound to the session;
// every request carries its own bearer token, checked by the HTTP guard first.
func httpTransport(name, flag string, dialClient func(*testing.T, *httpServer) *conn) transportCase {
	return transportCase{
		name: name,
		dial: func(t *testing.T, in *instance) (*conn, func(*testing.T) string) {
			srv := startHTTP(t, in, flag)
			c := dialClient(t, srv)
			return c, func(t *testing.T) string {
				_ = c.Client.Close() // the client leaves first, as clients do
				srv.StopCleanly(t)
				return srv.Stderr.String()
			}
		},
		authMethod: "bearer",
	}
}

// publicTools are the tools anyone may call: all that tools/list shows an anonymous caller.
var publicTools = []string{"auth_login", "auth_logout", "auth_refresh", "auth_revoke", "auth_validate"}

// authenticatedTools need any valid identity; adminTools need a users:* or roles:* permission;
// ownerTools are what the owner must (at least) see.
var (
	authenticatedTools = []string{"auth_sessions", "auth_whoami", "permission_check", "permission_list"}
	adminTools         = []string{"role_assign", "role_create", "role_delete", "role_list", "role_revoke",
		"user_create", "user_get", "user_list"}
	ownerTools = slices.Concat(publicTools, authenticatedTools, adminTools)
)

// wantTools checks that names has every tool of want and none of wantNot.
func wantTools(t *testing.T, who string, names, want, wantNot []string) {
	t.Helper()
	for _, name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("tools/list for %s lacks %s (has %v)", who, name, names)
		}
	}
	for _, name := range wantNot {
		if slices.Contains(names, name) {
			t.Errorf("tools/list for %s shows %s, which it may not call (has %v)", who, name, names)
		}
	}
}

func TestShouldServeTheWholeAuthFlowOnEveryTransport(t *testing.T) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			// The scenario tries the owner's email 10 times within seconds: the default
			// per-identifier login limit's whole burst. Leave it headroom.
			in.Extra = append(in.Extra, "MCPAUTH_RATE_LIMITS=login_id=30/1m")
			sec := &secrets{}
			sec.Add(in.OwnerPassword)
			c, stop := tc.dial(t, in)
			runScenario(t, tc, in, c, sec)
			sec.CheckNotIn(t, "server stderr", stop(t))
		})
	}
}

func runScenario(t *testing.T, tc transportCase, in *instance, c *conn, sec *secrets) {
	owner := args{"email": in.OwnerEmail, "password": in.OwnerPassword}

	// An anonymous caller sees only the public tools.
	if names := c.ListTools(t); !slices.Equal(names, publicTools) {
		t.Errorf("anonymous tools/list: %v, want exactly the public tools %v", names, publicTools)
	}

	// Without a credential, the guarded tools refuse: UNAUTHENTICATED over stdio, 401 over HTTP.
	for _, tool := range []string{"auth_whoami", "auth_sessions", "user_list", "role_list", "permission_list"} {
		c.WantUnauthorized(t, tool, nil, "UNAUTHENTICATED")
	}
	// The guard runs before the arguments are decoded: bad arguments change nothing.
	c.WantUnauthorized(t, "auth_whoami", args{"verbose": true}, "UNAUTHENTICATED")
	c.WantUnauthorized(t, "user_create", args{"admin": true}, "UNAUTHENTICATED")
	c.WantUnauthorized(t, "permission_check", args{"resource": 42}, "UNAUTHENTICATED")
	// auth_logout is public (a refresh token is authority enough); without one it needs a caller.
	c.Call(t, "auth_logout", nil).WantError(t, "UNAUTHENTICATED")
	// A tool that does not exist is not a way around the guard.
	if c.IsHTTP() {
		c.WantUnauthorized(t, "no_such_tool", nil, "")
	}

	// A wrong password and an unknown account are indistinguishable.
	wrong := c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	unknown := c.Call(t, "auth_login", args{"email": "nobody@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	unknownName := c.Call(t, "auth_login", args{"username": "nobody", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	if !reflect.DeepEqual(wrong, unknown) || !reflect.DeepEqual(wrong, unknownName) {
		t.Errorf("login failures differ: wrong password %+v, unknown email %+v, unknown username %+v", wrong, unknown, unknownName)
	}

	// Argument checking: unknown, wrongly typed, missing, oversized.
	c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": in.OwnerPassword, "passwd": "x"}).WantFieldError(t, "passwd")
	c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": 123}).WantFieldError(t, "password")
	c.Call(t, "auth_login", args{"email": in.OwnerEmail}).WantFieldError(t, "password")
	c.Call(t, "auth_login", args{"password": in.OwnerPassword}).WantError(t, "INVALID_ARGUMENT")
	c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": strings.Repeat("p", 73)}).WantFieldError(t, "password")
	huge := args{"email": in.OwnerEmail, "password": strings.Repeat("p", 1<<20)}
	if c.IsHTTP() { // over HTTP, a body without a valid credential is capped before anything reads it
		if _, err := c.TryCall(t, "auth_login", huge); err == nil || !strings.Contains(err.Error(), "without a valid credential is at most 64 KiB") {
			t.Errorf("a 1 MiB anonymous auth_login over HTTP: %v, want HTTP 413", err)
		}
	} else {
		c.Call(t, "auth_login", huge).WantFieldError(t, "password")
	}
	// None of the failures logged anybody in.
	c.WantUnauthorized(t, "auth_whoami", nil, "UNAUTHENTICATED")

	// Owner login by email.
	a := c.Login(t, sec, owner)
	if a.TokenType != "Bearer" || strings.Count(a.AccessToken, ".") != 2 || !strings.HasPrefix(a.RefreshToken, "mcpr_") ||
		a.SessionID == "" || !a.ExpiresAt.After(time.Now()) {
		t.Fatalf("auth_login result: %+v", a)
	}
	if a.User.Email != in.OwnerEmail || a.User.OrgID != "default" || !slices.Contains(a.User.Roles, "owner") || a.User.ID == "" {
		t.Fatalf("auth_login user: %+v", a.User)
	}

	w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil))
	if w.User.ID != a.User.ID || w.AuthMethod != tc.authMethod || w.SessionID != a.SessionID || w.OrgID != "default" ||
		len(w.Scopes) == 0 || !w.ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("auth_whoami after login: %+v (login %+v), want auth_method %s", w, a, tc.authMethod)
	}
	// The owner sees every tool, and argument errors now reach the caller.
	wantTools(t, "the owner", c.ListTools(t), ownerTools, nil)
	c.Call(t, "auth_whoami", args{"verbose": true}).WantFieldError(t, "verbose")

	// Validation.
	v := decode[validateResult](t, c.Call(t, "auth_validate", args{"token": a.AccessToken}))
	if !v.Valid || v.Sub != a.User.ID || v.Sid != a.SessionID || v.OrgID != "default" || v.JTI == "" ||
		v.IssuedAt.IsZero() || !v.ExpiresAt.Equal(a.ExpiresAt) || !slices.Equal(v.Scopes, w.Scopes) {
		t.Fatalf("auth_validate: %+v", v)
	}
	c.Call(t, "auth_validate", args{"token": "garbage"}).WantError(t, "TOKEN_INVALID")
	c.Call(t, "auth_validate", args{"token": tamperSignature(a.AccessToken)}).WantError(t, "TOKEN_INVALID")
	c.Call(t, "auth_validate", nil).WantFieldError(t, "token")

	// User management as the owner.
	viewerPassword := "e2e-Viewer-" + randomHex(8)
	sec.Add(viewerPassword)
	viewer := decode[userResult](t, c.Call(t, "user_create", args{"email": "Viewer@Example.com", "username": "viewer1",
		"password": viewerPassword, "roles": []string{"viewer"}})).User
	if !strings.HasPrefix(viewer.ID, "usr_") || viewer.Email != "viewer@example.com" || viewer.Username != "viewer1" ||
		viewer.OrgID != "default" || !slices.Equal(viewer.Roles, []string{"viewer"}) {
		t.Fatalf("user_create: %+v", viewer)
	}
	other := "e2e-Other-" + randomHex(8)
	c.Call(t, "user_create", args{"email": "VIEWER@example.com", "password": other}).WantError(t, "CONFLICT")
	c.Call(t, "user_create", args{"email": "someone@example.com", "username": "viewer1", "password": other}).WantError(t, "CONFLICT")
	c.Call(t, "user_create", args{"email": "weak@example.com", "password": "password"}).WantFieldError(t, "password")
	c.Call(t, "user_create", args{"email": "weak@example.com", "password": strings.Repeat("long-password-", 6)}).WantFieldError(t, "password")
	c.Call(t, "user_create", args{"email": "weak@example.com", "password": strings.Repeat("x", 1<<20)}).WantFieldError(t, "password")
	c.Call(t, "user_create", args{"email": "weak@example.com", "password": other, "roles": "viewer"}).WantFieldError(t, "roles")
	c.Call(t, "user_create", args{"email": "weak@example.com", "password": other, "roles": []string{"superuser"}}).WantFieldError(t, "roles")
	c.Call(t, "user_create", args{"password": other}).WantFieldError(t, "email")
	c.Call(t, "user_create", args{"email": "not-an-email", "password": other}).WantFieldError(t, "email")
	c.Call(t, "user_create", args{"email": "weak@example.com", "password": other, "admin": true}).WantFieldError(t, "admin")

	var paged []string
	for i := range 5 {
		u := decode[userResult](t, c.Call(t, "user_create", args{"email": fmt.Sprintf("page-%d@example.com", i),
			"password": other, "roles": []string{"contributor"}})).User
		paged = append(paged, u.ID)
	}

	got := decode[userResult](t, c.Call(t, "user_get", args{"id": viewer.ID})).User
	// user_get must show exactly what user_create returned (the store keeps milliseconds).
	if got.ID != viewer.ID || got.Email != viewer.Email || got.Username != viewer.Username ||
		!got.CreatedAt.Equal(viewer.CreatedAt) {
		t.Fatalf("user_get: %+v, created %+v", got, viewer)
	}
	c.Call(t, "user_get", args{"id": "usr_doesnotexist"}).WantError(t, "NOT_FOUND")

	// Paging: 5 matching users, 2 a page.
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		a := args{"filter": "page-", "limit": 2}
		if cursor != "" {
			a["cursor"] = cursor
		}
		l := decode[userListResult](t, c.Call(t, "user_list", a))
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
	everyone := decode[userListResult](t, c.Call(t, "user_list", nil))
	if len(everyone.Users) != 7 || everyone.NextCursor != "" { // owner, viewer, 5 paged; no failed create left a user
		t.Fatalf("user_list: %d users (next %q), want 7", len(everyone.Users), everyone.NextCursor)
	}
	c.Call(t, "user_list", args{"cursor": "!!!"}).WantFieldError(t, "cursor")
	c.Call(t, "user_list", args{"limit": 0}).WantFieldError(t, "limit")
	c.Call(t, "user_list", args{"limit": "2"}).WantFieldError(t, "limit")

	// The viewer logs in by username and may not manage users.
	vl := c.Login(t, sec, args{"username": "viewer1", "password": viewerPassword})
	if vl.User.ID != viewer.ID {
		t.Fatalf("viewer login returned user %+v", vl.User)
	}
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.User.ID != viewer.ID || w.AuthMethod != tc.authMethod {
		t.Fatalf("auth_whoami as viewer: %+v", w)
	}
	wantTools(t, "a viewer", c.ListTools(t), slices.Concat(publicTools, authenticatedTools), adminTools)
	// The viewer's token lacks users:*: PERMISSION_DENIED over stdio, 403 insufficient_scope over HTTP.
	c.WantInsufficientScope(t, "user_list", nil, "users:read")
	c.WantInsufficientScope(t, "user_create", args{"email": "sneaky@example.com", "password": other}, "users:write")
	c.WantInsufficientScope(t, "user_get", args{"id": a.User.ID}, "users:read")

	// A second owner session; auth_sessions marks the current one.
	b := c.Login(t, sec, owner)
	ss := decode[sessionsResult](t, c.Call(t, "auth_sessions", nil))
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
	b2 := c.Refresh(t, sec, b.RefreshToken)
	if b2.SessionID != b.SessionID || b2.RefreshToken == b.RefreshToken || b2.AccessToken == b.AccessToken ||
		b2.TokenType != "Bearer" || !strings.HasPrefix(b2.RefreshToken, "mcpr_") {
		t.Fatalf("auth_refresh: %+v (before: %+v)", b2, b)
	}
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.SessionID != b.SessionID || w.User.ID != a.User.ID {
		t.Fatalf("auth_whoami after refresh: %+v", w)
	}
	c.Call(t, "auth_refresh", args{"refresh_token": b.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	if msg := c.WantUnauthorized(t, "auth_whoami", nil, "TOKEN_REVOKED"); !strings.Contains(msg, "revoked") {
		t.Errorf("auth_whoami with a revoked token: %q does not say it is revoked", msg)
	}
	if c.IsHTTP() { // a revoked bearer is refused on every request but a refresh, never taken for none
		c.WantUnauthorized(t, "auth_validate", args{"token": b2.AccessToken}, "TOKEN_REVOKED")
		c.SetBearer("")
	}
	c.Call(t, "auth_refresh", args{"refresh_token": b2.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_validate", args{"token": b2.AccessToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_refresh", args{"refresh_token": "mcpr_garbage"}).WantError(t, "TOKEN_INVALID")
	c.Call(t, "auth_refresh", args{"refresh_token": 42}).WantFieldError(t, "refresh_token")

	// Logout of the current session.
	cs := c.Login(t, sec, owner)
	if n := decode[countResult](t, c.Call(t, "auth_logout", nil)); n.Revoked != 1 {
		t.Fatalf("auth_logout: %+v, want 1", n)
	}
	c.WantUnauthorized(t, "auth_whoami", nil, tc.afterLogout)
	c.SetBearer("") // an HTTP client drops the credential of its ended session
	c.Call(t, "auth_validate", args{"token": cs.AccessToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_refresh", args{"refresh_token": cs.RefreshToken}).WantError(t, "TOKEN_REVOKED")

	// Logout of a session by its refresh token needs no caller.
	d := c.Login(t, sec, owner)
	c.SetBearer("")
	if n := decode[countResult](t, c.Call(t, "auth_logout", args{"refresh_token": d.RefreshToken})); n.Revoked != 1 {
		t.Fatalf("auth_logout by refresh token: %+v, want 1", n)
	}
	c.Call(t, "auth_validate", args{"token": d.AccessToken}).WantError(t, "TOKEN_REVOKED")

	// Logout of all sessions: a (first login), e and f are the owner's live sessions.
	e := c.Login(t, sec, owner)
	f := c.Login(t, sec, owner)
	if ss := decode[sessionsResult](t, c.Call(t, "auth_sessions", nil)); len(ss.Sessions) != 3 {
		t.Fatalf("auth_sessions before logout of all: %+v, want 3 (%s, %s, %s)", ss, a.SessionID, e.SessionID, f.SessionID)
	}
	if n := decode[countResult](t, c.Call(t, "auth_logout", args{"all_sessions": true})); n.Revoked != 3 {
		t.Fatalf("auth_logout all_sessions: %+v, want 3", n)
	}
	c.WantUnauthorized(t, "auth_sessions", nil, tc.afterLogout)
	c.SetBearer("")
	for _, tok := range []tokenResult{a, e, f} {
		c.Call(t, "auth_validate", args{"token": tok.AccessToken}).WantError(t, "TOKEN_REVOKED")
	}
	// Another user's session is untouched.
	if v := decode[validateResult](t, c.Call(t, "auth_validate", args{"token": vl.AccessToken})); v.Sub != viewer.ID {
		t.Fatalf("viewer token after owner's logout of all sessions: %+v", v)
	}

	// Revocation (RFC 7009) by access token and by refresh token.
	g := c.Login(t, sec, owner)
	if r := decode[revokeResult](t, c.Call(t, "auth_revoke", args{"token": g.AccessToken})); !r.Revoked {
		t.Fatalf("auth_revoke access token: %+v", r)
	}
	c.SetBearer("") // it revoked its own bearer; sent again, it would be refused (401 TOKEN_REVOKED)
	c.Call(t, "auth_validate", args{"token": g.AccessToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_refresh", args{"refresh_token": g.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	h := c.Login(t, sec, owner)
	if r := decode[revokeResult](t, c.Call(t, "auth_revoke", args{"token": h.RefreshToken})); !r.Revoked {
		t.Fatalf("auth_revoke refresh token: %+v", r)
	}
	c.SetBearer("") // the session ended with its refresh token
	c.Call(t, "auth_refresh", args{"refresh_token": h.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_validate", args{"token": h.AccessToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_revoke", args{"token": "garbage"}).WantError(t, "TOKEN_INVALID")
	c.Call(t, "auth_revoke", nil).WantFieldError(t, "token")

	// The owner can still log in (no lockout from the failures above) and the store is intact.
	c.Login(t, sec, owner)
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.User.ID != a.User.ID {
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
	tok := c.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	revoked := c.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	decode[revokeResult](t, c.Call(t, "auth_revoke", args{"token": revoked.AccessToken}))
	before := getJWKS(t, srv.URL)
	srv.StopCleanly(t)
	if out := srv.Stdout.String(); out != "" {
		t.Errorf("serve --transport http wrote to stdout: %q", out)
	}

	srv2 := startHTTP(t, in, "http")
	if strings.Contains(srv2.Stderr.String(), "created owner") {
		t.Errorf("second start bootstrapped an owner again:\n%s", srv2.Stderr)
	}
	c2 := dialHTTP(t, srv2)
	v := decode[validateResult](t, c2.Call(t, "auth_validate", args{"token": tok.AccessToken}))
	if !v.Valid || v.Sub != tok.User.ID || v.Sid != tok.SessionID {
		t.Fatalf("auth_validate after restart: %+v", v)
	}
	c2.SetBearer(tok.AccessToken)
	if w := decode[whoamiResult](t, c2.Call(t, "auth_whoami", nil)); w.User.ID != tok.User.ID || w.AuthMethod != "bearer" {
		t.Fatalf("auth_whoami after restart: %+v", w)
	}
	// A session revoked before the restart stays revoked.
	c2.Call(t, "auth_validate", args{"token": revoked.AccessToken}).WantError(t, "TOKEN_REVOKED")
	// The refresh token survives too.
	c2.Refresh(t, sec, tok.RefreshToken)
	c2.Call(t, "auth_whoami", nil)

	after := getJWKS(t, srv2.URL)
	if len(before.Keys) != 1 || len(after.Keys) != 1 || before.Keys[0].Kid != after.Keys[0].Kid ||
		after.Keys[0].Kid != jwtKid(t, tok.AccessToken) {
		t.Fatalf("signing key changed across restart or does not sign tokens: before %+v, after %+v, token kid %s",
			before, after, jwtKid(t, tok.AccessToken))
	}
	srv2.StopCleanly(t)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String()+srv2.Stderr.String())
}

func TestShouldExpireAccessTokens(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	srv := startHTTP(t, in, "http", "MCPAUTH_ACCESS_TTL=1s")
	c := dialHTTP(t, srv)
	tok := c.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	if ttl := time.Until(tok.ExpiresAt); ttl > 1500*time.Millisecond {
		t.Fatalf("expires_at is %s away with MCPAUTH_ACCESS_TTL=1s", ttl)
	}

	// Poll auth_validate until the token expires (without it as the bearer: the guard refuses
	// an expired bearer on every call but a refresh).
	c.SetBearer("")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.Call(t, "auth_validate", args{"token": tok.AccessToken})
		if r.IsError {
			r.WantError(t, "TOKEN_EXPIRED")
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
	// As a bearer it is refused by the HTTP guard (401), saying why; the refresh token still
	// works, over the same connection with the expired bearer still sent.
	c.SetBearer(tok.AccessToken)
	if msg := c.WantUnauthorized(t, "auth_whoami", nil, "TOKEN_EXPIRED"); !strings.Contains(msg, "expired") {
		t.Errorf("401 for an expired token: error_description %q does not say it expired", msg)
	}
	fresh := c.Refresh(t, sec, tok.RefreshToken)
	if fresh.SessionID != tok.SessionID {
		t.Fatalf("refresh after expiry: %+v", fresh)
	}
	c.Call(t, "auth_validate", args{"token": tok.AccessToken}).WantError(t, "TOKEN_EXPIRED")
}

func TestShouldUseMCPAUTH_TOKENAsTheStdioCredential(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	first := dialStdio(t, in)
	tok := first.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	first.CloseStdio(t)

	c := dialStdio(t, in, "MCPAUTH_TOKEN="+tok.AccessToken)
	w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil))
	if w.AuthMethod != "env_token" || w.User.ID != tok.User.ID || w.SessionID != tok.SessionID {
		t.Fatalf("auth_whoami with MCPAUTH_TOKEN: %+v", w)
	}
	decode[userListResult](t, c.Call(t, "user_list", nil)) // the owner's rights come with the token
	// An explicit login in the process wins over the environment.
	c.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.AuthMethod != "session_login" {
		t.Fatalf("auth_whoami after auth_login with MCPAUTH_TOKEN set: %+v", w)
	}
	c.CloseStdio(t)

	bad := dialStdio(t, in, "MCPAUTH_TOKEN=not-a-token")
	bad.Call(t, "auth_whoami", nil).WantError(t, "TOKEN_INVALID")
	bad.CloseStdio(t)
	// The host's log says so at start, with the reason, not only the first call.
	if log := bad.Stderr.String(); !strings.Contains(log, "stdio credential") || !strings.Contains(log, "code=TOKEN_INVALID") {
		t.Errorf("a stdio server with an invalid MCPAUTH_TOKEN did not warn at start:\n%s", log)
	}

	for _, log := range []string{first.Stderr.String(), c.Stderr.String(), bad.Stderr.String()} {
		sec.CheckNotIn(t, "stdio server stderr", log)
	}
}

var generatedPasswordLine = regexp.MustCompile(`(?m)^mcpauth: created owner admin@localhost with password: (\S+)$`)

func TestShouldPrintAWorkingGeneratedOwnerPassword(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Bootstrap = false
	srv := startHTTP(t, in, "http")
	m, err := srv.Stderr.WaitFor(generatedPasswordLine, srv.Exited, startTimeout)
	if err != nil {
		t.Fatalf("generated password: %v; stderr:\n%s", err, srv.Stderr)
	}
	password := m[1]
	if n := strings.Count(srv.Stderr.String(), password); n != 1 {
		t.Errorf("the generated password appears %d times on stderr, want once", n)
	}
	c := dialHTTP(t, srv)
	tok := c.Login(t, &secrets{}, args{"email": "admin@localhost", "password": password})
	if !slices.Contains(tok.User.Roles, "owner") {
		t.Fatalf("bootstrap user: %+v", tok.User)
	}
	c.Call(t, "auth_login", args{"email": "admin@localhost", "password": password + "x"}).WantError(t, "INVALID_CREDENTIALS")
}

func TestShouldServeHealthAndJWKSAndRefuseQueryCredentials(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http")

	resp := httpGet(t, srv.URL+"/healthz")
	var health map[string]any
	err := json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || health["status"] != "ok" {
		t.Fatalf("GET /healthz: %s %v %v", resp.Status, health, err)
	}

	set := getJWKS(t, srv.URL)
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
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(initialize))
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

func TestShouldRotateTheSigningKeyFromTheCLIWithoutBreakingIssuedTokens(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	old := c.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	srv.StopCleanly(t)

	code, stdout, stderr := runBinary(t, in.Env(), "", 30*time.Second, "key", "rotate")
	var rotated struct {
		Kid string `json:"kid"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &rotated) != nil || rotated.Kid == "" || rotated.Kid == jwtKid(t, old.AccessToken) {
		t.Fatalf("mcpauth key rotate = %d, %q, %q", code, stdout, stderr)
	}

	srv2 := startHTTP(t, in, "http")
	c2 := dialHTTP(t, srv2)
	if v := decode[validateResult](t, c2.Call(t, "auth_validate", args{"token": old.AccessToken})); !v.Valid {
		t.Fatalf("a token of the previous key after rotation: %+v", v)
	}
	fresh := c2.Login(t, sec, args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	if got := jwtKid(t, fresh.AccessToken); got != rotated.Kid {
		t.Fatalf("new tokens are signed by %s, want the rotated key %s", got, rotated.Kid)
	}
	if keys := getJWKS(t, srv2.URL).Keys; len(keys) != 2 {
		t.Fatalf("JWKS during the overlap has %d keys, want the old and the new", len(keys))
	}
	c2.SetBearer(fresh.AccessToken)
	page := decode[struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}](t, c2.Call(t, "audit_query", args{"type": "KEY_ROTATED"}))
	if len(page.Events) != 1 {
		t.Fatalf("KEY_ROTATED events: %+v", page.Events)
	}
	srv2.StopCleanly(t)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String()+srv2.Stderr.String()+stderr)
}

func TestShouldTellAStdioHostThatTheToolListFollowsTheLogin(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	c := dialStdio(t, in)
	if caps := c.Client.GetServerCapabilities(); caps.Tools == nil || !caps.Tools.ListChanged {
		t.Fatalf("initialize: tools capability %+v, want listChanged", caps.Tools)
	}
	changed := make(chan struct{}, 8)
	c.Client.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method == "notifications/tools/list_changed" {
			changed <- struct{}{}
		}
	})
	await := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(callTimeout):
			t.Fatalf("no notifications/tools/list_changed after %s within %s; server stderr:\n%s", what, callTimeout, c.Stderr)
		}
	}
	anonymous := c.ListTools(t)
	c.Login(t, nil, in.Owner())
	await("auth_login")
	if owner := c.ListTools(t); len(owner) <= len(anonymous) {
		t.Fatalf("tools/list after the login: %v, before: %v", owner, anonymous)
	}
	c.Call(t, "auth_logout", nil)
	await("auth_logout")
	if after := c.ListTools(t); !slices.Equal(after, anonymous) {
		t.Errorf("tools/list after the logout: %v, want %v", after, anonymous)
	}
}
